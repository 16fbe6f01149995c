//! The repository explains itself: `docs/api.md` names every route of the route table and every
//! configuration variable the service reads, and nothing that does not exist.

use std::collections::BTreeSet;
use std::path::Path;

use shared::bootstrap::{
    MFA_KEY_SECRET_VAR, MFA_KEY_VAR, PUBLIC_KEYS_VAR, SIGNING_KEY_SECRET_VAR, SIGNING_KEY_VAR,
};
use shared::http::edge::{ORIGIN_SECRET_ARN_VAR, ORIGIN_SECRET_VAR};
use shared::routes::ROUTES;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text between `<!-- NAME:start -->` and `<!-- NAME:end -->`.
fn section<'a>(text: &'a str, name: &str) -> &'a str {
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let from = text.find(&start).unwrap_or_else(|| panic!("no {start}")) + start.len();
    let to = text[from..]
        .find(&end)
        .unwrap_or_else(|| panic!("no {end}"))
        + from;
    &text[from..to]
}

/// The first cell of each row of a Markdown table, without its backticks.
fn first_cells(table: &str) -> Vec<String> {
    table
        .lines()
        .filter_map(|line| line.strip_prefix("| "))
        .filter_map(|row| row.split(" |").next())
        .map(|cell| cell.trim_matches('`').to_owned())
        .filter(|cell| cell != "route" && !cell.starts_with("---"))
        .collect()
}

#[test]
fn the_reference_lists_exactly_the_routes_of_the_table() {
    let docs = read("docs/api.md");
    let listed: BTreeSet<String> = first_cells(section(&docs, "routes")).into_iter().collect();
    let served: BTreeSet<String> = ROUTES
        .iter()
        .filter(|r| !r.is_default())
        .map(|r| r.key())
        .collect();
    if let Some(key) = served.difference(&listed).next() {
        panic!("docs/api.md: add `{key}` to the routes table");
    }
    if let Some(key) = listed.difference(&served).next() {
        panic!("docs/api.md lists `{key}`, which shared/src/routes.rs (ROUTES) does not have");
    }
}

/// Every variable the service reads: `Config`'s and the keys'.
fn configuration_variables() -> Vec<String> {
    let mut names = integration_tests::configuration_variables();
    names.extend(
        [
            PUBLIC_KEYS_VAR,
            SIGNING_KEY_SECRET_VAR,
            SIGNING_KEY_VAR,
            MFA_KEY_VAR,
            MFA_KEY_SECRET_VAR,
            ORIGIN_SECRET_ARN_VAR,
            ORIGIN_SECRET_VAR,
        ]
        .map(str::to_owned),
    );
    names
}

#[test]
fn the_reference_documents_every_configuration_variable() {
    let docs = read("docs/api.md");
    for name in configuration_variables() {
        assert!(
            docs.contains(&format!("`{name}`")),
            "docs/api.md: document `{name}` under Configuration"
        );
    }
}

#[test]
fn the_readme_points_to_files_of_the_repository() {
    let readme = read("README.md");
    assert!(
        !readme.contains("../shared"),
        "README.md links outside the repository"
    );
    assert!(
        readme.contains("docs/api.md"),
        "README.md: link the API reference"
    );
}

#[test]
fn the_readmes_function_table_gives_each_function_its_routes() {
    let readme = read("README.md");
    let table = section(&readme, "functions");
    let mut described = BTreeSet::new();
    for row in table.lines().filter_map(|l| l.strip_prefix("| `")) {
        let mut cells = row.split(" | ");
        let binary = cells.next().unwrap_or_default().trim_end_matches('`');
        let function = shared::routes::Function::from_binary(binary)
            .unwrap_or_else(|| panic!("README.md's function table names {binary}, no Function"));
        described.insert(binary.to_owned());
        let routes_cell = cells.next().unwrap_or_default();
        let named: BTreeSet<String> = routes_cell
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|quoted| quoted.contains(' '))
            .map(str::to_owned)
            .collect();
        let served: BTreeSet<String> = function
            .routes()
            .iter()
            .filter(|r| !r.is_default())
            .map(|r| r.key())
            .collect();
        assert_eq!(
            named, served,
            "README.md: the function table's row for {binary} must name exactly its routes"
        );
    }
    for function in shared::routes::Function::ALL {
        assert!(
            described.contains(function.binary()),
            "README.md: add {} to the function table",
            function.binary()
        );
    }
}

/// Every source file of the repository: code, scripts, the template.
fn source_files() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("template.yaml"), root.join("openapi.yaml")];
    let mut folders: Vec<_> = [
        "shared",
        "functions",
        "tools",
        "tests",
        "examples",
        "scripts",
    ]
    .iter()
    .map(|f| root.join(f))
    .collect();
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !["target", "node_modules", ".tools"].contains(&name.as_str()) {
                    folders.push(path);
                }
            } else if !name.ends_with(".md") && !name.ends_with(".json") {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn every_document_a_comment_cites_is_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in source_files() {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let shown = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        // Spelled apart so that this file does not name it.
        let outside = ["the", "contract"].join(" ");
        assert!(
            !text.contains(&outside),
            "{shown} cites \"{outside}\", which is no document here: cite docs/api.md"
        );
        let cited = text
            .split(|c: char| !(c.is_alphanumeric() || "._/-".contains(c)))
            .filter(|word| word.ends_with(".md") && word.len() > 3)
            // Paths built at run time (`{root}/README.md`) are checked where they are read.
            .filter(|word| !word.starts_with('/') && !word.contains(".."));
        for document in cited {
            let document = document.trim_start_matches("./");
            assert!(
                root.join(document).is_file(),
                "{shown} cites {document}, which is not a file of the repository \
                 (name it from the repository's root, e.g. docs/api.md)"
            );
        }
    }
}

/// The `sam local` recipe of docs/development.md starts the emulators on the ports `env.json`
/// names, and serves the API on a port the local server (3000) does not take.
#[test]
fn the_sam_local_recipe_matches_env_json() {
    let docs = read("docs/development.md");
    let env: serde_json::Value = serde_json::from_str(&read("env.json")).unwrap();
    let port_of = |var: &str| -> String {
        let url = env["Parameters"][var]
            .as_str()
            .unwrap_or_else(|| panic!("env.json: {var}"));
        url.rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_owned()
    };
    for (var, setting) in [
        ("AWS_ENDPOINT_URL_DYNAMODB", "DYNAMODB_LOCAL_PORT"),
        ("AWS_ENDPOINT_URL_SESV2", "SES_LOCAL_PORT"),
    ] {
        let port = port_of(var);
        assert!(
            docs.contains(&format!("{setting}={port} ")),
            "docs/development.md: start the emulator with {setting}={port}, as env.json's {var} says"
        );
    }
    for script in ["scripts/dynamodb-local", "scripts/ses-local"] {
        let text = read(script);
        let setting = if script.ends_with("ses-local") {
            "SES_LOCAL_PORT"
        } else {
            "DYNAMODB_LOCAL_PORT"
        };
        assert!(
            text.contains(&format!("${{{setting}:-")),
            "{script} reads {setting}"
        );
    }
    let start_api = docs
        .lines()
        .find(|l| l.contains("sam local start-api"))
        .expect("docs/development.md: the sam local start-api recipe");
    let port = start_api
        .split_once("--port ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .expect("sam local start-api --port, off the local server's 3000");
    assert_ne!(port, "3000");
}
