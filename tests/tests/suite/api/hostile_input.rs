//! Hostile input on every route that takes a body, as API Gateway would deliver it:
//! every answer is one of the API's errors (docs/api.md) (or a success), never a crash, never an echo of
//! the password. Property tests throw arbitrary bodies at the handlers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use integration_tests::{Harness, on_both_stores};
use lambda_http::{Body, Response};
use proptest::prelude::*;
use serde_json::{Value, json};
use shared::AuthService;
use shared::http::body_bytes;

const API_CODES: &[&str] = &[
    "invalid_json",
    "invalid_request",
    "payload_too_large",
    "unsupported_media_type",
    "invalid_email",
    "weak_password",
    "email_taken",
    "invalid_credentials",
    "account_disabled",
    "invalid_token",
    "too_many_requests",
    "not_found",
    "method_not_allowed",
    "service_unavailable",
    "internal",
    "invalid_code",
    "mfa_already_enabled",
    "mfa_not_enabled",
    "mfa_setup_required",
    "email_unverified",
    "reauthentication_required",
    "passkey_taken",
    "too_many_passkeys",
    "last_credential",
    "identity_taken",
    "too_many_identities",
    "forbidden",
];

const SECRET_PASSWORD: &str = "s3cret-Pa55word-never-echoed";

/// Every route that takes a body, public or behind the authorizer (whose context the events
/// carry, with the `admin` role): a path to `POST` to, or a method and a path.
const BODY_ROUTES: &[&str] = &[
    "/auth/register",
    "/auth/login",
    "/auth/refresh",
    "/auth/logout",
    "/auth/email/verification",
    "/auth/email",
    "/auth/email/verify",
    "/auth/password/forgot",
    "/auth/password/reset",
    "/auth/mfa/totp/setup",
    "/auth/mfa/totp/confirm",
    "/auth/mfa/recovery-codes",
    "/auth/mfa/verify",
    "/auth/mfa/passkey/options",
    "/auth/passkeys/register/options",
    "/auth/passkeys/register",
    "/auth/passkeys/login/options",
    "/auth/passkeys/login",
    "/auth/oidc/exchange",
    // A user that is nobody: every body that passes is `404 not_found`.
    "PATCH /admin/users/7b3e9f2a-5c1d-4e8b-a6f0-2d4c6e8a0b1c",
];

/// A v2 event for `route` (a path to `POST` to, or a method and a path) with this raw body and
/// content type.
fn event(route: &str, content_type: Option<&str>, body: &[u8], base64: bool) -> Value {
    let (method, path) = route.split_once(' ').unwrap_or(("POST", route));
    let (matched, parameters) = shared::routes::resolve(shared::routes::ROUTES, method, path)
        .unwrap_or_else(|| panic!("no route of shared::routes::ROUTES takes {route}"));
    let key = matched.key();
    let mut headers = json!({"host": "api.example.com"});
    if let Some(ct) = content_type {
        headers["content-type"] = json!(ct);
    }
    let body = if base64 {
        STANDARD.encode(body)
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    let mut event = json!({
        "version": "2.0", "routeKey": key, "rawPath": path, "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "domainName": "api.example.com",
            "http": {"method": method, "path": path, "sourceIp": "203.0.113.50"},
            "requestId": "hostile", "routeKey": key, "stage": "$default",
            "authorizer": {"lambda": {"user_id": "6f1d0c52-8d0e-4c55-9a34-2b8f3c1e7a10",
                                       "user_email": "x@example.com",
                                       "session_id": "0c4b2f6e-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
                                       "roles": "admin"}}
        },
        "body": body,
        "isBase64Encoded": base64,
    });
    if !parameters.is_empty() {
        event["pathParameters"] = json!(parameters);
    }
    event
}

async fn call(service: &AuthService, _path: &str, event: &Value) -> Response<Body> {
    integration_tests::invoke(service, event).await
}

