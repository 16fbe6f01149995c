//! The account lifecycle through the Lambda handlers with mail sent through Amazon SES v2, to
//! the SES v2 emulator the test command starts; what was sent is read back from the emulator,
//! so the SES code path itself is exercised.

use integration_tests::{Harness, SES_SENDER, invoke, on_both_stores, ses_emulator_url};
use serde_json::{Value, json};
use shared::Password;

const PASSWORD: &str = "correct horse battery staple";

/// A v2 event for a public route, as API Gateway delivers it.
fn event(path: &str, body: Value) -> Value {
    json!({
        "version": "2.0", "routeKey": format!("POST {path}"), "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "api.example.com"},
        "requestContext": {
            "domainName": "api.example.com", "stage": "$default",
            "http": {"method": "POST", "path": path, "sourceIp": "203.0.113.90"},
            "requestId": "ses", "routeKey": format!("POST {path}"),
        },
        "body": body.to_string(),
        "isBase64Encoded": false,
    })
}

/// What the emulator received for `to`, oldest first.
async fn sent_to(h: &Harness, to: &str) -> Vec<Value> {
    h.service.outbox_idle().await;
    let url = format!("{}/store", ses_emulator_url());
    let store: Value = reqwest_free_get(&url).await;
    store["emails"]
        .as_array()
        .expect("the emulator's store lists emails")
        .iter()
        .filter(|m| {
            m["destination"]["to"]
                .as_array()
                .is_some_and(|to_list| to_list.iter().any(|t| t == to))
        })
        .cloned()
        .collect()
}

/// A GET of a loopback URL with the test crate's HTTP client.
async fn reqwest_free_get(url: &str) -> Value {
    let reply = integration_tests::local::http_get(url).await;
    serde_json::from_slice(&reply).expect("JSON from the emulator")
}

fn token_in(mail: &Value, page: &str) -> String {
    let text = mail["body"]["text"].as_str().expect("a text part");
    let marker = format!("https://api.example.com/{page}#token=");
    let (_, rest) = text
        .split_once(&marker)
        .unwrap_or_else(|| panic!("no {page} link in {text}"));
    rest.split_whitespace().next().unwrap().to_owned()
}

fn address(h: &Harness, name: &str) -> String {
    format!(
        "{name}-{:?}-{}@example.com",
        h.backend,
        uuid::Uuid::new_v4().simple()
    )
    .to_lowercase()
}

on_both_stores!(
    registration_mails_a_verification_link_through_ses,
    a_password_reset_through_ses
);

async fn registration_mails_a_verification_link_through_ses(h: Harness) {
    let h = h.with_ses().await;
    let email = address(&h, "ses-verify");
    let registered = invoke(
        &*h.service,
        &event(
            "/auth/register",
            json!({"email": email, "password": PASSWORD}),
        ),
    )
    .await;
    assert_eq!(registered.status(), 201);

    let mail = sent_to(&h, &email).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    let message = &mail[0];
    assert_eq!(message["from"], SES_SENDER);
    assert_eq!(message["subject"], "Confirm your email address");
    let html = message["body"]["html"].as_str().expect("an HTML part");
    let token = token_in(message, "verify-email");
    assert!(
        html.contains(&format!(
            "https://api.example.com/verify-email#token={token}"
        )),
        "{html}"
    );

    let verified = invoke(
        &*h.service,
        &event("/auth/email/verify", json!({"token": token})),
    )
    .await;
    assert_eq!(verified.status(), 200);
}

async fn a_password_reset_through_ses(h: Harness) {
    let h = h.with_ses().await;
    let email = address(&h, "ses-reset");
    h.service
        .register(&email, &Password::new(PASSWORD), None)
        .await
        .unwrap();
    let forgot = invoke(
        &*h.service,
        &event("/auth/password/forgot", json!({"email": email})),
    )
    .await;
    assert_eq!(forgot.status(), 202);
    let mail = sent_to(&h, &email).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0]["subject"], "Reset your password");
    let token = token_in(&mail[0], "reset-password");

    let new_password = "a brand new horse staple 2026";
    let reset = invoke(
        &*h.service,
        &event(
            "/auth/password/reset",
            json!({"token": token, "password": new_password}),
        ),
    )
    .await;
    assert_eq!(reset.status(), 204);
    let mail = sent_to(&h, &email).await;
    assert_eq!(mail.len(), 2, "and a notice");
    assert_eq!(mail[1]["subject"], "Your password was reset");
    assert!(
        h.service
            .login(&email, &Password::new(new_password), None)
            .await
            .is_ok()
    );
}
