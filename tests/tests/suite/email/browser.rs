//! The pages emailed links open, in a real browser: Debian's headless Chromium driven by
//! playwright-core (`tests/browser/lifecycle.cjs`) against the local server on the embedded
//! store. Register, open the inbox, follow the link, verify; ask for a reset, follow that link,
//! set a new password; then sign in with it. The test command installs both
//! (`scripts/browser-tools`); without them this test fails, it does not skip.

use std::path::Path;
use std::process::Command;

use integration_tests::Harness;
use serde_json::json;

const EMAIL: &str = "browser@example.com";
const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a brand new horse staple 2026";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_verifies_and_resets_in_a_browser() {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let playwright = integration_tests::playwright_core();
    let h = Harness::embedded();
    let api = h.serve_local_api().await;
    let registered = api
        .post_json(
            "/auth/register",
            &json!({"email": EMAIL, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(registered.status, 201);
    let access = registered.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let base = format!("http://{}", api.addr);
    let script = repository.join("tests/browser/lifecycle.cjs");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args([base.as_str(), EMAIL, NEW_PASSWORD])
            .env("PLAYWRIGHT_CORE", playwright)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser journey failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["verified", "weak refused", "reset"]
    );

    // What the browser did took effect: the reset ended the session, the new password works,
    // and the address is verified.
    assert_eq!(api.get("/auth/me", Some(&access)).await.status, 403);
    let login = api
        .post_json(
            "/auth/login",
            &json!({"email": EMAIL, "password": NEW_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(login.status, 200);
    assert_eq!(login.json()["user"]["email_verified"], true);
}
