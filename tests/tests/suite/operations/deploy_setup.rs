//! `authctl deploy-setup`, the one step before a first `sam deploy`, against moto's Secrets
//! Manager (the EventBridge emulator's server): it stores both keys in secrets of their own and
//! writes into `samconfig.toml` the region and a value for every parameter the template
//! requires, as the SAM CLI's own code reads them back.

use std::collections::BTreeMap;
use std::process::Command;

use integration_tests::rie::{binaries, repository};
use integration_tests::template::repository_template;

/// What `sam deploy` would read from `samconfig.toml` in `dir`: its deploy parameters, and the
/// parameter overrides as its own parser splits them.
fn sam_reads(dir: &std::path::Path) -> serde_json::Value {
    let status = Command::new(repository().join("scripts/python-tools"))
        .status()
        .unwrap();
    assert!(status.success());
    let output = Command::new(repository().join(".venv/bin/python"))
        .env("SAM_CLI_TELEMETRY", "0")
        .arg("-c")
        .arg(
            r#"
import json, sys
from samcli.lib.config.samconfig import SamConfig
from samcli.cli.types import CfnParameterOverridesType
deploy = SamConfig(sys.argv[1], "samconfig.toml").get_all(["deploy"], "parameters", "default")
overrides = CfnParameterOverridesType().convert((deploy["parameter_overrides"],), None, None)
print(json.dumps({"deploy": deploy, "overrides": overrides}))
"#,
        )
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_setup_step_leaves_sam_deploy_nothing_to_ask() {
    let moto = std::env::var("AWS_ENDPOINT_URL_EVENTBRIDGE")
        .expect("the EventBridge emulator (moto) is not running: run the tests with scripts/test");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repository().join("samconfig.toml"),
        dir.path().join("samconfig.toml"),
    )
    .unwrap();
    let stack = format!("setup-{}", uuid::Uuid::new_v4().simple());
    let run = || {
        Command::new(binaries().join("authctl"))
            .args([
                "deploy-setup",
                "--mail-from",
                "Example <no-reply@example.com>",
            ])
            .args(["--stack", &stack, "--region", "eu-west-1"])
            .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &moto)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let output = run();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let read = sam_reads(dir.path());
    assert_eq!(read["deploy"]["region"], "eu-west-1");
    assert_eq!(read["deploy"]["stack_name"], stack.as_str());
    assert_eq!(
        read["deploy"]["capabilities"], "CAPABILITY_IAM",
        "the rest is kept"
    );
    let overrides: BTreeMap<String, String> =
        serde_json::from_value(read["overrides"].clone()).unwrap();

    // Every parameter without a default has its value, and every value names a parameter.
    let template = repository_template();
    let parameters = template.raw["Parameters"].as_mapping().unwrap();
    for (name, parameter) in parameters {
        let name = name.as_str().unwrap();
        if parameter.get("Default").is_none() {
            assert!(overrides.contains_key(name), "samconfig.toml: no {name}");
        }
    }
    for name in overrides.keys() {
        assert!(
            parameters.contains_key(name),
            "{name} is no parameter of template.yaml"
        );
    }
    assert_eq!(overrides["MailFrom"], "Example <no-reply@example.com>");

    // The secrets hold keys the functions load, and the published set verifies the signing one.
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(&moto)
        .load()
        .await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let value = |arn: String| {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .unwrap()
                .secret_string()
                .unwrap()
                .to_owned()
        }
    };
    let signing = value(overrides["SigningKeySecretArn"].clone()).await;
    let key = shared::SigningKey::from_private_jwk(&signing).expect("a signing key");
    let published: shared::tokens::JwkSet =
        serde_json::from_str(&overrides["JwtPublicKeys"]).unwrap();
    assert_eq!(published.keys.len(), 1);
    assert_eq!(published.keys[0].kid.as_deref(), Some(key.kid()));
    let mfa = value(overrides["MfaKeySecretArn"].clone()).await;
    shared::mfa::MfaKeys::parse(&mfa).expect("MFA keys");

    // A second run does not overwrite the secrets: it fails, and leaves samconfig.toml alone.
    let before = std::fs::read_to_string(dir.path().join("samconfig.toml")).unwrap();
    let again = run();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("signing-key"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("samconfig.toml")).unwrap(),
        before
    );
}
