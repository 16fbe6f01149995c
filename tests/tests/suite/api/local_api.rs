//! Black-box tests of the local API with a real HTTP client, on both stores: routing by the
//! route table, the full journey, every error code of docs/api.md, and `/_dev/mail`'s times in
//! the API's one format.

use integration_tests::local::{LocalApi, Reply};
use integration_tests::{Harness, on_both_stores};
use serde_json::{Value, json};
use shared::Clock;

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";

fn credentials(email: &str, password: &str) -> Value {
    json!({"email": email, "password": password})
}

fn assert_problem(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{code}: {:?}", reply.json());
    assert_eq!(
        reply.content_type(),
        Some("application/problem+json"),
        "{code}"
    );
    let body = reply.json();
    assert_eq!(body["code"], code);
    assert_eq!(body["status"], status);
    assert_eq!(body["type"], "about:blank");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
}

fn assert_gateway(reply: &Reply, status: u16, message: &str) {
    assert_eq!(reply.status, status);
    assert_eq!(reply.json(), json!({ "message": message }));
}

on_both_stores!(
    every_template_route_is_served_and_protected_as_declared,
    nothing_else_is_served,
    the_full_journey,
    every_error_code_of_the_contract,
    responses_carry_a_request_id_and_never_a_secret_header,
    dev_mail_times_are_rfc3339_utc_like_every_time_in_the_api,
);

async fn every_template_route_is_served_and_protected_as_declared(h: Harness) {
    let api = h.serve_local_api().await;
    let signed_in = api
        .post_json("/auth/register", &credentials(EMAIL, PASSWORD), None)
        .await;
    let access = signed_in.string("access_token");
    let session_id = api.get("/auth/sessions", Some(&access)).await.json()["sessions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    for route in shared::routes::ROUTES.iter().filter(|r| !r.is_default()) {
        let path = route.path.replace("{id}", &session_id);
        // Without credentials.
        let anonymous = api.send(route.method, &path, &[], "").await;
        if route.is_protected() {
            assert_gateway(&anonymous, 401, "Unauthorized");
            // A wrong token: the authorizer denies.
            let denied = api
                .send(route.method, &path, &[("authorization", "Bearer nope")], "")
                .await;
            assert_gateway(&denied, 403, "Forbidden");
        } else {
            assert_ne!(anonymous.status, 401, "{} is public", route.key());
            assert_ne!(anonymous.status, 403, "{} is public", route.key());
            assert!(
                anonymous.json().get("message").is_none(),
                "the function answered {}",
                route.key()
            );
        }
    }

    // With a valid token every protected route reaches its function.
    let me = api.get("/auth/me", Some(&access)).await;
    assert_eq!(me.status, 200);
    let listed = api.get("/auth/sessions", Some(&access)).await;
    assert_eq!(listed.status, 200);
}

async fn nothing_else_is_served(h: Harness) {
    let api = h.serve_local_api().await;
    for path in [
        "/",
        "/auth",
        "/auth/me/",
        "/auth/unknown",
        "/.well-known/other",
        "/auth/sessions/a/b",
        "/admin",
    ] {
        for method in ["GET", "POST"] {
            let reply = api.send(method, path, &[], "").await;
            assert_problem(&reply, 404, "not_found");
        }
    }
    for (method, path, allow) in [
        ("GET", "/auth/login", "POST"),
        ("PUT", "/auth/register", "POST"),
        ("DELETE", "/auth/me", "GET"),
        ("POST", "/auth/sessions", "GET"),
        ("GET", "/auth/sessions/42", "DELETE"),
        ("POST", "/.well-known/jwks.json", "GET"),
    ] {
        let reply = api.send(method, path, &[], "").await;
        assert_problem(&reply, 405, "method_not_allowed");
        assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
    }
}

