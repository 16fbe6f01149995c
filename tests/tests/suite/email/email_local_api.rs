//! The account lifecycle black-box through the local server on both stores, with mail read from
//! its inbox (`/_dev/mail`, `/_dev/inbox`); `REQUIRE_VERIFIED_EMAIL` at the authorizer; and the
//! answer to "forgot password" timed for existing and unknown addresses.

use std::time::Instant;

use integration_tests::local::LocalApi;
use integration_tests::{Backend, Harness, on_both_stores, test_config};
use serde_json::{Value, json};

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a brand new horse staple 2026";

fn credentials(email: &str, password: &str) -> Value {
    json!({"email": email, "password": password})
}

/// The token in the newest mail to `to` that links to `page`, read from the local inbox.
async fn mailed_token(api: &LocalApi, to: &str, page: &str) -> String {
    let reply = api.get(&format!("/_dev/mail?to={to}"), None).await;
    assert_eq!(reply.status, 200);
    let marker = format!("/{page}#token=");
    reply.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|m| {
            let (_, rest) = m["text"].as_str()?.split_once(&marker)?;
            Some(rest.split_whitespace().next()?.to_owned())
        })
        .unwrap_or_else(|| panic!("no mail to {to} links to /{page}"))
}

on_both_stores!(
    the_lifecycle_through_the_local_server,
    the_inbox_links_open_the_pages
);

