//! Every file in `events/` is fed to the handler of its function, once as it is (sample tokens
//! and ids that the store does not know) and once patched with a live session, and the answer is
//! checked. A new event file without a test here fails the suite, so the folder cannot rot.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use integration_tests::{Harness, invoke, on_both_stores};
use lambda_http::{Body, Response};
use serde_json::{Value, json};
use shared::authorizer;
use shared::handlers::Published;
use shared::http::body_bytes;
use shared::{Password, Principal, SignedIn};

const EVENT_FILES: &[&str] = &[
    "account-delete.json",
    "account-page.json",
    "admin-user-delete.json",
    "admin-user-sessions-revoke.json",
    "admin-user-sessions.json",
    "admin-user-update.json",
    "admin-user.json",
    "admin-users-list.json",
    "authorizer-v1-request.json",
    "authorizer-v1-token.json",
    "authorizer-v2-request.json",
    "email-change.json",
    "email-verification.json",
    "email-verify.json",
    "identities-list.json",
    "identities-unlink.json",
    "jwks.json",
    "login.json",
    "logout-all.json",
    "logout.json",
    "me.json",
    "mfa-confirm.json",
    "mfa-disable.json",
    "mfa-passkey-options.json",
    "mfa-recovery-codes.json",
    "mfa-setup.json",
    "mfa-verify.json",
    "oidc-callback-form.json",
    "oidc-callback.json",
    "oidc-exchange.json",
    "oidc-link.json",
    "oidc-providers.json",
    "oidc-start.json",
    "openid-configuration.json",
    "passkeys-list.json",
    "passkeys-login-options.json",
    "passkeys-login.json",
    "passkeys-register-options.json",
    "passkeys-register.json",
    "passkeys-remove.json",
    "passkeys-rename.json",
    "password-forgot.json",
    "password-reset.json",
    "password.json",
    "refresh.json",
    "register.json",
    "reset-password-page.json",
    "security-events.json",
    "sessions-list.json",
    "sessions-revoke.json",
    "verify-email-page.json",
];

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";

fn event(name: &str) -> Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut sample: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    // The samples name env.json's issuer (`sam local`'s); the harness has its own.
    if let Some(issuer) = sample.pointer_mut("/requestContext/authorizer/lambda/issuer") {
        *issuer = json!(integration_tests::test_config().issuer);
    }
    sample
}

fn json_body(response: &Response<Body>) -> Value {
    serde_json::from_slice(body_bytes(response.body())).unwrap_or(Value::Null)
}

fn with_principal(mut event: Value, principal: &Principal) -> Value {
    event["requestContext"]["authorizer"]["lambda"] = json!({
        "user_id": principal.user_id.to_string(),
        "user_email": principal.user_email,
        "session_id": principal.chain_id.to_string(),
        "email_verified": principal.email_verified.to_string(),
        "mfa": principal.mfa.to_string(),
        "roles": principal.roles.join(","),
    });
    event
}

fn with_body(mut event: Value, body: Value) -> Value {
    event["body"] = json!(body.to_string());
    event
}

/// The links of these events point to the API's own domain, as in AWS without `APP_URL`.
const EVENT_LINKS: &str = "https://abcdef1234.execute-api.eu-west-1.amazonaws.com";

fn with_bearer(mut event: Value, token: &str) -> Value {
    let value = format!("Bearer {token}");
    if event.get("identitySource").is_some() {
        event["identitySource"] = json!([value]);
        event["headers"]["authorization"] = json!(value);
    }
    if event.get("authorizationToken").is_some() {
        event["authorizationToken"] = json!(value);
    }
    if event["headers"].get("Authorization").is_some() {
        event["headers"]["Authorization"] = json!(value);
        event["multiValueHeaders"]["Authorization"] = json!([value]);
    }
    event
}

async fn sign_in(h: &Harness) -> (SignedIn, Principal) {
    let signed_in = h
        .service
        .register(EMAIL, &Password::new(PASSWORD), None)
        .await
        .unwrap();
    let principal = h.service.authorize(&signed_in.access_token).await.unwrap();
    (signed_in, principal)
}

#[test]
fn every_event_file_has_a_test() {
    let dir = format!("{}/../events", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, EVENT_FILES, "add a test for each new event file");
}

on_both_stores!(
    register_event,
    login_event,
    refresh_event,
    logout_event,
    logout_all_event,
    me_event,
    password_event,
    sessions_list_event,
    sessions_revoke_event,
    jwks_and_openid_configuration_events,
    authorizer_v2_request_event,
    authorizer_v1_token_event,
    authorizer_v1_request_event,
    email_verification_event,
    email_change_event,
    email_verify_event,
    password_forgot_event,
    password_reset_event,
    page_events,
    mfa_setup_event,
    mfa_confirm_event,
    mfa_disable_event,
    mfa_recovery_codes_event,
    mfa_verify_event,
    passkey_events,
    mfa_passkey_options_event,
    admin_events,
    account_delete_event,
    security_events_event,
);

/// The OpenID Connect events run against a provider of the test's own (the hostile fake,
/// honest here), configured as the events' `google` and `apple`.
mod oidc {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn dynamodb() {
        super::oidc_events(integration_tests::Backend::Dynamo).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn embedded() {
        super::oidc_events(integration_tests::Backend::Embedded).await;
    }
}

async fn register_event(h: Harness) {
    let response = invoke(&*h.service, &event("register.json")).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json_body(&response);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["user"]["email"], EMAIL);
    assert!(body["user"].get("password_hash").is_none());
    assert!(
        h.service
            .authorize(body["access_token"].as_str().unwrap())
            .await
            .is_ok()
    );

