//! Which keys each function holds has one source, `Function::keys`: each function's `main`
//! builds exactly those, and its template entry passes exactly those (a function that does not
//! sign must not be able to read the signing key's secret).

use std::path::Path;

use integration_tests::template::repository_template;
use shared::routes::{Function, Keys};

fn main_of(function: Function) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../functions")
        .join(function.binary())
        .join("src/main.rs");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn each_main_builds_the_keys_its_function_holds() {
    for function in Function::ALL.iter().copied() {
        let main = main_of(function);
        let builds = [
            (Keys::Signing, main.contains("signing_service_from_env")),
            (
                Keys::Published,
                main.contains("KeyAccess::Verify") || main.contains("published_from_env"),
            ),
            (Keys::None, main.contains("KeyAccess::None")),
        ];
        let built: Vec<Keys> = builds.iter().filter(|(_, b)| *b).map(|(k, _)| *k).collect();
        assert_eq!(
            built,
            vec![function.keys()],
            "functions/{}/src/main.rs builds other keys than Function::keys says",
            function.binary()
        );
    }
}

#[test]
fn each_template_entry_passes_the_keys_its_function_holds() {
    let template = repository_template();
    for function in Function::ALL.iter().copied() {
        let id = template
            .function_id(function.binary())
            .unwrap_or_else(|| panic!("template.yaml has no function {}", function.binary()));
        let variables = &template.resource(id)["Properties"]["Environment"]["Variables"];
        let has = |name: &str| !variables[name].is_null();
        let keys = function.keys();
        assert_eq!(
            has("JWT_SIGNING_KEY_SECRET_ARN"),
            keys == Keys::Signing,
            "template.yaml: {id}'s JWT_SIGNING_KEY_SECRET_ARN against Function::keys ({keys:?})"
        );
        assert_eq!(
            has("JWT_PUBLIC_KEYS"),
            keys != Keys::None,
            "template.yaml: {id}'s JWT_PUBLIC_KEYS against Function::keys ({keys:?})"
        );
    }
}
