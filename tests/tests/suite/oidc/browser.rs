//! Signing in with an OpenID provider on the account page, in a real browser: Debian's headless
//! Chromium driven by playwright-core (`tests/browser/oidc.cjs`) against the local server on the
//! embedded store and the real test provider (its own login and consent pages). The journey: a
//! sign-in cancelled at the provider; a new account made by the provider, whose access token
//! the local server's authorizer takes, whose one linked sign-in will not unlink; an answer the
//! tab did not ask for, refused; then a password account that links a provider account of its
//! own. Without Chromium, playwright-core or the provider this test fails, it
//! does not skip.

use std::path::Path;
use std::process::Command;

use integration_tests::oidc::{APP_CLIENT_ID, APP_CLIENT_SECRET, provider_url};
use integration_tests::{Harness, PASSWORD, test_config};

/// Who signs in at the provider first: a new account.
const NEW_LOGIN: &str = "browser-ada@example.com";
/// The password account, and the provider account it links.
const EMAIL: &str = "browser-password@example.com";
const LINKED_LOGIN: &str = "browser-linked@example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_signs_in_and_links_with_an_openid_provider_in_a_browser() {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let playwright = integration_tests::playwright_core();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // The page's own address is its redirect URI; our callback is the local server's.
    let base = format!("http://localhost:{port}");
    let mut config = test_config();
    let providers = serde_json::json!([{
        "id": "op", "name": "Test provider", "issuer": provider_url(),
        "client_id": APP_CLIENT_ID, "client_secret": APP_CLIENT_SECRET,
        "allowed_redirect_uris": [format!("{base}/account")],
    }]);
    config.oidc_providers =
        shared::config::oidc::parse(Some(providers.to_string())).expect("a valid provider");
    let h = Harness::embedded_with(config);
    let api = h.serve_local_api_on(listener, local_api::server::Limits::default());

    let user = h.register(EMAIL).await.user.id;
    h.verify_address(user).await;

    // The provider's ID tokens are stamped with the wall clock: the server's clock follows it.
    let clock = h.clock.clone();
    let ticking = tokio::spawn(async move {
        loop {
            clock.set(shared::Clock::now(&shared::SystemClock));
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    let script = repository.join("tests/browser/oidc.cjs");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args([base.as_str(), NEW_LOGIN, EMAIL, PASSWORD, LINKED_LOGIN])
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
    let (tokens, steps): (Vec<&str>, Vec<&str>) =
        stdout.lines().partition(|l| l.starts_with("token "));
    assert_eq!(
        steps,
        [
            "cancelled at the provider",
            "signed in with the provider",
            "the linked sign-in is listed",
            "the last linked sign-in stays",
            "an answer not asked for is refused",
            "signed in with the password",
            "linked",
        ]
    );

    // The page's access token passes the local server's authorizer.
    let [token] = tokens[..] else {
        panic!("one access token: {tokens:?}")
    };
    let me = api
        .get("/auth/me", Some(token.trim_start_matches("token ")))
        .await;
    assert_eq!(me.status, 200, "{:?}", me.json());
    assert_eq!(me.json()["user"]["email"], NEW_LOGIN);

    // What the browser did took effect: an account with no password and its identity, and
    // the password account's link.
    let made = h.store.user_by_email(NEW_LOGIN).await.unwrap().unwrap();
    assert!(!made.has_password(), "the provider made the account");
    let identities: Vec<_> = made.identities.values().collect();
    assert_eq!(identities.len(), 1, "its one way in stays");
    assert_eq!(identities[0].provider, "op");
    let linked = h.store.user_by_id(user).await.unwrap().unwrap();
    let identities: Vec<_> = linked.identities.values().collect();
    assert_eq!(identities.len(), 1, "one identity linked");
    assert_eq!(identities[0].provider, "op");
    assert_eq!(
        identities[0].subject, LINKED_LOGIN,
        "the provider's account"
    );
}