    let again = invoke(&*h.service, &event("register.json")).await;
    assert_eq!(again.status(), 409);
    assert_eq!(json_body(&again)["code"], "email_taken");
}

async fn login_event(h: Harness) {
    let before = invoke(&*h.service, &event("login.json")).await;
    assert_eq!(before.status(), 401);
    assert_eq!(json_body(&before)["code"], "invalid_credentials");

    sign_in(&h).await;
    let response = invoke(&*h.service, &event("login.json")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json_body(&response)["user"]["email"], EMAIL);
}

async fn refresh_event(h: Harness) {
    let sample = invoke(&*h.service, &event("refresh.json")).await;
    assert_eq!(sample.status(), 401);
    assert_eq!(json_body(&sample)["code"], "invalid_token");

    let (signed_in, _) = sign_in(&h).await;
    let mut live = event("refresh.json");
    live["body"] = json!(json!({"refresh_token": signed_in.refresh_token}).to_string());
    let response = invoke(&*h.service, &live).await;
    assert_eq!(response.status(), 200);
    let body = json_body(&response);
    assert_ne!(body["refresh_token"], json!(signed_in.refresh_token));
}

async fn logout_event(h: Harness) {
    let sample = invoke(&*h.service, &event("logout.json")).await;
    assert_eq!(sample.status(), 401, "the sample principal does not exist");

    let (signed_in, principal) = sign_in(&h).await;
    let other = h
        .service
        .login(EMAIL, &Password::new(PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let response = invoke(
        &*h.service,
        &with_principal(event("logout.json"), &principal),
    )
    .await;
    assert_eq!(response.status(), 204);
    assert!(h.service.authorize(&signed_in.access_token).await.is_err());
    assert!(h.service.authorize(&other.access_token).await.is_ok());
}

async fn logout_all_event(h: Harness) {
    let (signed_in, principal) = sign_in(&h).await;
    let other = h
        .service
        .login(EMAIL, &Password::new(PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let response = invoke(
        &*h.service,
        &with_principal(event("logout-all.json"), &principal),
    )
    .await;
    assert_eq!(response.status(), 204);
    assert!(h.service.authorize(&signed_in.access_token).await.is_err());
    assert!(h.service.authorize(&other.access_token).await.is_err());
}

async fn me_event(h: Harness) {
    let sample = invoke(&*h.service, &event("me.json")).await;
    assert_eq!(sample.status(), 401);

    let (signed_in, principal) = sign_in(&h).await;
    let response = invoke(&*h.service, &with_principal(event("me.json"), &principal)).await;
    assert_eq!(response.status(), 200);
    let body = json_body(&response);
    assert_eq!(body["user"]["id"], json!(signed_in.user.id));
    assert_eq!(body["user"]["email"], EMAIL);
    assert_eq!(body["user"]["is_active"], true);
    assert!(body["user"]["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(body["user"].get("password_hash").is_none());
}

async fn password_event(h: Harness) {
    let sample = invoke(&*h.service, &event("password.json")).await;
    assert_eq!(sample.status(), 401, "the sample principal does not exist");

    let (signed_in, principal) = sign_in(&h).await;
    let other = h
        .service
        .login(EMAIL, &Password::new(PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let live = with_principal(event("password.json"), &principal);
    let response = invoke(&*h.service, &live).await;
    assert_eq!(response.status(), 204);
    assert!(
        h.service.authorize(&signed_in.access_token).await.is_ok(),
        "this session stays"
    );
    assert!(
        h.service.authorize(&other.access_token).await.is_err(),
        "the others end"
    );
    let new_password = Password::new("a brand new horse staple 2026");
    assert!(h.service.login(EMAIL, &new_password, None).await.is_ok());
}

async fn sessions_list_event(h: Harness) {
    let (_, principal) = sign_in(&h).await;
    let response = invoke(
        &*h.service,
        &with_principal(event("sessions-list.json"), &principal),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body = json_body(&response);
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], json!(principal.chain_id));
    assert_eq!(sessions[0]["current"], true);
    for field in ["created_at", "last_used_at", "expires_at"] {
        assert!(sessions[0][field].is_string(), "{field}");
    }
}

async fn sessions_revoke_event(h: Harness) {
    let (_, principal) = sign_in(&h).await;
    // The sample's session id is not this user's: not found.
    let sample = invoke(
        &*h.service,
        &with_principal(event("sessions-revoke.json"), &principal),
    )
    .await;
    assert_eq!(sample.status(), 404);
    assert_eq!(json_body(&sample)["code"], "not_found");

    let other = h
        .service
        .login(EMAIL, &Password::new(PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let other_sid = h
        .service
        .authorize(&other.access_token)
        .await
        .unwrap()
        .chain_id;
    let mut live = with_principal(event("sessions-revoke.json"), &principal);
    live["pathParameters"]["id"] = json!(other_sid.to_string());
    live["rawPath"] = json!(format!("/auth/sessions/{other_sid}"));
    let response = invoke(&*h.service, &live).await;
    assert_eq!(response.status(), 204);
    assert!(h.service.authorize(&other.access_token).await.is_err());
}

async fn jwks_and_openid_configuration_events(h: Harness) {
    let discovery = Published::new(&h.config.issuer, &h.keys);
    let response = invoke(&discovery, &event("jwks.json")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let jwks = json_body(&response);
    assert_eq!(jwks["keys"][0]["kid"], "test-key");
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert!(jwks["keys"][0].get("d").is_none());

    let response = invoke(&discovery, &event("openid-configuration.json")).await;
    assert_eq!(response.status(), 200);
    let document = json_body(&response);
    assert_eq!(document["issuer"], json!(h.config.issuer));
    assert_eq!(
        document["jwks_uri"],
        "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/.well-known/jwks.json"
    );
    assert_eq!(
        document["id_token_signing_alg_values_supported"],
        json!(["EdDSA"])
    );
}

async fn authorizer_v2_request_event(h: Harness) {
    let sample = authorizer::handle(&h.service, event("authorizer-v2-request.json"))
        .await
        .unwrap();
    assert_eq!(sample, json!({"isAuthorized": false, "context": {}}));

    let (signed_in, principal) = sign_in(&h).await;
    let live = with_bearer(event("authorizer-v2-request.json"), &signed_in.access_token);
    let answer = authorizer::handle(&h.service, live).await.unwrap();
    assert_eq!(
        answer,
        json!({"isAuthorized": true, "context": {
            "user_id": principal.user_id.to_string(),
            "user_email": EMAIL,
            "session_id": principal.chain_id.to_string(),
            "issuer": h.config.issuer,
            "email_verified": "false",
            "roles": "",
            "mfa": "false",
        }})
    );
}

async fn authorizer_v1_token_event(h: Harness) {
    let sample = authorizer::handle(&h.service, event("authorizer-v1-token.json")).await;
    assert_eq!(sample, Err(authorizer::AuthorizerError::Unauthorized));

    let (signed_in, principal) = sign_in(&h).await;
    let live = with_bearer(event("authorizer-v1-token.json"), &signed_in.access_token);
    let answer = authorizer::handle(&h.service, live.clone()).await.unwrap();
    assert_allow_policy(&answer, &live["methodArn"], &principal);
}

async fn authorizer_v1_request_event(h: Harness) {
    let sample = authorizer::handle(&h.service, event("authorizer-v1-request.json")).await;
    assert_eq!(sample, Err(authorizer::AuthorizerError::Unauthorized));

    let (signed_in, principal) = sign_in(&h).await;
    let live = with_bearer(event("authorizer-v1-request.json"), &signed_in.access_token);
    let answer = authorizer::handle(&h.service, live.clone()).await.unwrap();
    assert_allow_policy(&answer, &live["methodArn"], &principal);
}

fn assert_allow_policy(answer: &Value, method_arn: &Value, principal: &Principal) {
    assert_eq!(answer["principalId"], json!(principal.user_id.to_string()));
    assert_eq!(answer["policyDocument"]["Version"], "2012-10-17");
    assert!(
        integration_tests::iam::allows(&answer["policyDocument"], method_arn.as_str().unwrap()),
        "{answer}"
    );
    assert_eq!(
        answer["context"]["session_id"],
        json!(principal.chain_id.to_string())
    );
    assert_eq!(answer["context"]["user_email"], EMAIL);
}

async fn email_verification_event(h: Harness) {
    let sample = invoke(&*h.service, &event("email-verification.json")).await;
    assert_eq!(sample.status(), 401, "the sample principal does not exist");

    let (_, principal) = sign_in(&h).await;
    let live = with_principal(event("email-verification.json"), &principal);
    let response = invoke(&*h.service, &live).await;
    assert_eq!(response.status(), 202);
    assert!(json_body(&response)["message"].is_string());
    let mail = h.mail_to(EMAIL).await;
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0]
            .text
            .contains(&format!("{EVENT_LINKS}/verify-email#token=")),
        "{}",
        mail[0].text
    );
}

async fn email_change_event(h: Harness) {
    let sample = invoke(&*h.service, &event("email-change.json")).await;
    assert_eq!(sample.status(), 401, "the sample principal does not exist");

    let (_, principal) = sign_in(&h).await;
    let live = with_principal(event("email-change.json"), &principal);
    let response = invoke(&*h.service, &live).await;
    assert_eq!(response.status(), 202);
    let new = h.mail_to("ada.lovelace@example.com").await;
    assert_eq!(
        new.len(),
        1,
        "the confirmation link goes to the new address"
    );
    assert!(new[0].text.contains("/verify-email#token="));
    let old = h.mail_to(EMAIL).await;
    assert_eq!(old.len(), 1, "a notice goes to the old address");
    assert!(old[0].text.contains("ada.lovelace@example.com"));
    assert!(
        !old[0].text.contains("#token="),
        "the old address gets no link"
    );
}

async fn email_verify_event(h: Harness) {
    let sample = invoke(&*h.service, &event("email-verify.json")).await;
    assert_eq!(sample.status(), 401);
    assert_eq!(json_body(&sample)["code"], "invalid_token");

    let registered = invoke(&*h.service, &event("register.json")).await;
    assert_eq!(registered.status(), 201);
    assert_eq!(json_body(&registered)["user"]["email_verified"], false);
    let token = h.link_token(EMAIL, "verify-email").await;
    let live = with_body(event("email-verify.json"), json!({ "token": token }));
    let response = invoke(&*h.service, &live).await;
    assert_eq!(response.status(), 200);
    let body = json_body(&response);
    assert_eq!(body["user"]["email"], EMAIL);
    assert_eq!(body["user"]["email_verified"], true);
    let again = invoke(&*h.service, &live).await;
    assert_eq!(again.status(), 401, "a link works once");
}

async fn password_forgot_event(h: Harness) {
    let unknown = invoke(&*h.service, &event("password-forgot.json")).await;
    assert_eq!(unknown.status(), 202);
    assert!(h.mail_to(EMAIL).await.is_empty(), "no account, no mail");

    sign_in(&h).await;
    let known = invoke(&*h.service, &event("password-forgot.json")).await;
    assert_eq!(known.status(), 202);
    assert_eq!(json_body(&known), json_body(&unknown), "the same answer");
    let mail = h.mail_to(EMAIL).await;
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0]
            .text
            .contains(&format!("{EVENT_LINKS}/reset-password#token="))
    );
}

async fn password_reset_event(h: Harness) {
    let sample = invoke(&*h.service, &event("password-reset.json")).await;
    assert_eq!(sample.status(), 401);
    assert_eq!(json_body(&sample)["code"], "invalid_token");

    let (signed_in, _) = sign_in(&h).await;
    assert_eq!(
        invoke(&*h.service, &event("password-forgot.json"))
            .await
            .status(),
        202
    );
    let token = h.link_token(EMAIL, "reset-password").await;
    let live = with_body(
        event("password-reset.json"),
        json!({"token": token, "password": "a brand new horse staple 2026"}),
    );
    let response = invoke(&*h.service, &live).await;
    assert_eq!(response.status(), 204);
    assert!(
        h.service.authorize(&signed_in.access_token).await.is_err(),
        "every session ends"
    );
    let new_password = Password::new("a brand new horse staple 2026");
    assert!(h.service.login(EMAIL, &new_password, None).await.is_ok());
}

async fn page_events(h: Harness) {
    let discovery = Published::new(&h.config.issuer, &h.keys)
        .with_providers(&oidc_providers("https://accounts.google.com"));
    let response = invoke(&discovery, &event("oidc-providers.json")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    assert_eq!(
        json_body(&response),
        json!({"providers": [{"id": "google", "name": "Google"}, {"id": "apple", "name": "apple"}]}),
        "ids and names, never a client or its secret"
    );

    let discovery = Published::new(&h.config.issuer, &h.keys);
    for (file, title) in [
        ("verify-email-page.json", "Confirm your email address"),
        ("reset-password-page.json", "Choose a new password"),
        ("account-page.json", "Your account"),
    ] {
        let response = invoke(&discovery, &event(file)).await;
        assert_eq!(response.status(), 200, "{file}");
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8"
        );
        let html = String::from_utf8_lossy(body_bytes(response.body())).into_owned();
        assert!(html.contains(title), "{file}");
    }
}

async fn mfa_setup_event(h: Harness) {
    let sample = invoke(&*h.service, &event("mfa-setup.json")).await;
    assert_eq!(sample.status(), 401, "the sample principal does not exist");

    let (_, principal) = sign_in(&h).await;
    let unverified = invoke(
        &*h.service,
        &with_principal(event("mfa-setup.json"), &principal),
    )
    .await;
    assert_eq!(
        unverified.status(),
        403,
        "enrolment needs a verified address"
    );
    h.verify_address(principal.user_id).await;
    let live = with_principal(event("mfa-setup.json"), &principal);
    let response = invoke(&*h.service, &live).await;
    assert_eq!(response.status(), 200);
    let body = json_body(&response);
    assert!(body["secret"].as_str().unwrap().len() >= 32);
    assert!(
        body["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    assert!(body["qr_svg"].as_str().unwrap().contains("<svg"));
}

async fn mfa_confirm_event(h: Harness) {
    let sample = invoke(&*h.service, &event("mfa-confirm.json")).await;
    assert_eq!(sample.status(), 401);

    let (_, principal) = sign_in(&h).await;
    h.verify_address(principal.user_id).await;
    let setup = invoke(
        &*h.service,
        &with_principal(event("mfa-setup.json"), &principal),
    )
    .await;
    let secret = base32::decode(
        base32::Alphabet::Rfc4648 { padding: false },
        json_body(&setup)["secret"].as_str().unwrap(),
    )
    .unwrap();
    let live = with_body(
        with_principal(event("mfa-confirm.json"), &principal),
        json!({ "code": h.totp_code(&secret) }),
    );
    let response = invoke(&*h.service, &live).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        json_body(&response)["recovery_codes"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
}

async fn mfa_disable_event(h: Harness) {
    let (_, principal) = sign_in(&h).await;
    let sample = invoke(
        &*h.service,
        &with_principal(event("mfa-disable.json"), &principal),
    )
    .await;
    assert_eq!(sample.status(), 409, "TOTP is off");
    assert_eq!(json_body(&sample)["code"], "mfa_not_enabled");

    let enrolled = h.enrol_totp(principal.user_id, PASSWORD).await;
    let live = with_body(
        with_principal(event("mfa-disable.json"), &principal),
        json!({"password": PASSWORD, "code": h.totp_code(&enrolled.secret)}),
    );
    assert_eq!(invoke(&*h.service, &live).await.status(), 204);
    assert!(
        !h.service
            .me(principal.user_id)
            .await
            .unwrap()
            .mfa
            .mfa_enabled
    );
}

async fn mfa_recovery_codes_event(h: Harness) {
    let (_, principal) = sign_in(&h).await;
    let enrolled = h.enrol_totp(principal.user_id, PASSWORD).await;
    let live = with_body(
        with_principal(event("mfa-recovery-codes.json"), &principal),
        json!({ "password": PASSWORD, "code": enrolled.recovery_codes[0] }),
    );
    let response = invoke(&*h.service, &live).await;
    assert_eq!(response.status(), 200);
    let fresh = json_body(&response)["recovery_codes"].clone();
    assert_eq!(fresh.as_array().unwrap().len(), 10);
    assert!(
        !fresh
            .as_array()
            .unwrap()
            .contains(&json!(enrolled.recovery_codes[1]))
    );
}

async fn mfa_verify_event(h: Harness) {
    let sample = invoke(&*h.service, &event("mfa-verify.json")).await;
    assert_eq!(sample.status(), 401);
    assert_eq!(json_body(&sample)["code"], "invalid_token");

    let (_, principal) = sign_in(&h).await;
    let enrolled = h.enrol_totp(principal.user_id, PASSWORD).await;
    let login = invoke(&*h.service, &event("login.json")).await;
    assert_eq!(login.status(), 200);
    let challenge = json_body(&login);
    assert_eq!(challenge["mfa_required"], true);
    assert!(challenge.get("access_token").is_none());
    let live = with_body(
        event("mfa-verify.json"),
        json!({"mfa_token": challenge["mfa_token"], "code": h.totp_code(&enrolled.secret)}),
    );
    let response = invoke(&*h.service, &live).await;
    assert_eq!(response.status(), 200);
    let tokens = json_body(&response);
    let principal = h
        .service
        .authorize(tokens["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert!(principal.mfa);
}

/// The passkey events: as they are (a sample ceremony and credential the service does not
/// know), then a passkey's whole life through them with a soft key.
async fn passkey_events(h: Harness) {
    let (_, principal) = sign_in(&h).await;
    let with = |name: &str| with_principal(event(name), &principal);
    for (name, status, code) in [
        ("passkeys-register-options.json", 403, "email_unverified"),
        ("passkeys-register.json", 401, "invalid_token"),
        ("passkeys-rename.json", 404, "not_found"),
        ("passkeys-remove.json", 404, "not_found"),
    ] {
        let sample = invoke(&*h.service, &with(name)).await;
        assert_eq!(sample.status(), status, "{name}");
        assert_eq!(json_body(&sample)["code"], code, "{name}");
    }
    let sample = invoke(&*h.service, &event("passkeys-login.json")).await;
    assert_eq!(sample.status(), 401);
    assert_eq!(json_body(&sample)["code"], "invalid_token");

    h.verify_address(principal.user_id).await;
    let mut key = integration_tests::passkeys::SoftKey::new(true);
    let options = invoke(&*h.service, &with("passkeys-register-options.json")).await;
    assert_eq!(options.status(), 200);
    let options = json_body(&options);
    let credential = key.create(&options["publicKey"]);
    let register = with_body(
        with("passkeys-register.json"),
        json!({"ceremony_id": options["ceremony_id"], "credential": credential, "name": "Laptop"}),
    );
    let added = invoke(&*h.service, &register).await;
    assert_eq!(added.status(), 201, "{:?}", json_body(&added));
    let id = json_body(&added)["passkey"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let listed = json_body(&invoke(&*h.service, &with("passkeys-list.json")).await);
    assert_eq!(listed["passkeys"][0]["name"], "Laptop");
    let mut rename = with("passkeys-rename.json");
    rename["pathParameters"]["id"] = json!(id);
    let renamed = invoke(&*h.service, &rename).await;
    assert_eq!(json_body(&renamed)["passkey"]["name"], "Phone");

    let options = invoke(&*h.service, &event("passkeys-login-options.json")).await;
    assert_eq!(options.status(), 200);
    let options = json_body(&options);
    let answer = key.get(&options["publicKey"]);
    let login = with_body(
        event("passkeys-login.json"),
        json!({"ceremony_id": options["ceremony_id"], "credential": answer}),
    );
    let signed_in = invoke(&*h.service, &login).await;
    assert_eq!(signed_in.status(), 200);
    assert!(json_body(&signed_in)["device_token"].is_string());

    let mut remove = with("passkeys-remove.json");
    remove["pathParameters"]["id"] = json!(id);
    assert_eq!(invoke(&*h.service, &remove).await.status(), 204);
}

async fn mfa_passkey_options_event(h: Harness) {
    let sample = invoke(&*h.service, &event("mfa-passkey-options.json")).await;
    assert_eq!(sample.status(), 401);
    assert_eq!(json_body(&sample)["code"], "invalid_token");
}

/// Where the OpenID events send the app back, and the verifier of their `code_challenge`
/// (RFC 7636's example pair).
const OIDC_APP: &str = "https://app.example.com/signed-in";
const OIDC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// The events' providers: `google` (answers on a GET) and `apple` (posts its answer), both at
/// `issuer`.
fn oidc_providers(issuer: &str) -> Vec<shared::config::oidc::OidcProviderConfig> {
    use integration_tests::fake_oidc::{FAKE_CLIENT_ID, FAKE_CLIENT_SECRET};
    let raw = json!([
        {"id": "google", "name": "Google", "issuer": issuer, "client_id": FAKE_CLIENT_ID,
         "client_secret": FAKE_CLIENT_SECRET, "allowed_redirect_uris": [OIDC_APP],
         "algorithms": ["ES256"]},
        {"id": "apple", "issuer": issuer, "client_id": FAKE_CLIENT_ID,
         "client_secret": FAKE_CLIENT_SECRET, "allowed_redirect_uris": [OIDC_APP],
         "response_mode": "form_post", "algorithms": ["ES256"]},
    ]);
    shared::config::oidc::parse(Some(raw.to_string())).expect("the events' providers")
}

fn header(response: &Response<Body>, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The parameters of a query or fragment.
fn form(encoded: &str) -> std::collections::BTreeMap<String, String> {
    url::form_urlencoded::parse(encoded.as_bytes())
        .into_owned()
        .collect()
}

/// `event` (a start) with the query of `url` (`…/start?…`), as the browser opens it.
fn with_query(mut event: Value, url: &str) -> Value {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    event["rawQueryString"] = json!(query);
    event["queryStringParameters"] = json!(form(query));
    event
}

/// Start (the event as it is, or `start`), the provider, and the callback (`GET`, or the form
/// `POST` for `apple`): the fragment the app gets back.
async fn through_provider(
    h: &Harness,
    provider: &str,
    start: Value,
) -> std::collections::BTreeMap<String, String> {
    let started = invoke(&*h.service, &start).await;
    assert_eq!(started.status(), 302, "{:?}", json_body(&started));
    assert_eq!(started.headers()["cache-control"], "no-store");
    let cookie = header(&started, "set-cookie");
    assert!(cookie.starts_with("__Host-oidc="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let redirected =
        integration_tests::oidc::sign_in_at_provider(&header(&started, "location"), "ada").await;
    let back = url::Url::parse(&redirected.location).unwrap();
    assert_eq!(
        back.path(),
        format!("/auth/oidc/{provider}/callback"),
        "the provider sends the browser to our callback"
    );
    let query = back.query().unwrap_or_default().to_owned();
    let (mut callback, status) = if provider == "apple" {
        assert!(
            started.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .contains("SameSite=None")
        );
        let mut callback = event("oidc-callback-form.json");
        callback["body"] = json!(STANDARD.encode(&query));
        (callback, 303)
    } else {
        (
            with_query(event("oidc-callback.json"), &redirected.location),
            302,
        )
    };
    callback["cookies"] = json!([cookie]);
    let answered = invoke(&*h.service, &callback).await;
    assert_eq!(answered.status(), status);
    assert!(header(&answered, "set-cookie").contains("Max-Age=0"));
    let location = header(&answered, "location");
    let (app, fragment) = location.split_once('#').expect("a fragment");
    assert_eq!(app, OIDC_APP);
    form(fragment)
}

async fn exchange(h: &Harness, code: &str) -> Response<Body> {
    let body = json!({"code": code, "code_verifier": OIDC_VERIFIER});
    invoke(&*h.service, &with_body(event("oidc-exchange.json"), body)).await
}

/// The OpenID events as they are (a provider the test runs, a state, code and identity it does
/// not know), then a sign-in through them on both callbacks, a link, and unlinking.
async fn oidc_events(backend: integration_tests::Backend) {
    let fake = integration_tests::fake_oidc::FakeIssuer::start().await;
    let mut config = integration_tests::test_config();
    config.oidc_providers = oidc_providers(&fake.issuer);
    let h = Harness::new_with(backend, config).await;
    fake.set_now(shared::Clock::now(&*h.clock));

    for name in ["oidc-callback.json", "oidc-callback-form.json"] {
        let sample = invoke(&*h.service, &event(name)).await;
        assert_eq!(sample.status(), 400, "{name}: a state of nobody's");
        assert_eq!(
            sample.headers()["content-type"],
            "text/html; charset=utf-8",
            "{name}: a page, never a redirect"
        );
        assert!(sample.headers().get("location").is_none(), "{name}");
    }
    let sample = invoke(&*h.service, &event("oidc-exchange.json")).await;
    assert_eq!(sample.status(), 401);
    assert_eq!(json_body(&sample)["code"], "invalid_code");
    let sample = invoke(&*h.service, &event("identities-list.json")).await;
    assert_eq!(sample.status(), 401, "the sample principal does not exist");

    // A new account, through the GET callback; the same provider account again through the
    // form POST of another provider: linked by its verified address to the same user.
    let fragment = through_provider(&h, "google", event("oidc-start.json")).await;
    assert_eq!(fragment["state"], "sample-app-state");
    let signed_in = exchange(&h, &fragment["code"]).await;
    assert_eq!(signed_in.status(), 200);
    let tokens = json_body(&signed_in);
    assert_eq!(tokens["user"]["email"], "fake@example.com");
    assert_eq!(tokens["user"]["email_verified"], true);
    let again = exchange(&h, &fragment["code"]).await;
    assert_eq!(again.status(), 401, "a code works once");
    let mut apple = event("oidc-start.json");
    apple["pathParameters"]["provider"] = json!("apple");
    apple["routeKey"] = json!("GET /auth/oidc/{provider}/start");
    apple["rawPath"] = json!("/auth/oidc/apple/start");
    apple["requestContext"]["http"]["path"] = json!("/auth/oidc/apple/start");
    let fragment = through_provider(&h, "apple", apple).await;
    let apple_tokens = json_body(&exchange(&h, &fragment["code"]).await);
    assert_eq!(apple_tokens["user"]["id"], tokens["user"]["id"]);
    let federated = h
        .service
        .authorize(tokens["access_token"].as_str().unwrap())
        .await
        .unwrap();
    let listed = invoke(
        &*h.service,
        &with_principal(event("identities-list.json"), &federated),
    )
    .await;
    assert_eq!(listed.status(), 200);
    let identities = json_body(&listed)["identities"].as_array().unwrap().clone();
    assert_eq!(identities.len(), 2, "{identities:?}");
    for identity in &identities {
        assert_eq!(identity["email"], "fake@example.com");
        assert!(identity["linked_at"].as_str().unwrap().ends_with('Z'));
    }

    // Linking while signed in: the sample's password, a verified address.
    let (_, principal) = sign_in(&h).await;
    let with = |name: &str| with_principal(event(name), &principal);
    let unverified = invoke(&*h.service, &with("oidc-link.json")).await;
    assert_eq!(unverified.status(), 403);
    assert_eq!(json_body(&unverified)["code"], "email_unverified");
    h.verify_address(principal.user_id).await;
    let linking = invoke(&*h.service, &with("oidc-link.json")).await;
    assert_eq!(linking.status(), 200, "{:?}", json_body(&linking));
    let url = json_body(&linking)["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{EVENT_LINKS}/auth/oidc/google/start?")),
        "{url}"
    );
    fake.set_account("ada-at-the-provider", "ada.lovelace@example.com", true);
    let fragment = through_provider(&h, "google", with_query(event("oidc-start.json"), &url)).await;
    let linked = exchange(&h, &fragment["code"]).await;
    assert_eq!(linked.status(), 200);
    let identity = json_body(&linked)["identity"].clone();
    assert_eq!(identity["provider"], "google");
    assert_eq!(identity["email"], "ada.lovelace@example.com");
    let listed = json_body(&invoke(&*h.service, &with("identities-list.json")).await);
    assert_eq!(listed["identities"], json!([identity]));

    // Unlinking: the sample's id is nobody's; the account keeps its password.
    let sample = invoke(&*h.service, &with("identities-unlink.json")).await;
    assert_eq!(sample.status(), 404);
    assert_eq!(json_body(&sample)["code"], "not_found");
    let unlink = |principal: &Principal, id: &Value| {
        let mut unlink = with_principal(event("identities-unlink.json"), principal);
        let id = id.as_str().unwrap();
        unlink["pathParameters"]["id"] = json!(id);
        unlink["rawPath"] = json!(format!("/auth/identities/{id}"));
        unlink
    };
    let removed = invoke(&*h.service, &unlink(&principal, &identity["id"])).await;
    assert_eq!(removed.status(), 204);
    // The federated account has no password: its last identity stays.
    let first = invoke(&*h.service, &unlink(&federated, &identities[0]["id"])).await;
    assert_eq!(first.status(), 204);
    let last = invoke(&*h.service, &unlink(&federated, &identities[1]["id"])).await;
    assert_eq!(last.status(), 409);
    assert_eq!(json_body(&last)["code"], "last_credential");
}

/// The user the admin events act on, as they are: nobody.
const SAMPLE_USER: &str = "7b3e9f2a-5c1d-4e8b-a6f0-2d4c6e8a0b1c";

const ADMIN_EVENTS: [&str; 6] = [
    "admin-users-list.json",
    "admin-user.json",
    "admin-user-update.json",
    "admin-user-sessions.json",
    "admin-user-sessions-revoke.json",
    "admin-user-delete.json",
];

/// The admin events as they are (their context holds the role, their user is nobody), then
/// with a plain user (refused), and with a real admin on a real user.
async fn admin_events(h: Harness) {
    let listed = invoke(&*h.service, &event("admin-users-list.json")).await;
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.headers()["cache-control"], "no-store");
    assert_eq!(json_body(&listed)["users"], json!([]));
    for name in &ADMIN_EVENTS[1..] {
        let sample = invoke(&*h.service, &event(name)).await;
        assert_eq!(sample.status(), 404, "{name}: the sample's user is nobody");
        assert_eq!(json_body(&sample)["code"], "not_found", "{name}");
    }

    // A signed-in user without the role: refused by the function itself too.
    let (signed_in, plain) = sign_in(&h).await;
    for name in ADMIN_EVENTS {
        let refused = invoke(&*h.service, &with_principal(event(name), &plain)).await;
        assert_eq!(refused.status(), 403, "{name}");
        assert_eq!(json_body(&refused)["code"], "forbidden", "{name}");
    }

    // The role granted, then a refresh to carry it.
    h.store
        .set_roles(
            plain.user_id,
            &["admin".to_owned()],
            shared::Clock::now(&*h.clock),
        )
        .await
        .unwrap();
    let refreshed = h.service.refresh(&signed_in.refresh_token).await.unwrap();
    let admin = h.service.authorize(&refreshed.access_token).await.unwrap();
    assert_eq!(admin.roles, ["admin"]);
    let user = h.register("grace@example.com").await;
    let id = user.user.id.to_string();
    let on_user = |name: &str| {
        let mut event = with_principal(event(name), &admin);
        for pointer in ["/rawPath", "/requestContext/http/path"] {
            let value = event.pointer_mut(pointer).unwrap();
            *value = json!(value.as_str().unwrap().replace(SAMPLE_USER, &id));
        }
        event["pathParameters"]["id"] = json!(id);
        event
    };

    // Every user, a page at a time.
    let mut emails = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut page = with_principal(event("admin-users-list.json"), &admin);
        page["queryStringParameters"]["limit"] = json!("1");
        page["rawQueryString"] = json!("limit=1");
        if let Some(cursor) = &cursor {
            page["queryStringParameters"]["cursor"] = json!(cursor);
            page["rawQueryString"] = json!(format!("limit=1&cursor={cursor}"));
        }
        let response = invoke(&*h.service, &page).await;
        assert_eq!(response.status(), 200, "{:?}", json_body(&response));
        let body = json_body(&response);
        let users = body["users"].as_array().unwrap();
        assert!(users.len() <= 1, "{body}");
        emails.extend(
            users
                .iter()
                .map(|u| u["email"].as_str().unwrap().to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    emails.sort();
    assert_eq!(emails, [EMAIL, "grace@example.com"]);
    let mut by_email = with_principal(event("admin-users-list.json"), &admin);
    by_email["queryStringParameters"] = json!({"email": "Grace@example.com"});
    by_email["rawQueryString"] = json!("email=Grace@example.com");
    let found = json_body(&invoke(&*h.service, &by_email).await);
    assert_eq!(found["users"][0]["id"], json!(id));
    assert_eq!(found["next_cursor"], Value::Null);

    let shown = invoke(&*h.service, &on_user("admin-user.json")).await;
    assert_eq!(shown.status(), 200);
    let shown = json_body(&shown)["user"].clone();
    assert_eq!(shown["email"], "grace@example.com");
    assert_eq!(shown["roles"], json!([]));
    assert_eq!(shown["has_password"], true);
    assert_eq!(shown["passkeys"], 0);
    assert_eq!(shown["identities"], json!([]));
    assert!(shown["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(shown.get("password_hash").is_none());

    let sessions = invoke(&*h.service, &on_user("admin-user-sessions.json")).await;
    assert_eq!(sessions.status(), 200);
    let sessions = json_body(&sessions)["sessions"].clone();
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
    assert_eq!(sessions[0]["current"], false);
    let revoked = invoke(&*h.service, &on_user("admin-user-sessions-revoke.json")).await;
    assert_eq!(revoked.status(), 204);
    assert!(h.service.authorize(&user.access_token).await.is_err());
    let sessions = json_body(&invoke(&*h.service, &on_user("admin-user-sessions.json")).await);
    assert_eq!(sessions["sessions"], json!([]));

    // The sample's change: deactivated, given the `support` role.
    let changed = invoke(&*h.service, &on_user("admin-user-update.json")).await;
    assert_eq!(changed.status(), 200, "{:?}", json_body(&changed));
    let changed = json_body(&changed)["user"].clone();
    assert_eq!(changed["is_active"], false);
    assert_eq!(changed["roles"], json!(["support"]));

    let deleted = invoke(&*h.service, &on_user("admin-user-delete.json")).await;
    assert_eq!(deleted.status(), 204, "{:?}", json_body(&deleted));
    let gone = invoke(&*h.service, &on_user("admin-user.json")).await;
    assert_eq!(gone.status(), 404);
    assert!(
        h.store
            .user_by_email("grace@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

/// The sample's password is the user's: the account goes, and its tokens with it.
async fn account_delete_event(h: Harness) {
    let (signed_in, principal) = sign_in(&h).await;
    let mut wrong = with_principal(event("account-delete.json"), &principal);
    wrong = with_body(wrong, json!({"password": "not the password at all"}));
    let refused = invoke(&*h.service, &wrong).await;
    assert_eq!(refused.status(), 401, "{:?}", json_body(&refused));
    assert!(h.service.authorize(&signed_in.access_token).await.is_ok());

    let response = invoke(
        &*h.service,
        &with_principal(event("account-delete.json"), &principal),
    )
    .await;
    assert_eq!(response.status(), 204, "{:?}", json_body(&response));
    assert!(h.service.authorize(&signed_in.access_token).await.is_err());
    assert!(h.store.user_by_email(EMAIL).await.unwrap().is_none());
}

async fn security_events_event(h: Harness) {
    let (_, principal) = sign_in(&h).await;
    let response = invoke(
        &*h.service,
        &with_principal(event("security-events.json"), &principal),
    )
    .await;
    assert_eq!(response.status(), 200, "{:?}", json_body(&response));
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json_body(&response);
    let kinds: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["signed_in", "registered"], "{body}");
}

/// Every sample event of a protected route carries, in its authorizer context, exactly the keys
/// the authorizer gives (read from a real decision), so a function run on it with `sam local
/// invoke` reads what it will read in AWS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_contexts_have_every_key_the_authorizer_gives() {
    let h = Harness::embedded();
    let (signed_in, _) = sign_in(&h).await;
    let live = with_bearer(event("authorizer-v2-request.json"), &signed_in.access_token);
    let answer = authorizer::handle(&h.service, live).await.unwrap();
    let mut keys: Vec<&String> = answer["context"].as_object().unwrap().keys().collect();
    keys.sort_unstable();
    let mut checked = 0;
    for name in EVENT_FILES {
        let sample = event(name);
        let Some(context) = sample.pointer("/requestContext/authorizer/lambda") else {
            continue;
        };
        let mut theirs: Vec<&String> = context.as_object().unwrap().keys().collect();
        theirs.sort_unstable();
        assert_eq!(
            theirs, keys,
            "events/{name}: requestContext.authorizer.lambda"
        );
        checked += 1;
    }
    assert!(checked >= 20, "{checked} events with an authorizer context");
}
