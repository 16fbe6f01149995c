//! The account page in a real browser: Debian's headless Chromium with its CDP virtual
//! authenticator (ctap2, resident keys, user verification), driven by playwright-core
//! (`tests/browser/account.cjs`) against the local server on the embedded store, whose relying
//! party is `localhost` on the server's own port, as the local server's is. The journey:
//! password sign-in, a passkey added, signed out, the passkey alone signs in, the other sessions
//! ended, TOTP on with the key read from the page, password and code, the passkey removed.
//! The test command installs both tools (`scripts/browser-tools`); without them this test
//! fails, it does not skip. With `UPDATE_SCREENSHOT=1` it also writes `docs/account-page.png`.

use std::path::Path;
use std::process::Command;

use integration_tests::{Harness, PASSWORD, test_config};
use shared::config::WebauthnSettings;

const EMAIL: &str = "account-page@example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_manages_their_account_with_a_passkey_in_a_browser() {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let playwright = integration_tests::playwright_core();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let base = format!("http://localhost:{port}");
    let mut config = test_config();
    config.webauthn = Some(WebauthnSettings {
        rp_id: "localhost".into(),
        origins: vec![url::Url::parse(&base).unwrap()],
    });
    let h = Harness::embedded_with(config);
    let api = h.serve_local_api_on(listener, local_api::server::Limits::default());

    let user = h.register(EMAIL).await.user.id;
    h.verify_address(user).await;
    // A session elsewhere, which the page lists and ends.
    let elsewhere = h.sign_in(EMAIL, PASSWORD).await;

    let screenshot = if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        repository.join("docs/account-page.png")
    } else {
        std::env::temp_dir().join(format!("account-page-{port}.png"))
    };
    // The page computes TOTP codes from the wall clock: the server's clock follows it.
    let clock = h.clock.clone();
    let ticking = tokio::spawn(async move {
        loop {
            clock.set(shared::Clock::now(&shared::SystemClock));
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    let script = repository.join("tests/browser/account.cjs");
    let shot = screenshot.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args([base.as_str(), EMAIL, PASSWORD])
            .arg(&shot)
            .env("PLAYWRIGHT_CORE", playwright)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    ticking.abort();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser journey failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "signed in with the password",
            "passkey added",
            "signed in with the passkey alone",
            "the other sessions ended",
            "totp on",
            "signed in with password and code",
            "passkey removed",
        ]
    );

    // What the browser did took effect.
    assert!(
        h.service.authorize(&elsewhere.access_token).await.is_err(),
        "the other session ended"
    );
    let stored = h.store.user_by_id(user).await.unwrap().unwrap();
    assert!(stored.mfa.mfa_enabled, "TOTP is on");
    assert!(stored.passkeys.is_empty(), "the passkey is gone");
    assert!(
        std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 10_000),
        "a screenshot of the page"
    );
    assert_eq!(
        api.get("/account", None).await.status,
        200,
        "the page is served"
    );
}