async fn the_lifecycle_through_the_local_server(h: Harness) {
    let api = h.serve_local_api().await;
    let registered = api
        .post_json("/auth/register", &credentials(EMAIL, PASSWORD), None)
        .await;
    assert_eq!(registered.status, 201);
    assert_eq!(registered.json()["user"]["email_verified"], false);
    let access = registered.string("access_token");

    let mail = api.get("/_dev/mail", None).await.json();
    let message = &mail["messages"][0];
    assert_eq!(message["to"], EMAIL);
    assert_eq!(message["subject"], "Confirm your email address");
    for field in ["id", "text", "html", "sent_at"] {
        assert!(!message[field].is_null(), "{field}");
    }
    // The link points to this very server, whose page handles it.
    let base = format!("http://{}", api.addr);
    assert!(
        message["text"]
            .as_str()
            .unwrap()
            .contains(&format!("{base}/verify-email#token="))
    );

    let verification = mailed_token(&api, EMAIL, "verify-email").await;
    let verified = api
        .post_json(
            "/auth/email/verify",
            &json!({ "token": verification }),
            None,
        )
        .await;
    assert_eq!(verified.status, 200);
    let me = api.get("/auth/me", Some(&access)).await;
    assert_eq!(me.json()["user"]["email_verified"], true);

    let forgot = api
        .post_json("/auth/password/forgot", &json!({ "email": EMAIL }), None)
        .await;
    assert_eq!(forgot.status, 202);
    let reset = mailed_token(&api, EMAIL, "reset-password").await;
    let done = api
        .post_json(
            "/auth/password/reset",
            &json!({"token": reset, "password": NEW_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(done.status, 204);
    // The old access token is refused at the authorizer at once.
    let refused = api.get("/auth/me", Some(&access)).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json(), json!({"message": "Forbidden"}));
    let login = api
        .post_json("/auth/login", &credentials(EMAIL, NEW_PASSWORD), None)
        .await;
    assert_eq!(login.status, 200);
    let notices = api
        .get(&format!("/_dev/mail?to={EMAIL}"), None)
        .await
        .json();
    assert_eq!(notices["messages"][0]["subject"], "Your password was reset");
}

async fn the_inbox_links_open_the_pages(h: Harness) {
    let api = h.serve_local_api().await;
    let inbox = api.get("/_dev/inbox", None).await;
    assert_eq!(inbox.status, 200);
    assert!(inbox.content_type().unwrap().starts_with("text/html"));
    api.post_json("/auth/register", &credentials(EMAIL, PASSWORD), None)
        .await;
    let inbox = String::from_utf8(api.get("/_dev/inbox", None).await.body.to_vec()).unwrap();
    let href = format!("<a href=\"http://{}/verify-email#token=", api.addr);
    assert!(inbox.contains(&href), "{inbox}");
    // No Lambda function serves /_dev/: it is not a route of the API.
    assert!(
        shared::routes::ROUTES
            .iter()
            .all(|r| !r.path.starts_with("/_dev"))
    );
    let page = api.get("/verify-email", None).await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-security-policy").is_some());
}

async fn require_verified_email(backend: Backend) {
    let mut config = test_config();
    config.require_verified_email = true;
    let h = match backend {
        Backend::Dynamo => Harness::dynamo_with(config).await,
        Backend::Embedded => Harness::embedded_with(config),
    };
    let api = h.serve_local_api().await;
    let registered = api
        .post_json("/auth/register", &credentials(EMAIL, PASSWORD), None)
        .await;
    let access = registered.string("access_token");

    // Unverified: the routes that get the address verified, /auth/me and logout only.
    assert_eq!(api.get("/auth/me", Some(&access)).await.status, 200);
    assert_eq!(api.get("/auth/sessions", Some(&access)).await.status, 403);
    let change = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    assert_eq!(
        api.post_json("/auth/password", &change, Some(&access))
            .await
            .status,
        403
    );
    h.clock.advance(61);
    let resend = api
        .post_json("/auth/email/verification", &json!({}), Some(&access))
        .await;
    assert_eq!(resend.status, 202);

    // Verified: the same token goes everywhere from the next request on.
    let verification = mailed_token(&api, EMAIL, "verify-email").await;
    api.post_json(
        "/auth/email/verify",
        &json!({ "token": verification }),
        None,
    )
    .await;
    assert_eq!(api.get("/auth/sessions", Some(&access)).await.status, 200);
    let logout = api
        .post_json("/auth/logout", &json!({}), Some(&access))
        .await;
    assert_eq!(logout.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn require_verified_email_admits_unverified_users_to_few_routes_dynamodb() {
    require_verified_email(Backend::Dynamo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn require_verified_email_admits_unverified_users_to_few_routes_embedded() {
    require_verified_email(Backend::Embedded).await;
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// "Forgot password" for an existing and an unknown address: the same status and body, and
/// medians within a factor of 1.5. Tries alternate, so whatever else the machine does weighs
/// on both alike; the work after the answer is waited for between tries.
async fn forgot_password_timing(backend: Backend) {
    let mut config = test_config();
    config.ip_max_registrations = 1000;
    let h = match backend {
        Backend::Dynamo => Harness::dynamo_with(config).await,
        Backend::Embedded => Harness::embedded_with(config),
    };
    let api = h.serve_local_api().await;
    api.post_json("/auth/register", &credentials(EMAIL, PASSWORD), None)
        .await;
    let mut existing = Vec::new();
    let mut unknown = Vec::new();
    let mut bodies = Vec::new();
    for round in 0..31 {
        for (email, times) in [
            (EMAIL.to_owned(), &mut existing),
            (format!("nobody-{round}@example.com"), &mut unknown),
        ] {
            h.service.outbox_idle().await;
            let started = Instant::now();
            let reply = api
                .post_json("/auth/password/forgot", &json!({ "email": email }), None)
                .await;
            times.push(started.elapsed().as_secs_f64());
            assert_eq!(reply.status, 202);
            bodies.push(reply.body);
        }
    }
    assert!(bodies.windows(2).all(|b| b[0] == b[1]), "identical bodies");
    let (existing, unknown) = (median(existing), median(unknown));
    let ratio = existing.max(unknown) / existing.min(unknown);
    eprintln!(
        "forgot password medians over 31 tries each ({backend:?}): existing {:.3} ms, unknown {:.3} ms, ratio {ratio:.2}",
        existing * 1e3,
        unknown * 1e3
    );
    assert!(ratio < 1.5, "existing {existing} s, unknown {unknown} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forgot_password_takes_as_long_for_existing_and_unknown_addresses_dynamodb() {
    forgot_password_timing(Backend::Dynamo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forgot_password_takes_as_long_for_existing_and_unknown_addresses_embedded() {
    forgot_password_timing(Backend::Embedded).await;
}