async fn the_full_journey(h: Harness) {
    let api = h.serve_local_api().await;

    // Register, then the protected /auth/me.
    let registered = api
        .post_json("/auth/register", &credentials(EMAIL, PASSWORD), None)
        .await;
    assert_eq!(registered.status, 201);
    assert_eq!(registered.header("cache-control"), Some("no-store"));
    assert_eq!(registered.json()["token_type"], "Bearer");
    let first_access = registered.string("access_token");
    let me = api.get("/auth/me", Some(&first_access)).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["user"]["email"], EMAIL);

    // Log in again: a second session.
    let login = api
        .post_json(
            "/auth/login",
            &credentials("ADA@example.com", PASSWORD),
            None,
        )
        .await;
    assert_eq!(login.status, 200);
    let refresh = login.string("refresh_token");

    // Refresh, and a replay within the grace window gets the same pair.
    h.clock.advance(30);
    let rotated = api
        .post_json("/auth/refresh", &json!({"refresh_token": refresh}), None)
        .await;
    assert_eq!(rotated.status, 200);
    h.clock.advance(h.config.refresh_reuse_grace_secs - 1);
    let replayed = api
        .post_json("/auth/refresh", &json!({"refresh_token": refresh}), None)
        .await;
    assert_eq!(replayed.status, 200);
    assert_eq!(
        replayed.string("access_token"),
        rotated.string("access_token")
    );
    assert_eq!(
        replayed.string("refresh_token"),
        rotated.string("refresh_token")
    );
    let access = rotated.string("access_token");
    assert_eq!(api.get("/auth/me", Some(&access)).await.status, 200);

    // Sessions: two, the current one marked.
    let sessions = api.get("/auth/sessions", Some(&access)).await;
    assert_eq!(sessions.status, 200);
    let list = sessions.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    let current: Vec<_> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let other_id = list.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Revoke the other (the registration's) session.
    let revoked = api
        .send(
            "DELETE",
            &format!("/auth/sessions/{other_id}"),
            &[("authorization", &format!("Bearer {access}"))],
            "",
        )
        .await;
    assert_eq!(revoked.status, 204);
    assert_gateway(
        &api.get("/auth/me", Some(&first_access)).await,
        403,
        "Forbidden",
    );

    // Reuse after the grace window revokes the chain.
    h.clock.advance(h.config.refresh_reuse_grace_secs + 1);
    let reused = api
        .post_json("/auth/refresh", &json!({"refresh_token": refresh}), None)
        .await;
    assert_problem(&reused, 401, "invalid_token");
    assert_gateway(&api.get("/auth/me", Some(&access)).await, 403, "Forbidden");
    let newest = rotated.string("refresh_token");
    assert_problem(
        &api.post_json("/auth/refresh", &json!({"refresh_token": newest}), None)
            .await,
        401,
        "invalid_token",
    );

    // Log out one session, then all.
    let a = api
        .post_json("/auth/login", &credentials(EMAIL, PASSWORD), None)
        .await;
    let b = api
        .post_json("/auth/login", &credentials(EMAIL, PASSWORD), None)
        .await;
    let c = api
        .post_json("/auth/login", &credentials(EMAIL, PASSWORD), None)
        .await;
    let (a, b, c) = (
        a.string("access_token"),
        b.string("access_token"),
        c.string("access_token"),
    );
    let out = api
        .send(
            "POST",
            "/auth/logout",
            &[("authorization", &format!("Bearer {a}"))],
            "",
        )
        .await;
    assert_eq!(out.status, 204);
    assert_gateway(&api.get("/auth/me", Some(&a)).await, 403, "Forbidden");
    assert_eq!(api.get("/auth/me", Some(&b)).await.status, 200);
    let all = api
        .post_json("/auth/logout", &json!({"all": true}), Some(&b))
        .await;
    assert_eq!(all.status, 204);
    assert_gateway(&api.get("/auth/me", Some(&b)).await, 403, "Forbidden");
    assert_gateway(&api.get("/auth/me", Some(&c)).await, 403, "Forbidden");
}