/// A success of the route, or exactly one of the API's problems.
fn assert_contract_answer(path: &str, response: &Response<Body>, case: &str) -> Option<String> {
    let status = response.status().as_u16();
    let body = body_bytes(response.body());
    let text = String::from_utf8_lossy(body);
    assert!(
        !text.contains(SECRET_PASSWORD),
        "{path} {case}: the password is echoed"
    );
    if matches!(status, 200 | 201 | 202 | 204) {
        return None;
    }
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    assert_eq!(
        content_type,
        Some("application/problem+json"),
        "{path} {case}: {status} {text}"
    );
    let problem: Value =
        serde_json::from_slice(body).unwrap_or_else(|_| panic!("{path} {case}: {text}"));
    let code = problem["code"].as_str().unwrap_or_default().to_owned();
    assert!(
        API_CODES.contains(&code.as_str()),
        "{path} {case}: unknown code {code}"
    );
    assert_eq!(problem["status"], status, "{path} {case}");
    assert!(
        status < 500 || code == "service_unavailable",
        "{path} {case}: {status} {text}"
    );
    Some(code)
}

/// A raw body case: name, content type, bytes, sent base64-encoded, the code it must get.
type BodyCase = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    bool,
    &'static str,
);

/// Cases every body-taking route gets, with the code each must produce.
fn body_cases() -> Vec<BodyCase> {
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    vec![
        (
            "malformed JSON",
            Some("application/json"),
            b"{\"email\": ".to_vec(),
            false,
            "invalid_json",
        ),
        (
            "trailing garbage",
            Some("application/json"),
            b"{} {}".to_vec(),
            false,
            "invalid_json",
        ),
        (
            "array",
            Some("application/json"),
            b"[1,2,3]".to_vec(),
            false,
            "invalid_json",
        ),
        (
            "string",
            Some("application/json"),
            b"\"hello\"".to_vec(),
            false,
            "invalid_json",
        ),
        (
            "number",
            Some("application/json"),
            b"42".to_vec(),
            false,
            "invalid_json",
        ),
        (
            "null",
            Some("application/json"),
            b"null".to_vec(),
            false,
            "invalid_json",
        ),
        (
            "invalid UTF-8",
            Some("application/json"),
            vec![b'{', 0xff, 0xfe, b'}'],
            true,
            "invalid_json",
        ),
        (
            "deeply nested",
            Some("application/json"),
            deep.into_bytes(),
            false,
            "payload_too_large",
        ),
        (
            "deeply nested, small",
            Some("application/json"),
            format!("{{\"a\":{}1{}}}", "[".repeat(3000), "]".repeat(3000)).into_bytes(),
            false,
            "invalid_json",
        ),
        (
            "over 16 KiB",
            Some("application/json"),
            format!("{{\"email\":\"{}\"}}", "a".repeat(16 * 1024)).into_bytes(),
            false,
            "payload_too_large",
        ),
        (
            "no content type",
            None,
            b"{}".to_vec(),
            false,
            "unsupported_media_type",
        ),
        (
            "text/plain",
            Some("text/plain"),
            b"{}".to_vec(),
            false,
            "unsupported_media_type",
        ),
        (
            "form",
            Some("application/x-www-form-urlencoded"),
            b"email=a&password=b".to_vec(),
            false,
            "unsupported_media_type",
        ),
        (
            "multipart",
            Some("multipart/form-data; boundary=x"),
            b"--x--".to_vec(),
            false,
            "unsupported_media_type",
        ),
        (
            "json-ish",
            Some("application/json-patch+json"),
            b"[]".to_vec(),
            false,
            "unsupported_media_type",
        ),
        (
            "binary junk as base64",
            Some("application/octet-stream"),
            vec![0, 1, 2, 255],
            true,
            "unsupported_media_type",
        ),
        (
            "NUL in a key",
            Some("application/json"),
            b"{\"em\\u0000ail\": \"a\"}".to_vec(),
            false,
            "invalid_request",
        ),
    ]
}

