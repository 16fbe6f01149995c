//! The client's address behind the edge: `CloudFront-Viewer-Address` counts only with our
//! distribution's origin secret, through the local server as through the functions (both
//! run `EdgeTrust::admit` before the handler). The per-IP registration budget shows whose
//! address was charged.

use integration_tests::local::LocalApi;
use integration_tests::{Backend, Harness, PASSWORD, test_config};
use serde_json::json;
use shared::Password;
use shared::http::edge::{EdgeTrust, ORIGIN_SECRET_HEADER, OriginSecret, VIEWER_ADDRESS_HEADER};

const SECRET: &str = "edge-origin-secret-for-tests-0123456789abcdef";
/// Registrations one address may make per window in these tests.
const BUDGET: u32 = 3;

async fn harness() -> Harness {
    let mut config = test_config();
    config.ip_max_registrations = BUDGET;
    Harness::new_with(Backend::Embedded, config).await
}

fn distribution() -> EdgeTrust {
    EdgeTrust::Distribution(OriginSecret::new(SECRET).expect("a long secret"))
}

async fn register(api: &LocalApi, email: &str, headers: &[(&str, &str)]) -> u16 {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let body = json!({"email": email, "password": PASSWORD}).to_string();
    api.send("POST", "/auth/register", &all, body).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_an_edge_a_spoofed_viewer_address_changes_no_budget() {
    let h = harness().await;
    let api = h.serve_local_api().await;
    // Each request names another viewer; the peer's address is what is counted.
    for i in 0..BUDGET {
        let viewer = format!("198.51.100.{i}:443");
        let status = register(
            &api,
            &format!("spoof{i}@example.com"),
            &[(VIEWER_ADDRESS_HEADER, &viewer)],
        )
        .await;
        assert_eq!(status, 201, "{i}");
    }
    let refused = register(
        &api,
        "one.more@example.com",
        &[(VIEWER_ADDRESS_HEADER, "198.51.100.200:443")],
    )
    .await;
    assert_eq!(refused, 429, "the loopback peer's budget is spent");
    // The addresses it named were never charged.
    for i in 0..BUDGET {
        let named = format!("198.51.100.{i}");
        h.service
            .register(
                &format!("named{i}@example.com"),
                &Password::new(PASSWORD),
                Some(&named),
            )
            .await
            .unwrap_or_else(|e| panic!("{named}: {e:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_the_edge_a_request_without_the_secret_is_refused_before_any_work() {
    let h = harness().await;
    let api = h.serve_local_api_behind(distribution()).await;
    let before = h.calls.total();
    for secret in [None, Some("not-the-secret"), Some(&SECRET[1..])] {
        let mut headers = vec![(VIEWER_ADDRESS_HEADER, "198.51.100.7:443")];
        headers.extend(secret.map(|s| (ORIGIN_SECRET_HEADER, s)));
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(&headers);
        let body = json!({"email": "direct@example.com", "password": PASSWORD}).to_string();
        let reply = api.send("POST", "/auth/register", &all, body).await;
        assert_eq!(reply.status, 403, "{secret:?}");
        assert_eq!(reply.code().as_deref(), Some("edge_required"));
        assert_eq!(
            reply.content_type(),
            Some("application/problem+json"),
            "{secret:?}"
        );
    }
    // Public pages and the catch-all too: nothing is served around the web ACL.
    for path in ["/.well-known/jwks.json", "/nope"] {
        assert_eq!(api.get(path, None).await.status, 403, "{path}");
    }
    assert_eq!(
        h.calls.total(),
        before,
        "no store call for a refused request"
    );
    assert!(
        h.store
            .user_by_email("direct@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_the_edge_each_viewer_has_its_own_budget() {
    let h = harness().await;
    let api = h.serve_local_api_behind(distribution()).await;
    let from = |viewer: &'static str| {
        [
            (VIEWER_ADDRESS_HEADER, viewer),
            (ORIGIN_SECRET_HEADER, SECRET),
        ]
    };
    for i in 0..BUDGET {
        let status = register(
            &api,
            &format!("a{i}@example.com"),
            &from("203.0.113.5:50000"),
        )
        .await;
        assert_eq!(status, 201, "{i}");
    }
    let refused = register(&api, "a.more@example.com", &from("203.0.113.5:50001")).await;
    assert_eq!(
        refused, 429,
        "the viewer's budget is spent, whatever its port"
    );
    // Another viewer behind the same CloudFront address is not affected.
    let other = register(&api, "b@example.com", &from("2001:db8::9:443")).await;
    assert_eq!(other, 201);
}