async fn every_error_code_of_the_contract(h: Harness) {
    let api = h.serve_local_api().await;
    let json_header = [("content-type", "application/json")];

    assert_problem(
        &api.send("POST", "/auth/login", &json_header, "{not json")
            .await,
        400,
        "invalid_json",
    );
    assert_problem(
        &api.send("POST", "/auth/login", &json_header, "[1,2]").await,
        400,
        "invalid_json",
    );
    assert_problem(
        &api.post_json("/auth/login", &json!({"email": EMAIL}), None)
            .await,
        400,
        "invalid_request",
    );
    assert_problem(
        &api.post_json(
            "/auth/login",
            &json!({"email": null, "password": "x"}),
            None,
        )
        .await,
        400,
        "invalid_request",
    );
    assert_problem(
        &api.post_json("/auth/login", &json!({"email": 5, "password": "x"}), None)
            .await,
        400,
        "invalid_request",
    );
    let big = format!("{{\"email\":\"{}\"}}", "a".repeat(17 * 1024));
    assert_problem(
        &api.send("POST", "/auth/register", &json_header, big).await,
        413,
        "payload_too_large",
    );
    assert_problem(
        &api.send(
            "POST",
            "/auth/register",
            &[("content-type", "text/plain")],
            "{}",
        )
        .await,
        415,
        "unsupported_media_type",
    );
    assert_problem(
        &api.post_json(
            "/auth/register",
            &credentials("not-an-email", PASSWORD),
            None,
        )
        .await,
        422,
        "invalid_email",
    );
    let weak = api
        .post_json("/auth/register", &credentials(EMAIL, "password1"), None)
        .await;
    assert_problem(&weak, 422, "weak_password");
    assert_eq!(weak.json()["errors"][0]["field"], "password");

    let registered = api
        .post_json("/auth/register", &credentials(EMAIL, PASSWORD), None)
        .await;
    assert_eq!(registered.status, 201);
    assert_problem(
        &api.post_json("/auth/register", &credentials(EMAIL, PASSWORD), None)
            .await,
        409,
        "email_taken",
    );
    assert_problem(
        &api.post_json("/auth/login", &credentials(EMAIL, "wrong password!"), None)
            .await,
        401,
        "invalid_credentials",
    );
    assert_problem(
        &api.post_json(
            "/auth/login",
            &credentials("nobody@example.com", PASSWORD),
            None,
        )
        .await,
        401,
        "invalid_credentials",
    );
    assert_problem(
        &api.post_json("/auth/refresh", &json!({"refresh_token": "garbage"}), None)
            .await,
        401,
        "invalid_token",
    );

    let user_id: uuid::Uuid = registered.json()["user"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    h.store
        .set_active(user_id, false, h.clock.now())
        .await
        .unwrap();
    assert_problem(
        &api.post_json("/auth/login", &credentials(EMAIL, PASSWORD), None)
            .await,
        403,
        "account_disabled",
    );

    // Repeated failures for one email: 429 with Retry-After.
    for _ in 0..h.config.login_max_failures {
        let reply = api
            .post_json(
                "/auth/login",
                &credentials("target@example.com", "wrong password!"),
                None,
            )
            .await;
        assert_problem(&reply, 401, "invalid_credentials");
    }
    let throttled = api
        .post_json(
            "/auth/login",
            &credentials("target@example.com", "wrong password!"),
            None,
        )
        .await;
    assert_problem(&throttled, 429, "too_many_requests");
    assert_eq!(throttled.header("retry-after"), Some("1"));

    assert_problem(&api.get("/nowhere", None).await, 404, "not_found");
    assert_problem(
        &api.send("PATCH", "/auth/login", &[], "").await,
        405,
        "method_not_allowed",
    );

    // A stored hash the service cannot read: the generic 500, with nothing internal in it.
    h.create_user_with_unreadable_hash("broken@example.com")
        .await;
    let internal = api
        .post_json(
            "/auth/login",
            &credentials("broken@example.com", PASSWORD),
            None,
        )
        .await;
    assert_problem(&internal, 500, "internal");
    assert!(
        !internal.json().to_string().contains("phc"),
        "{}",
        internal.json()
    );
}

async fn responses_carry_a_request_id_and_never_a_secret_header(h: Harness) {
    let api = h.serve_local_api().await;
    let reply = api
        .post_json("/auth/register", &credentials(EMAIL, PASSWORD), None)
        .await;
    let id = reply.header("apigw-requestid").unwrap().to_owned();
    assert_eq!(id.len(), 16);
    let other = api.get("/.well-known/jwks.json", None).await;
    assert_ne!(other.header("apigw-requestid").unwrap(), id);
    assert_eq!(other.header("cache-control"), Some("public, max-age=300"));
    assert!(
        reply
            .headers
            .keys()
            .all(|name| !name.as_str().contains("token"))
    );
}

fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn dev_mail_times_are_rfc3339_utc_like_every_time_in_the_api(h: Harness) {
    let api = h.serve_local_api().await;
    // The local mailer keeps mail by the system's clock, not the harness's.
    let before = system_now();
    let registered = api
        .post_json("/auth/register", &credentials(EMAIL, PASSWORD), None)
        .await;
    assert_eq!(registered.status, 201);
    let mail = api
        .get(&format!("/_dev/mail?to={EMAIL}"), None)
        .await
        .json();
    let after = system_now();
    let sent_at = &mail["messages"][0]["sent_at"];
    let sent_at = sent_at
        .as_str()
        .unwrap_or_else(|| panic!("sent_at is not an RFC 3339 string: {sent_at}"));
    // Exactly what the API's other times look like (`created_at`, `expires_at`, ...): second
    // precision and `Z`, from the one formatter, at a second while the mail was sent.
    assert!(
        (before..=after).any(|t| shared::clock::rfc3339(t) == sent_at),
        "sent_at {sent_at:?} is not RFC 3339 UTC between {} and {}",
        shared::clock::rfc3339(before),
        shared::clock::rfc3339(after)
    );
    let created_at = registered.json()["user"]["created_at"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sent_at.len(), created_at.len(), "{sent_at} {created_at}");
    assert!(sent_at.ends_with('Z') && created_at.ends_with('Z'));
}

#[tokio::test]
async fn an_unreachable_store_answers_503_with_retry_after() {
    let h = Harness::unreachable_dynamo(integration_tests::test_config()).await;
    let api: LocalApi = h.serve_local_api().await;
    let reply = api
        .post_json("/auth/login", &credentials(EMAIL, PASSWORD), None)
        .await;
    assert_problem(&reply, 503, "service_unavailable");
    assert!(reply.header("retry-after").is_some());
}
