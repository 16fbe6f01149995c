//! The `sam` commands README documents, checked with the SAM CLI's own code (Docker cannot run
//! here): what `sam local --env-vars env.json` gives each function, and what every documented
//! `--parameter-overrides` delivers to the stack. `rie.rs` beside this file then runs each
//! function with exactly that environment.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use integration_tests::configuration_variables;
use integration_tests::rie::{repository, sam_local_functions};
use integration_tests::template::repository_template;
use shared::bootstrap::{PUBLIC_KEYS_VAR, SIGNING_KEY_SECRET_VAR, SIGNING_KEY_VAR};
use shared::routes::Function;
use shared::tokens::JwkSet;
use shared::{Config, Defaults};

fn read(relative: &str) -> String {
    std::fs::read_to_string(repository().join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The variables the template declares for a function (its own and the Globals').
fn declared(logical_id: &str) -> BTreeSet<String> {
    let template = repository_template();
    let names = |value: &serde_yaml_ng::Value| -> Vec<String> {
        value["Environment"]["Variables"]
            .as_mapping()
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| k.as_str().map(str::to_owned))
            .collect()
    };
    let mut all: BTreeSet<String> = names(&template.raw["Globals"]["Function"])
        .into_iter()
        .collect();
    all.extend(names(&template.resource(logical_id)["Properties"]));
    all
}

#[test]
fn sam_local_gives_every_function_a_value_for_every_variable_it_reads() {
    let functions = sam_local_functions();
    for function in Function::ALL {
        let binary = function.binary();
        let sam = functions
            .get(binary)
            .unwrap_or_else(|| panic!("template.yaml: no function with Binary: {binary}"));
        let env = &sam.environment;
        let value = |name: &str| env.get(name).map(String::as_str).unwrap_or_default();
        let id = &sam.logical_id;

        let mut needed = configuration_variables();
        needed.push("AWS_ENDPOINT_URL_DYNAMODB".into());
        // Off when empty, and off under sam local: no bus to send lifecycle events to.
        needed.retain(|name| name != "EVENT_BUS_NAME");
        for name in &needed {
            assert!(
                !value(name).trim().is_empty(),
                "sam local gives {id} no value for {name}: set it in env.json and declare it \
                 in template.yaml (SAM passes only declared variables)"
            );
        }
        let config = Config::from_lookup(|name| env.get(name).cloned(), &Defaults::default())
            .unwrap_or_else(|e| panic!("{id} under sam local: {e}"));
        assert!(
            config.issuer.starts_with("http://127.0.0.1:3000"),
            "env.json: JWT_ISSUER is sam local start-api's address"
        );

        let declared = declared(id);
        if declared.contains(PUBLIC_KEYS_VAR) {
            let set: JwkSet = serde_json::from_str(value(PUBLIC_KEYS_VAR))
                .unwrap_or_else(|e| panic!("{id}: {PUBLIC_KEYS_VAR} is no JWK Set: {e}"));
            assert!(!set.keys.is_empty(), "{id}: no public key");
            if declared.contains(SIGNING_KEY_SECRET_VAR) {
                // A signing function: the development key, and no secret to read.
                assert_eq!(
                    value(SIGNING_KEY_SECRET_VAR),
                    "",
                    "env.json: {SIGNING_KEY_SECRET_VAR} must be empty locally ({id})"
                );
                let key = shared::SigningKey::from_private_jwk(value(SIGNING_KEY_VAR))
                    .unwrap_or_else(|e| panic!("{id}: {SIGNING_KEY_VAR}: {e}"));
                assert!(
                    set.keys.iter().any(|k| k.kid.as_deref() == Some(key.kid())),
                    "env.json: the signing key is not in {PUBLIC_KEYS_VAR}"
                );
            }
        }
        let endpoint = value("AWS_ENDPOINT_URL_DYNAMODB");
        assert!(
            endpoint.starts_with("http://host.docker.internal:"),
            "env.json: AWS_ENDPOINT_URL_DYNAMODB must be reachable from sam local's container \
             (http://host.docker.internal:PORT), not {endpoint}"
        );
    }
}

#[test]
fn every_variable_of_the_env_file_reaches_some_function() {
    let env: serde_json::Value = serde_json::from_str(&read("env.json")).expect("env.json");
    let template = repository_template();
    let declared_anywhere: BTreeSet<String> = template
        .functions
        .keys()
        .flat_map(|id| declared(id))
        .collect();
    for (scope, variables) in env.as_object().expect("an object") {
        if scope != "Parameters" {
            assert!(
                template.functions.contains_key(scope),
                "env.json: {scope} is no function of template.yaml"
            );
        }
        for name in variables.as_object().expect("variables").keys() {
            assert!(
                declared_anywhere.contains(name),
                "env.json sets {name}, which template.yaml declares for no function: sam local \
                 drops it silently"
            );
        }
    }
}

/// What the shell hands `sam` for each documented command with `--parameter-overrides`.
fn documented_overrides() -> Vec<(String, Vec<String>)> {
    let mut commands = Vec::new();
    for file in ["README.md", "docs/api.md"] {
        let text = read(file);
        for block in text.split("```sh\n").skip(1) {
            let block = block.split("```").next().unwrap_or_default();
            if !block.contains("--parameter-overrides") {
                continue;
            }
            // The block's variable assignments and its sam command, with `sam` printing the
            // arguments it would get.
            let lines: Vec<&str> = block
                .lines()
                .map(str::trim)
                .filter(|l| {
                    l.contains("--parameter-overrides")
                        || l.split_once('=').is_some_and(|(name, _)| {
                            !name.is_empty()
                                && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                        })
                })
                .collect();
            let script = format!(
                "sam() {{ python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' \"$@\"; }}\n{}",
                lines.join("\n").replace(".venv/bin/sam ", "sam ")
            );
            let output = Command::new("bash")
                .args(["-euo", "pipefail", "-c", &script])
                .output()
                .expect("bash");
            assert!(output.status.success(), "{file}: {block}");
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                let args: Vec<String> = serde_json::from_str(line).expect("argv");
                let at = args
                    .iter()
                    .position(|a| a == "--parameter-overrides")
                    .expect("the option");
                commands.push((file.to_owned(), args[at + 1..].to_vec()));
            }
        }
    }
    commands
}

fn sam_parse(values: &[String]) -> BTreeMap<String, String> {
    let output = Command::new(repository().join("scripts/sam-parameter-overrides"))
        .args(values)
        .output()
        .expect("scripts/sam-parameter-overrides");
    assert!(output.status.success(), "the SAM CLI refused {values:?}");
    serde_json::from_slice(&output.stdout).expect("JSON")
}

#[test]
fn documented_parameter_overrides_reach_the_stack_whole() {
    let commands = documented_overrides();
    assert!(
        !commands.is_empty(),
        "README documents a --parameter-overrides command"
    );
    let template = repository_template();
    for (file, values) in commands {
        let parsed = sam_parse(&values);
        assert!(!parsed.is_empty(), "{file}: {values:?} sets nothing");
        for (name, value) in &parsed {
            assert!(
                template.raw["Parameters"].get(name.as_str()).is_some(),
                "{file}: {name} is no parameter of template.yaml"
            );
            if name == "TrustedIssuers" {
                let config = Config::from_lookup(
                    |var| (var == "TRUSTED_ISSUERS").then(|| value.clone()),
                    &Defaults {
                        users_table: Some("u".into()),
                        sessions_table: Some("s".into()),
                        history_table: Some("h".into()),
                        issuer: Some("https://auth.example.com".into()),
                        audience: Some("https://auth.example.com".into()),
                        ..Defaults::default()
                    },
                )
                .unwrap_or_else(|e| panic!("{file}: the stack would get {value:?}: {e}"));
                assert!(!config.trusted_issuers.is_empty(), "{file}: {value}");
            }
        }
    }
}

#[test]
fn an_unquoted_json_override_is_cut_short_by_the_sam_cli() {
    // Why the documented form quotes its value: this is what the SAM CLI makes of the old one.
    let parsed =
        sam_parse(&[r#"TrustedIssuers=[{"issuer":"https://a.example","audience":"a"}]"#.into()]);
    assert_eq!(parsed["TrustedIssuers"], "[{");
}