/// Field-level cases for the credentials routes.
fn credential_cases() -> Vec<(&'static str, Value, &'static [&'static str])> {
    let long = "a".repeat(10_000);
    vec![
        (
            "missing email",
            json!({"password": SECRET_PASSWORD}),
            &["invalid_request"],
        ),
        (
            "missing password",
            json!({"email": "a@example.com"}),
            &["invalid_request"],
        ),
        (
            "null email",
            json!({"email": null, "password": SECRET_PASSWORD}),
            &["invalid_request"],
        ),
        (
            "null password",
            json!({"email": "a@example.com", "password": null}),
            &["invalid_request"],
        ),
        (
            "number email",
            json!({"email": 5, "password": SECRET_PASSWORD}),
            &["invalid_request"],
        ),
        (
            "bool password",
            json!({"email": "a@example.com", "password": true}),
            &["invalid_request"],
        ),
        (
            "array email",
            json!({"email": ["a@example.com"], "password": SECRET_PASSWORD}),
            &["invalid_request"],
        ),
        (
            "object password",
            json!({"email": "a@example.com", "password": {"p": SECRET_PASSWORD}}),
            &["invalid_request"],
        ),
        (
            "unknown field",
            json!({"email": "a@example.com", "password": SECRET_PASSWORD, "admin": true}),
            &["invalid_request"],
        ),
        ("empty object", json!({}), &["invalid_request"]),
        (
            "NUL in email",
            json!({"email": "a\u{0}@example.com", "password": SECRET_PASSWORD}),
            &["invalid_email"],
        ),
        (
            "control characters in email",
            json!({"email": "a\u{7}\u{1b}[31m@example.com", "password": SECRET_PASSWORD}),
            &["invalid_email"],
        ),
        (
            "very long email",
            json!({"email": format!("{long}@example.com"), "password": SECRET_PASSWORD}),
            &["invalid_email"],
        ),
        (
            "non-ASCII email",
            json!({"email": "josé@exämple.com", "password": SECRET_PASSWORD}),
            &["invalid_email", "invalid_credentials", "email_taken"],
        ),
        (
            "emoji email",
            json!({"email": "🦀@🦀.rs", "password": SECRET_PASSWORD}),
            &["invalid_email", "invalid_credentials", "email_taken"],
        ),
        (
            "right-to-left override",
            json!({"email": "a\u{202e}b@example.com", "password": SECRET_PASSWORD}),
            &["invalid_email", "invalid_credentials", "email_taken"],
        ),
        (
            "NUL in password",
            json!({"email": "nul@example.com", "password": "abc\u{0}defgh12345"}),
            &["weak_password", "invalid_credentials"],
        ),
        (
            "very long password",
            json!({"email": "long@example.com", "password": long}),
            &["weak_password", "invalid_credentials"],
        ),
        (
            "non-ASCII password",
            json!({"email": "utf@example.com", "password": "пароль-ソース-🔑-9"}),
            &["weak_password", "invalid_credentials"],
        ),
        (
            "empty strings",
            json!({"email": "", "password": ""}),
            &["invalid_email"],
        ),
    ]
}

on_both_stores!(hostile_bodies_get_contract_errors_and_change_nothing);

async fn hostile_bodies_get_contract_errors_and_change_nothing(h: Harness) {
    let mut checked = 0;
    for path in BODY_ROUTES {
        for (case, content_type, body, base64, expected) in body_cases() {
            let response = call(&h.service, path, &event(path, content_type, &body, base64)).await;
            let code = assert_contract_answer(path, &response, case);
            // The logout and verification bodies are optional, so "{} {}" and friends are the
            // only JSON they see here.
            assert_eq!(code.as_deref(), Some(expected), "{path} {case}");
            checked += 1;
        }
    }
    let mut registered = 0;
    for path in ["/auth/register", "/auth/login"] {
        for (case, body, allowed) in credential_cases() {
            let response = call(
                &h.service,
                path,
                &event(
                    path,
                    Some("application/json"),
                    body.to_string().as_bytes(),
                    false,
                ),
            )
            .await;
            match assert_contract_answer(path, &response, case) {
                Some(code) => assert!(allowed.contains(&code.as_str()), "{path} {case}: {code}"),
                // Unusual but valid input may register (a non-ASCII address, a long password).
                None if path == "/auth/register" => registered += 1,
                None => {}
            }
            checked += 1;
        }
    }
    for (case, body) in [
        ("refresh: missing", json!({})),
        ("refresh: null", json!({"refresh_token": null})),
        ("refresh: number", json!({"refresh_token": 1})),
        (
            "refresh: unknown field",
            json!({"refresh_token": "a.b.c", "x": 1}),
        ),
        (
            "refresh: huge",
            json!({"refresh_token": "a".repeat(15_000)}),
        ),
        ("refresh: NUL", json!({"refresh_token": "a.b\u{0}.c"})),
    ] {
        let response = call(
            &h.service,
            "/auth/refresh",
            &event(
                "/auth/refresh",
                Some("application/json"),
                body.to_string().as_bytes(),
                false,
            ),
        )
        .await;
        let code = assert_contract_answer("/auth/refresh", &response, case);
        assert!(
            matches!(code.as_deref(), Some("invalid_request" | "invalid_token")),
            "{case}: {code:?}"
        );
        checked += 1;
    }
    for (case, body) in [
        ("logout: all is a string", json!({"all": "yes"})),
        ("logout: all null", json!({"all": null})),
        ("logout: unknown", json!({"everything": true})),
    ] {
        let response = call(
            &h.service,
            "/auth/logout",
            &event(
                "/auth/logout",
                Some("application/json"),
                body.to_string().as_bytes(),
                false,
            ),
        )
        .await;
        assert_eq!(
            assert_contract_answer("/auth/logout", &response, case).as_deref(),
            Some("invalid_request"),
            "{case}"
        );
        checked += 1;
    }
    // The emailed-token routes: a token that is not one, of every shape.
    for path in ["/auth/email/verify", "/auth/password/reset"] {
        for (case, token) in [
            ("missing", None),
            ("null", Some(Value::Null)),
            ("number", Some(json!(7))),
            ("array", Some(json!(["t"]))),
            ("empty", Some(json!(""))),
            ("huge", Some(json!("a".repeat(15_000)))),
            ("NUL", Some(json!("a\u{0}b"))),
            ("plausible but unknown", Some(json!("A".repeat(43)))),
            ("a JWT", Some(json!("eyJhbGciOiJFZERTQSJ9.e30.c2ln"))),
        ] {
            let mut body = json!({"password": SECRET_PASSWORD});
            if path == "/auth/email/verify" {
                body = json!({});
            }
            if let Some(token) = token {
                body["token"] = token;
            }
            let response = call(
                &h.service,
                path,
                &event(
                    path,
                    Some("application/json"),
                    body.to_string().as_bytes(),
                    false,
                ),
            )
            .await;
            let code = assert_contract_answer(path, &response, case);
            assert!(
                matches!(code.as_deref(), Some("invalid_request" | "invalid_token")),
                "{path} {case}: {code:?}"
            );
            checked += 1;
        }
    }
    for (case, body, allowed) in credential_cases() {
        let Some(email) = body.get("email").cloned() else {
            continue;
        };
        let path = "/auth/password/forgot";
        let response = call(
            &h.service,
            path,
            &event(
                path,
                Some("application/json"),
                json!({ "email": email }).to_string().as_bytes(),
                false,
            ),
        )
        .await;
        if let Some(code) = assert_contract_answer(path, &response, case) {
            assert!(
                code == "invalid_request" || allowed.contains(&code.as_str()),
                "{path} {case}: {code}"
            );
        }
        checked += 1;
    }

    // Second factors of every wrong shape: refused before anything is looked up.
    for (case, body) in [
        (
            "code of five digits",
            json!({"mfa_token": "A".repeat(43), "code": "12345"}),
        ),
        (
            "code of letters",
            json!({"mfa_token": "A".repeat(43), "code": "abcdef"}),
        ),
        (
            "code of Arabic-Indic digits",
            json!({"mfa_token": "A".repeat(43), "code": "١٢٣٤٥٦"}),
        ),
        (
            "code as a number",
            json!({"mfa_token": "A".repeat(43), "code": 123456}),
        ),
        (
            "recovery code too short",
            json!({"mfa_token": "A".repeat(43), "recovery_code": "abcd"}),
        ),
        (
            "recovery code with NUL",
            json!({"mfa_token": "A".repeat(43), "recovery_code": "abcd-efgh-ij\u{0}m"}),
        ),
        (
            "both kinds",
            json!({"mfa_token": "A".repeat(43), "code": "123456", "recovery_code": "abcd-efgh-ijkm"}),
        ),
        ("no code", json!({"mfa_token": "A".repeat(43)})),
        ("no token", json!({"code": "123456"})),
        (
            "an unknown token",
            json!({"mfa_token": "A".repeat(43), "code": "123456"}),
        ),
        (
            "an access token",
            json!({"mfa_token": "eyJhbGciOiJFZERTQSJ9.e30.c2ln", "code": "123456"}),
        ),
    ] {
        let path = "/auth/mfa/verify";
        let response = call(
            &h.service,
            path,
            &event(
                path,
                Some("application/json"),
                body.to_string().as_bytes(),
                false,
            ),
        )
        .await;
        let code = assert_contract_answer(path, &response, case);
        assert!(
            matches!(code.as_deref(), Some("invalid_request" | "invalid_token")),
            "{case}: {code:?}"
        );
        checked += 1;
    }

    // Passkey answers that are not ones, each to a live sign-in ceremony of its own: refused
    // as a request or as credentials, never a crash.
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    for (case, credential) in [
        ("a string", json!("credential")),
        ("an array", json!([1, 2, 3])),
        ("an empty object", json!({})),
        (
            "no response",
            json!({"id": "AAAA", "rawId": "AAAA", "type": "public-key"}),
        ),
        (
            "garbage base64",
            json!({"id": "!!", "rawId": "!!", "type": "public-key",
                   "response": {"clientDataJSON": "%%", "authenticatorData": "%%", "signature": "%%"}}),
        ),
        (
            "the wrong types",
            json!({"id": 1, "rawId": [1], "type": null, "response": "x"}),
        ),
        (
            "an unknown credential",
            json!({"id": "c2FtcGxl", "rawId": "c2FtcGxl", "type": "public-key",
                   "response": {"clientDataJSON": "e30", "authenticatorData": "AAAA",
                                "signature": "AAAA", "userHandle": "AAAA"}}),
        ),
        (
            "deep nesting",
            serde_json::from_str::<Value>(&format!("{{\"x\": {deep}}}")).unwrap_or(json!({})),
        ),
    ] {
        let options = h
            .service
            .passkey_sign_in_options(None, None)
            .await
            .expect("a ceremony");
        let path = "/auth/passkeys/login";
        let body = json!({"ceremony_id": options.ceremony_id, "credential": credential});
        let response = call(
            &h.service,
            path,
            &event(
                path,
                Some("application/json"),
                body.to_string().as_bytes(),
                false,
            ),
        )
        .await;
        let code = assert_contract_answer(path, &response, case);
        assert!(
            matches!(
                code.as_deref(),
                Some("invalid_request" | "invalid_credentials" | "payload_too_large")
            ),
            "{case}: {code:?}"
        );
        checked += 1;
    }

    // A base64-encoded JSON body is read like any other.
    let good =
        json!({"email": "b64@example.com", "password": "correct horse battery staple"}).to_string();
    let response = call(
        &h.service,
        "/auth/register",
        &event(
            "/auth/register",
            Some("application/json"),
            good.as_bytes(),
            true,
        ),
    )
    .await;
    assert_eq!(response.status(), 201);
    checked += 1;

    // None of the refusals stored anything.
    assert_eq!(
        h.stored_user_count().await,
        1 + registered,
        "after {checked} hostile requests"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    /// Arbitrary bytes and content types on every body-taking route: always a contract answer.
    #[test]
    fn arbitrary_bodies_never_crash_a_handler(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        content_type in prop_oneof![Just(None), Just(Some("application/json".to_owned())), Just(Some("text/plain".to_owned())), "[ -~]{0,40}".prop_map(Some)],
        base64 in any::<bool>(),
        route in 0usize..BODY_ROUTES.len(),
    ) {
        let h = Harness::embedded();
        let path = BODY_ROUTES[route];
        let response = runtime().block_on(call(&h.service, path, &event(path, content_type.as_deref(), &body, base64)));
        assert_contract_answer(path, &response, "arbitrary");
    }

    /// Arbitrary JSON objects of strings and other values as credentials.
    #[test]
    fn arbitrary_credentials_never_crash_a_handler(
        email in prop_oneof![Just(Value::Null), any::<i64>().prop_map(Value::from), ".{0,80}".prop_map(Value::from), "[a-z]{1,10}@[a-z]{1,10}\\.[a-z]{2,4}".prop_map(Value::from)],
        password in prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::from), ".{0,140}".prop_map(Value::from)],
        register in any::<bool>(),
    ) {
        let h = Harness::embedded();
        let path = if register { "/auth/register" } else { "/auth/login" };
        let body = json!({"email": email, "password": password}).to_string();
        let response = runtime().block_on(call(&h.service, path, &event(path, Some("application/json"), body.as_bytes(), false)));
        assert_contract_answer(path, &response, "arbitrary credentials");
    }
}
