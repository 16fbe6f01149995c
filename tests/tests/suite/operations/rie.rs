//! Every Lambda function as AWS runs it: its real binary under AWS's Runtime Interface Emulator,
//! with exactly the environment `sam local invoke --env-vars env.json` gives it (resolved by the
//! SAM CLI's own code from `template.yaml` and `env.json`), against DynamoDB Local. The only
//! change is the one Docker's network makes: `host.docker.internal` is this machine (and, for
//! one OpenID sign-in, a second oidc function given a provider of the test's own, env.json
//! configuring none).
//!
//! Each function of `shared::routes::Function::ALL` is started; every file of `events/` is
//! invoked as it is and made live; one journey runs through the emulated functions alone; their
//! logs and metrics are read as CloudWatch would read them.

use std::collections::BTreeMap;

use integration_tests::rie::{
    RieFunction, SamFunction, binaries, dynamodb_endpoint, repository, sam_local_functions,
};
use integration_tests::{function_of_event, ses_emulator_url, ses_link_token, ses_mail_to};
use serde_json::{Value, json};
use shared::metrics;
use shared::routes::Function;

/// The functions, each under its own emulator.
struct Stack {
    functions: BTreeMap<Function, RieFunction>,
    /// A source address of this test's own, so throttling budgets are not shared.
    source_ip: String,
}

async fn create_tables(environment: &BTreeMap<String, String>) {
    let client = shared::DynamoStore::client_for_endpoint(&dynamodb_endpoint()).await;
    let store = shared::DynamoStore::new(
        client,
        &environment["USERS_TABLE"],
        &environment["SESSIONS_TABLE"],
        &environment["HISTORY_TABLE"],
    );
    // Tests run at once and share env.json's tables: whoever creates them first wins.
    for _ in 0..5 {
        if store.create_tables().await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    store
        .create_tables()
        .await
        .expect("create env.json's tables");
}

/// The environment `sam local` gives a function, with DynamoDB Local where a container would
/// reach the host.
fn local_environment(function: &SamFunction) -> BTreeMap<String, String> {
    let mut environment = function.environment.clone();
    let endpoint = environment
        .get("AWS_ENDPOINT_URL_DYNAMODB")
        .unwrap_or_else(|| panic!("{}: no AWS_ENDPOINT_URL_DYNAMODB", function.logical_id));
    assert!(
        endpoint.starts_with("http://host.docker.internal:"),
        "env.json: AWS_ENDPOINT_URL_DYNAMODB must be an address a container reaches \
         (http://host.docker.internal:PORT), not {endpoint}"
    );
    environment.insert("AWS_ENDPOINT_URL_DYNAMODB".into(), dynamodb_endpoint());
    if let Some(ses) = environment.get("AWS_ENDPOINT_URL_SESV2") {
        assert!(
            ses.starts_with("http://host.docker.internal:"),
            "env.json: AWS_ENDPOINT_URL_SESV2 must be an address a container reaches, not {ses}"
        );
        environment.insert("AWS_ENDPOINT_URL_SESV2".into(), ses_emulator_url());
    }
    environment
}

impl Stack {
    async fn start() -> Self {
        let sam = sam_local_functions();
        let dir = binaries();
        let mut functions = BTreeMap::new();
        for function in Function::ALL {
            let binary = function.binary();
            let resolved = sam.get(binary).unwrap_or_else(|| {
                panic!("template.yaml: no AWS::Serverless::Function with Binary: {binary}")
            });
            let environment = local_environment(resolved);
            if functions.is_empty() {
                create_tables(&environment).await;
            }
            functions.insert(
                *function,
                RieFunction::start(binary, &dir.join(binary), &environment).await,
            );
        }
        let id = uuid::Uuid::new_v4().as_bytes().to_owned();
        Self {
            functions,
            source_ip: format!("198.18.{}.{}", id[0], id[1]),
        }
    }

    fn get(&self, function: Function) -> &RieFunction {
        &self.functions[&function]
    }

    /// Invokes the function an API Gateway event's route belongs to.
    async fn call(&self, event: Value) -> (u16, Value) {
        let event = self.sent_from_our_address(event);
        let function = function_of_event("(live)", &event);
        http(&self.get(function).invoke(&event).await)
    }

    async fn authorize(&self, event: Value) -> Value {
        let event = self.sent_from_our_address(event);
        self.get(Function::Authorizer).invoke(&event).await
    }

    fn sent_from_our_address(&self, mut event: Value) -> Value {
        if event["requestContext"]["http"].is_object() {
            event["requestContext"]["http"]["sourceIp"] = json!(self.source_ip);
        }
        if event["requestContext"]["identity"].is_object() {
            event["requestContext"]["identity"]["sourceIp"] = json!(self.source_ip);
        }
        event
    }

    /// A new account, signed in through the register function.
    async fn sign_up(&self) -> Account {
        let email = format!("rie-{}@example.com", uuid::Uuid::new_v4().simple());
        let password = "correct horse battery staple".to_owned();
        // Each account from an address of its own: the journey is not about the registration
        // budget per IP.
        let mut register = with_body(
            event("register.json"),
            json!({"email": email, "password": password}),
        );
        let host = 1 + uuid::Uuid::new_v4().as_u128() % 250;
        register["requestContext"]["http"]["sourceIp"] = json!(format!("198.51.100.{host}"));
        let (status, body) = http(&self.get(Function::Register).invoke(&register).await);
        assert_eq!(status, 201, "{body}");
        Account {
            email,
            password,
            access: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// What the authorizer passes on for this access token.
    async fn context(&self, access: &str) -> Value {
        let answer = self
            .authorize(with_bearer(event("authorizer-v2-request.json"), access))
            .await;
        assert_eq!(answer["isAuthorized"], true, "{answer}");
        answer["context"].clone()
    }
}

/// Mail goes out after the answer; this long at most.
const MAIL_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Follows the link of the registration's mail, through the email-links function: enrolment
/// needs a verified address.
async fn verify(stack: &Stack, account: &Account) {
    let mail = ses_mail_to(&account.email, 1, MAIL_PATIENCE).await;
    let token = ses_link_token(&mail[0], "verify-email");
    let (status, body) = stack
        .call(with_body(
            event("email-verify.json"),
            json!({ "token": token }),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
}

/// TOTP on for the account, through the mfa function: its secret and recovery codes.
async fn enrol(stack: &Stack, account: &Account, context: &Value) -> Vec<String> {
    verify(stack, account).await;
    let (status, setup) = stack
        .call(with_body(
            with_context(event("mfa-setup.json"), context),
            json!({"password": account.password}),
        ))
        .await;
    assert_eq!(status, 200, "{setup}");
    let secret = base32::decode(
        base32::Alphabet::Rfc4648 { padding: false },
        setup["secret"].as_str().unwrap(),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = shared::mfa::TotpCode::new(&secret, "rie", "rie@example.com")
        .unwrap()
        .generate(now);
    let (status, confirmed) = stack
        .call(with_body(
            with_context(event("mfa-confirm.json"), context),
            json!({ "code": code }),
        ))
        .await;
    assert_eq!(status, 200, "{confirmed}");
    serde_json::from_value(confirmed["recovery_codes"].clone()).unwrap()
}

struct Account {
    email: String,
    password: String,
    access: String,
    refresh: String,
}

fn event(name: &str) -> Value {
    let path = repository().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("events/{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("events/{name}: {e}"))
}

/// Status and JSON body of an HTTP API (payload 2.0) response.
fn http(answer: &Value) -> (u16, Value) {
    let status = answer["statusCode"]
        .as_u64()
        .unwrap_or_else(|| panic!("not an HTTP response: {answer}"));
    let body = answer["body"].as_str().unwrap_or_default();
    (
        status as u16,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn with_body(mut event: Value, body: Value) -> Value {
    event["body"] = json!(body.to_string());
    event["isBase64Encoded"] = json!(false);
    event
}

fn with_context(mut event: Value, context: &Value) -> Value {
    event["requestContext"]["authorizer"] = json!({ "lambda": context });
    event
}

fn with_bearer(mut event: Value, token: &str) -> Value {
    let value = format!("Bearer {token}");
    if event.get("identitySource").is_some() {
        event["identitySource"] = json!([value]);
    }
    if event.get("authorizationToken").is_some() {
        event["authorizationToken"] = json!(value);
    }
    for (headers, name) in [("headers", "authorization"), ("headers", "Authorization")] {
        if event[headers].get(name).is_some() {
            event[headers][name] = json!(value);
        }
    }
    if event["multiValueHeaders"].get("Authorization").is_some() {
        event["multiValueHeaders"]["Authorization"] = json!([value]);
    }
    event
}

/// The answer to an event as it is: sample tokens and ids the store does not know.
fn check_sample_answer(name: &str, function: Function, answer: &Value) {
    if function == Function::Authorizer {
        let denied = answer["isAuthorized"] == false || answer["errorType"] == "Unauthorized";
        assert!(
            denied,
            "events/{name}: the sample token must be refused: {answer}"
        );
        return;
    }
    let (status, body) = http(answer);
    assert!(
        status < 500,
        "events/{name} as it is: {status} {body} (bad input is never a 5xx)"
    );
}

/// Makes an event file live (a real account, token or session) and checks the answer.
async fn check_live(stack: &Stack, name: &str) {
    match name {
        "register.json" => {
            let email = format!("live-{}@example.com", uuid::Uuid::new_v4().simple());
            let live = with_body(
                event(name),
                json!({"email": email, "password": "correct horse battery staple"}),
            );
            let (status, body) = stack.call(live).await;
            assert_eq!(status, 201, "{body}");
            assert_eq!(body["user"]["email"], json!(email));
        }
        "login.json" => {
            let account = stack.sign_up().await;
            let live = with_body(
                event(name),
                json!({"email": account.email, "password": account.password}),
            );
            let (status, body) = stack.call(live).await;
            assert_eq!(status, 200, "{body}");
            assert!(body["access_token"].is_string());
        }
        "refresh.json" => {
            let account = stack.sign_up().await;
            let live = with_body(event(name), json!({"refresh_token": account.refresh}));
            let (status, body) = stack.call(live).await;
            assert_eq!(status, 200, "{body}");
            assert_ne!(body["refresh_token"], json!(account.refresh));
        }
        "logout.json" | "logout-all.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let (status, body) = stack.call(with_context(event(name), &context)).await;
            assert_eq!(status, 204, "{body}");
            let after = stack
                .authorize(with_bearer(
                    event("authorizer-v2-request.json"),
                    &account.access,
                ))
                .await;
            assert_eq!(after["isAuthorized"], false, "logged out: {after}");
        }
        "me.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let (status, body) = stack.call(with_context(event(name), &context)).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["user"]["email"], json!(account.email));
        }
        "password.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let mut live = with_context(event(name), &context);
            let mut body: Value = serde_json::from_str(live["body"].as_str().unwrap()).unwrap();
            body["current_password"] = json!(account.password);
            live = with_body(live, body);
            let (status, body) = stack.call(live).await;
            assert_eq!(status, 204, "{body}");
        }
        "sessions-list.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let (status, body) = stack.call(with_context(event(name), &context)).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["sessions"][0]["current"], true, "{body}");
        }
        "sessions-revoke.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let (_, other) = stack
                .call(with_body(
                    event("login.json"),
                    json!({"email": account.email, "password": account.password}),
                ))
                .await;
            let other_access = other["access_token"].as_str().unwrap();
            let other_session = stack.context(other_access).await["session_id"].clone();
            let mut live = with_context(event(name), &context);
            let sid = other_session.as_str().unwrap();
            live["pathParameters"]["id"] = json!(sid);
            live["rawPath"] = json!(format!("/auth/sessions/{sid}"));
            live["requestContext"]["http"]["path"] = live["rawPath"].clone();
            let (status, body) = stack.call(live).await;
            assert_eq!(status, 204, "{body}");
            let after = stack
                .authorize(with_bearer(
                    event("authorizer-v2-request.json"),
                    other_access,
                ))
                .await;
            assert_eq!(after["isAuthorized"], false, "revoked: {after}");
        }
        "jwks.json" => {
            let (status, body) = stack.call(event(name)).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["keys"][0]["kty"], "OKP");
            assert!(body["keys"][0].get("d").is_none(), "no private key part");
        }
        "openid-configuration.json" => {
            let (status, body) = stack.call(event(name)).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(
                body["id_token_signing_alg_values_supported"],
                json!(["EdDSA"])
            );
        }
        "authorizer-v2-request.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            assert_eq!(context["user_email"], json!(account.email));
            for key in ["user_id", "session_id", "issuer"] {
                assert!(context[key].is_string(), "{key}: {context}");
            }
        }
        "authorizer-v1-token.json" | "authorizer-v1-request.json" => {
            let account = stack.sign_up().await;
            let live = with_bearer(event(name), &account.access);
            let answer = stack.authorize(live.clone()).await;
            let arn = live["methodArn"].as_str().unwrap();
            assert!(
                integration_tests::iam::allows(&answer["policyDocument"], arn),
                "{answer}"
            );
            assert_eq!(answer["context"]["user_email"], json!(account.email));
        }
        "email-verification.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let (status, body) = stack.call(with_context(event(name), &context)).await;
            assert_eq!(status, 202, "{body}");
            let mail = ses_mail_to(&account.email, 2, MAIL_PATIENCE).await;
            assert_eq!(mail.len(), 2, "registration's and this one");
        }
        "email-change.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let new = format!("moved-{}", account.email);
            let live = with_body(
                with_context(event(name), &context),
                json!({"email": new, "password": account.password}),
            );
            let (status, body) = stack.call(live).await;
            assert_eq!(status, 202, "{body}");
            assert_eq!(ses_mail_to(&new, 1, MAIL_PATIENCE).await.len(), 1);
        }
        "email-verify.json" => {
            let account = stack.sign_up().await;
            let mail = ses_mail_to(&account.email, 1, MAIL_PATIENCE).await;
            let token = ses_link_token(&mail[0], "verify-email");
            let (status, body) = stack
                .call(with_body(event(name), json!({ "token": token })))
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["user"]["email_verified"], true);
        }
        "password-forgot.json" | "password-reset.json" => {
            let account = stack.sign_up().await;
            let (status, body) = stack
                .call(with_body(
                    event("password-forgot.json"),
                    json!({ "email": account.email }),
                ))
                .await;
            assert_eq!(status, 202, "{body}");
            let mail = ses_mail_to(&account.email, 2, MAIL_PATIENCE).await;
            let reset = mail
                .iter()
                .find(|m| m["subject"] == "Reset your password")
                .unwrap_or_else(|| panic!("no reset mail in {mail:?}"));
            if name == "password-reset.json" {
                let token = ses_link_token(reset, "reset-password");
                let live = with_body(
                    event(name),
                    json!({"token": token, "password": "a brand new horse staple 2026"}),
                );
                let (status, body) = stack.call(live).await;
                assert_eq!(status, 204, "{body}");
                let after = stack
                    .authorize(with_bearer(
                        event("authorizer-v2-request.json"),
                        &account.access,
                    ))
                    .await;
                assert_eq!(after["isAuthorized"], false, "every session ended: {after}");
            }
        }
        "verify-email-page.json" | "reset-password-page.json" | "account-page.json" => {
            let answer = stack.get(Function::Web).invoke(&event(name)).await;
            assert_eq!(answer["statusCode"], 200, "{answer}");
            assert!(answer["body"].as_str().unwrap().contains("<!doctype html>"));
        }
        "mfa-setup.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            verify(stack, &account).await;
            let live = with_body(
                with_context(event(name), &context),
                json!({"password": account.password}),
            );
            let (status, body) = stack.call(live).await;
            assert_eq!(status, 200, "{body}");
            assert!(
                body["otpauth_uri"]
                    .as_str()
                    .unwrap()
                    .starts_with("otpauth://totp/")
            );
        }
        "mfa-confirm.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            assert_eq!(enrol(stack, &account, &context).await.len(), 10);
        }
        "mfa-recovery-codes.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let codes = enrol(stack, &account, &context).await;
            let live = with_body(
                with_context(event(name), &context),
                json!({"password": account.password, "code": codes[0]}),
            );
            let (status, body) = stack.call(live).await;
            assert_eq!(status, 200, "{body}");
        }
        "mfa-disable.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let codes = enrol(stack, &account, &context).await;
            let live = with_body(
                with_context(event(name), &context),
                json!({"password": account.password, "code": codes[0]}),
            );
            let (status, body) = stack.call(live).await;
            assert_eq!(status, 204, "{body}");
        }
        "mfa-verify.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let codes = enrol(stack, &account, &context).await;
            let (status, challenge) = stack
                .call(with_body(
                    event("login.json"),
                    json!({"email": account.email, "password": account.password}),
                ))
                .await;
            assert_eq!(status, 200, "{challenge}");
            assert_eq!(challenge["mfa_required"], true);
            let live = with_body(
                event(name),
                json!({"mfa_token": challenge["mfa_token"], "recovery_code": codes[0]}),
            );
            let (status, body) = stack.call(live).await;
            assert_eq!(status, 200, "{body}");
            let context = stack.context(body["access_token"].as_str().unwrap()).await;
            assert_eq!(context["mfa"], "true");
        }
        "passkeys-register-options.json" => {
            // An unverified address may not add a passkey.
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let (status, body) = stack.call(with_context(event(name), &context)).await;
            assert_eq!(status, 403, "{body}");
            assert_eq!(body["code"], "email_unverified");
        }
        "passkeys-register.json" => {
            // A passkey's life through the function: added on a verified address (env.json's
            // relying party, `localhost`), listed, and signing in.
            let account = stack.sign_up().await;
            let mail = ses_mail_to(&account.email, 1, MAIL_PATIENCE).await;
            let token = ses_link_token(&mail[0], "verify-email");
            let (status, _) = stack
                .call(with_body(
                    event("email-verify.json"),
                    json!({ "token": token }),
                ))
                .await;
            assert_eq!(status, 200);
            let context = stack.context(&account.access).await;
            let (status, options) = stack
                .call(with_body(
                    with_context(event("passkeys-register-options.json"), &context),
                    json!({"password": account.password}),
                ))
                .await;
            assert_eq!(status, 200, "{options}");
            assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
            let mut key = integration_tests::passkeys::SoftKey::on("http://localhost:3000", true);
            let credential = key.create(&options["publicKey"]);
            let (status, body) = stack
                .call(with_body(
                    with_context(event(name), &context),
                    json!({"ceremony_id": options["ceremony_id"], "credential": credential}),
                ))
                .await;
            assert_eq!(status, 201, "{body}");
            let (status, listed) = stack
                .call(with_context(event("passkeys-list.json"), &context))
                .await;
            assert_eq!(status, 200, "{listed}");
            assert_eq!(listed["passkeys"][0]["id"], body["passkey"]["id"]);
            let (status, options) = stack
                .call(with_body(event("passkeys-login-options.json"), json!({})))
                .await;
            assert_eq!(status, 200, "{options}");
            let answer = key.get(&options["publicKey"]);
            let (status, signed_in) = stack
                .call(with_body(
                    event("passkeys-login.json"),
                    json!({"ceremony_id": options["ceremony_id"], "credential": answer}),
                ))
                .await;
            assert_eq!(status, 200, "{signed_in}");
            let context = stack
                .context(signed_in["access_token"].as_str().unwrap())
                .await;
            assert_eq!(context["mfa"], "true");
        }
        "passkeys-list.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let (status, body) = stack.call(with_context(event(name), &context)).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["passkeys"], json!([]));
        }
        "passkeys-rename.json" | "passkeys-remove.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let (status, body) = stack.call(with_context(event(name), &context)).await;
            assert_eq!(status, 404, "{body}");
        }
        "passkeys-login-options.json" => {
            let (status, body) = stack.call(event(name)).await;
            assert_eq!(status, 200, "{body}");
            assert!(body["ceremony_id"].is_string(), "{body}");
        }
        "passkeys-login.json" | "mfa-passkey-options.json" => {
            // The sample's ceremony and mfa_token are nobody's.
            let (status, body) = stack.call(event(name)).await;
            assert_eq!(status, 401, "{body}");
            assert_eq!(body["code"], "invalid_token");
        }
        "oidc-providers.json" => {
            // env.json configures no provider.
            let (status, body) = stack.call(event(name)).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body, json!({"providers": []}));
        }
        "oidc-start.json" => {
            let (status, body) = stack.call(event(name)).await;
            assert_eq!(status, 404, "env.json configures no provider: {body}");
            assert_eq!(body["code"], "not_found");
            oidc_journey(stack).await;
        }
        "oidc-link.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let (status, body) = stack.call(with_context(event(name), &context)).await;
            assert_eq!(status, 404, "env.json configures no provider: {body}");
        }
        "oidc-callback.json" | "oidc-callback-form.json" => {
            // The sample's state is nobody's: a page, never a redirect.
            let answer = stack
                .get(Function::Oidc)
                .invoke(&stack.sent_from_our_address(event(name)))
                .await;
            assert_eq!(answer["statusCode"], 400, "{answer}");
            assert!(answer["headers"].get("location").is_none(), "{answer}");
            assert_eq!(
                answer["headers"]["content-type"],
                "text/html; charset=utf-8"
            );
        }
        "oidc-exchange.json" => {
            let (status, body) = stack.call(event(name)).await;
            assert_eq!(status, 401, "{body}");
            assert_eq!(body["code"], "invalid_code");
        }
        "identities-list.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let (status, body) = stack.call(with_context(event(name), &context)).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["identities"], json!([]));
        }
        "identities-unlink.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let (status, body) = stack.call(with_context(event(name), &context)).await;
            assert_eq!(status, 404, "{body}");
            assert_eq!(body["code"], "not_found");
        }
        "admin-users-list.json" => {
            let target = stack.sign_up().await;
            let plain = stack.context(&target.access).await;
            let (status, body) = stack.call(with_context(event(name), &plain)).await;
            assert_eq!(status, 403, "no admin role: {body}");
            assert_eq!(body["code"], "forbidden");
            let admin = stack.admin_context().await;
            let (status, body) = stack.call(with_context(event(name), &admin)).await;
            assert_eq!(status, 200, "{body}");
            assert!(body["users"].as_array().unwrap().len() <= 20, "{body}");
            let mut by_email = with_context(event(name), &admin);
            by_email["queryStringParameters"] = json!({"email": target.email});
            by_email["rawQueryString"] = json!(format!("email={}", target.email));
            let (status, body) = stack.call(by_email).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["users"][0]["email"], json!(target.email), "{body}");
            assert_eq!(body["next_cursor"], Value::Null);
        }
        "admin-user.json" => {
            let target = stack.sign_up().await;
            let admin = stack.admin_context().await;
            let (status, body) = stack
                .call(on_user(event(name), &admin, &target, stack).await)
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["user"]["email"], json!(target.email));
            assert_eq!(body["user"]["has_password"], true);
        }
        "admin-user-update.json" => {
            let target = stack.sign_up().await;
            let admin = stack.admin_context().await;
            let (status, body) = stack
                .call(on_user(event(name), &admin, &target, stack).await)
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["user"]["is_active"], false, "{body}");
            assert_eq!(body["user"]["roles"], json!(["support"]), "{body}");
            let after = stack
                .authorize(with_bearer(
                    event("authorizer-v2-request.json"),
                    &target.access,
                ))
                .await;
            assert_eq!(after["isAuthorized"], false, "deactivated: {after}");
        }
        "admin-user-sessions.json" => {
            let target = stack.sign_up().await;
            let admin = stack.admin_context().await;
            let (status, body) = stack
                .call(on_user(event(name), &admin, &target, stack).await)
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["sessions"].as_array().unwrap().len(), 1, "{body}");
            assert_eq!(body["sessions"][0]["current"], false, "{body}");
        }
        "admin-user-sessions-revoke.json" => {
            let target = stack.sign_up().await;
            let admin = stack.admin_context().await;
            let (status, body) = stack
                .call(on_user(event(name), &admin, &target, stack).await)
                .await;
            assert_eq!(status, 204, "{body}");
            let after = stack
                .authorize(with_bearer(
                    event("authorizer-v2-request.json"),
                    &target.access,
                ))
                .await;
            assert_eq!(after["isAuthorized"], false, "every session ended: {after}");
        }
        "admin-user-delete.json" => {
            let target = stack.sign_up().await;
            let admin = stack.admin_context().await;
            let (status, body) = stack
                .call(on_user(event(name), &admin, &target, stack).await)
                .await;
            assert_eq!(status, 204, "{body}");
            let after = stack
                .authorize(with_bearer(
                    event("authorizer-v2-request.json"),
                    &target.access,
                ))
                .await;
            assert_eq!(after["isAuthorized"], false, "deleted: {after}");
        }
        "account-delete.json" => {
            // The sample's password is every test account's.
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let (status, body) = stack.call(with_context(event(name), &context)).await;
            assert_eq!(status, 204, "{body}");
            let after = stack
                .authorize(with_bearer(
                    event("authorizer-v2-request.json"),
                    &account.access,
                ))
                .await;
            assert_eq!(after["isAuthorized"], false, "deleted: {after}");
        }
        "security-events.json" => {
            let account = stack.sign_up().await;
            let context = stack.context(&account.access).await;
            let (status, body) = stack.call(with_context(event(name), &context)).await;
            assert_eq!(status, 200, "{body}");
            let kinds: Vec<&str> = body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["type"].as_str().unwrap())
                .collect();
            assert!(kinds.contains(&"registered"), "{body}");
            assert_eq!(body["events"][0]["ip_prefix"], "198.51.100.0/24", "{body}");
        }
        other => panic!(
            "tests/tests/suite/operations/rie.rs: say how events/{other} is made live (a real \
             account, token or session) and what it must answer"
        ),
    }
}

/// The user the admin events act on, as they are: nobody.
const SAMPLE_USER: &str = "7b3e9f2a-5c1d-4e8b-a6f0-2d4c6e8a0b1c";

/// An admin event as `admin` sends it about `target`.
async fn on_user(mut event: Value, admin: &Value, target: &Account, stack: &Stack) -> Value {
    let id = stack.context(&target.access).await["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for pointer in ["/rawPath", "/requestContext/http/path"] {
        let value = event.pointer_mut(pointer).unwrap();
        *value = json!(value.as_str().unwrap().replace(SAMPLE_USER, &id));
    }
    event["pathParameters"]["id"] = json!(id);
    with_context(event, admin)
}

/// `event` (the authorizer's) as API Gateway sends it for `route` (`GET /admin/users`).
fn for_route(mut event: Value, method: &str, path: &str) -> Value {
    let key = format!("{method} {path}");
    event["routeKey"] = json!(key);
    event["requestContext"]["routeKey"] = json!(key);
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    event["routeArn"] = json!(format!(
        "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/$default/{method}{path}"
    ));
    event
}

impl Stack {
    /// A new account holding the `admin` role, granted in env.json's table as `authctl
    /// grant-role` does and carried by a refresh through the refresh function: what the
    /// authorizer passes on for it on an admin route (a plain account is refused there).
    async fn admin_context(&self) -> Value {
        use shared::store::UserStore;
        let account = self.sign_up().await;
        let decide = |access: &str| {
            self.authorize(for_route(
                with_bearer(event("authorizer-v2-request.json"), access),
                "GET",
                "/admin/users",
            ))
        };
        let refused = decide(&account.access).await;
        assert_eq!(
            refused["isAuthorized"], false,
            "no admin role yet: {refused}"
        );
        let user_id: uuid::Uuid = self.context(&account.access).await["user_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let sam = sam_local_functions();
        let environment = local_environment(&sam[Function::Admin.binary()]);
        let client = shared::DynamoStore::client_for_endpoint(&dynamodb_endpoint()).await;
        let store = shared::DynamoStore::new(
            client,
            &environment["USERS_TABLE"],
            &environment["SESSIONS_TABLE"],
            &environment["HISTORY_TABLE"],
        );
        let now = shared::Clock::now(&shared::SystemClock);
        store
            .set_roles(user_id, &["admin".to_owned()], now)
            .await
            .unwrap();
        let (status, refreshed) = self
            .call(with_body(
                event("refresh.json"),
                json!({"refresh_token": account.refresh}),
            ))
            .await;
        assert_eq!(status, 200, "{refreshed}");
        let admitted = decide(refreshed["access_token"].as_str().unwrap()).await;
        assert_eq!(admitted["isAuthorized"], true, "{admitted}");
        assert_eq!(admitted["context"]["roles"], "admin", "{admitted}");
        admitted["context"].clone()
    }
}

/// A header of a function's HTTP answer (payload 2.0: names in lower case, `Set-Cookie` in
/// `cookies`).
fn answer_header(answer: &Value, name: &str) -> String {
    let value = if name == "set-cookie" {
        &answer["cookies"][0]
    } else {
        &answer["headers"][name]
    };
    value
        .as_str()
        .unwrap_or_else(|| panic!("no {name}: {answer}"))
        .to_owned()
}

/// A sign-in with an OpenID provider through the oidc binary, configured (beside env.json,
/// which has none) with a provider of the test's own as the events' `google`: start, the
/// provider, callback and exchange, then the identity through the stack's own functions.
async fn oidc_journey(stack: &Stack) {
    use integration_tests::fake_oidc::{FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FakeIssuer};
    let fake = FakeIssuer::start().await;
    let sam = sam_local_functions();
    let mut environment = local_environment(&sam[Function::Oidc.binary()]);
    let app = "https://app.example.com/signed-in";
    let providers = json!([{"id": "google", "issuer": fake.issuer, "client_id": FAKE_CLIENT_ID,
        "client_secret": FAKE_CLIENT_SECRET, "allowed_redirect_uris": [app],
        "algorithms": ["ES256"]}]);
    environment.insert("OIDC_PROVIDERS".into(), providers.to_string());
    let oidc = RieFunction::start(
        "oidc (with a provider)",
        &binaries().join(Function::Oidc.binary()),
        &environment,
    )
    .await;

    let started = oidc
        .invoke(&stack.sent_from_our_address(event("oidc-start.json")))
        .await;
    assert_eq!(started["statusCode"], 302, "{started}");
    let cookie = answer_header(&started, "set-cookie");
    assert!(cookie.starts_with("__Host-oidc="), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let redirected =
        integration_tests::oidc::sign_in_at_provider(&answer_header(&started, "location"), "rie")
            .await;
    let query = redirected.location.split_once('?').unwrap().1.to_owned();
    let mut callback = event("oidc-callback.json");
    callback["rawQueryString"] = json!(query);
    callback["queryStringParameters"] = json!(
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect::<BTreeMap<String, String>>()
    );
    callback["cookies"] = json!([cookie]);
    let answered = oidc.invoke(&stack.sent_from_our_address(callback)).await;
    assert_eq!(answered["statusCode"], 302, "{answered}");
    let location = answer_header(&answered, "location");
    let code = location
        .strip_prefix(&format!("{app}#code="))
        .and_then(|rest| rest.split('&').next())
        .unwrap_or_else(|| panic!("no code for the app: {location}"))
        .to_owned();
    let exchange = with_body(
        event("oidc-exchange.json"),
        json!({"code": code, "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"}),
    );
    let (status, signed_in) = http(&oidc.invoke(&stack.sent_from_our_address(exchange)).await);
    assert_eq!(status, 200, "{signed_in}");
    assert_eq!(signed_in["user"]["email"], "fake@example.com");

    // The new account through the stack's own functions: the authorizer, its one identity,
    // which is its only way in.
    let context = stack
        .context(signed_in["access_token"].as_str().unwrap())
        .await;
    let (status, listed) = stack
        .call(with_context(event("identities-list.json"), &context))
        .await;
    assert_eq!(status, 200, "{listed}");
    let id = listed["identities"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed["identities"][0]["provider"], "google");
    let mut unlink = with_context(event("identities-unlink.json"), &context);
    unlink["pathParameters"]["id"] = json!(id);
    unlink["rawPath"] = json!(format!("/auth/identities/{id}"));
    unlink["requestContext"]["http"]["path"] = unlink["rawPath"].clone();
    let (status, body) = stack.call(unlink).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "last_credential");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_file_under_the_runtime_interface_emulator() {
    let stack = Stack::start().await;
    let mut names: Vec<String> = std::fs::read_dir(repository().join("events"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut covered = std::collections::BTreeSet::new();
    for name in &names {
        let sample = event(name);
        let function = function_of_event(name, &sample);
        covered.insert(function);
        let answer = stack
            .get(function)
            .invoke(&stack.sent_from_our_address(sample))
            .await;
        check_sample_answer(name, function, &answer);
        check_live(&stack, name).await;
    }
    for function in Function::ALL {
        assert!(
            covered.contains(function),
            "events/: add a sample event for {}",
            function.binary()
        );
    }
}

/// Register, pass the authorizer, me, refresh, logout, and the authorizer refusing the token:
/// every step a real binary under the emulator, API Gateway's part played by this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_through_the_emulated_functions_alone() {
    let stack = Stack::start().await;
    let account = stack.sign_up().await;

    let context = stack.context(&account.access).await;
    assert_eq!(context["user_email"], json!(account.email));
    let (status, me) = stack.call(with_context(event("me.json"), &context)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["id"], context["user_id"]);

    let (status, refreshed) = stack
        .call(with_body(
            event("refresh.json"),
            json!({"refresh_token": account.refresh}),
        ))
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    let context = stack.context(&access).await;
    assert_eq!(context["user_id"], me["user"]["id"]);

    let (status, body) = stack
        .call(with_context(event("logout.json"), &context))
        .await;
    assert_eq!(status, 204, "{body}");
    for token in [&access, &account.access] {
        let answer = stack
            .authorize(with_bearer(event("authorizer-v2-request.json"), token))
            .await;
        assert_eq!(
            answer,
            json!({"isAuthorized": false, "context": {}}),
            "after logout"
        );
    }
}

/// CloudWatch reads each line a function prints: JSON log lines (LoggingConfig LogFormat JSON)
/// that name their invocation's request id, and Embedded Metric Format documents whose
/// dimensions carry no user id, email or address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_name_their_request_and_metrics_name_no_user() {
    let stack = Stack::start().await;
    // The emulator starts a function on its first invocation, inside that invocation's
    // START/END; what a cold start logs belongs to no request. Start them all, then read.
    for function in stack.functions.values() {
        function.invoke(&json!({})).await;
        function.clear_output();
    }
    let account = stack.sign_up().await;
    let wrong = with_body(
        event("login.json"),
        json!({"email": account.email, "password": "not the password at all"}),
    );
    assert_eq!(stack.call(wrong).await.0, 401);
    let right = with_body(
        event("login.json"),
        json!({"email": account.email, "password": account.password}),
    );
    assert_eq!(stack.call(right).await.0, 200);
    let context = stack.context(&account.access).await;
    stack.authorize(event("authorizer-v2-request.json")).await;

    let user_id = context["user_id"].as_str().unwrap().to_owned();
    let forbidden = [
        user_id.as_str(),
        account.email.as_str(),
        stack.source_ip.as_str(),
    ];
    let mut counted: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut request_lines = 0;
    for function in stack.functions.values() {
        let output = function.output();
        let mut invocation: Option<String> = None;
        for line in &output {
            if let Some(rest) = line.strip_prefix("START RequestId: ") {
                invocation = rest.split_whitespace().next().map(str::to_owned);
                continue;
            }
            if line.starts_with("END RequestId: ") {
                invocation = None;
                continue;
            }
            let Ok(document) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if document.get("_aws").is_some() {
                for ((name, dimension), value) in
                    check_emf(&function.name, &document, &forbidden, invocation.as_deref())
                {
                    *counted.entry((name, dimension)).or_default() += value;
                }
            } else if let Some(request_id) = &invocation {
                // A log line of a request carries its request id (the runtime's span).
                let carried = document["span"]["requestId"] == json!(request_id)
                    || document["spans"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|span| span["requestId"] == json!(request_id));
                assert!(
                    carried,
                    "{}: a log line without its request id {request_id}: {line}",
                    function.name
                );
                assert!(document["level"].is_string(), "{line}");
                request_lines += 1;
            }
        }
    }
    assert!(
        request_lines > 0,
        "no JSON log line was printed during a request"
    );
    for expected in [
        (metrics::SIGN_INS, "Succeeded"),
        (metrics::SIGN_INS, "Failed"),
        (metrics::AUTHORIZER_DECISIONS, "Allow"),
        (metrics::AUTHORIZER_DECISIONS, "Deny"),
    ] {
        let key = (expected.0.to_owned(), expected.1.to_owned());
        assert!(
            counted.get(&key).is_some_and(|n| *n >= 1.0),
            "no {expected:?} counted: {counted:?}"
        );
    }
}

/// Checks an EMF document's shape; returns (metric, its non-function dimension value) counts.
fn check_emf(
    function: &str,
    document: &Value,
    forbidden: &[&str],
    request_id: Option<&str>,
) -> Vec<((String, String), f64)> {
    let aws = &document["_aws"];
    assert!(aws["Timestamp"].is_u64(), "{function}: {document}");
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics");
    let mut counted = Vec::new();
    for directive in directives {
        assert_eq!(directive["Namespace"], metrics::NAMESPACE, "{document}");
        let dimension_sets = directive["Dimensions"].as_array().expect("Dimensions");
        let mut dimensions = Vec::new();
        for set in dimension_sets {
            for name in set.as_array().expect("a dimension set") {
                let name = name.as_str().expect("a dimension name");
                let value = document[name].as_str().unwrap_or_else(|| {
                    panic!("{function}: dimension {name} has no value: {document}")
                });
                for secret in forbidden {
                    assert!(
                        !value.contains(secret),
                        "{function}: dimension {name} carries {secret}: {document}"
                    );
                }
                dimensions.push((name.to_owned(), value.to_owned()));
            }
        }
        assert!(
            dimensions
                .iter()
                .any(|(name, value)| name == metrics::FUNCTION_DIMENSION && !value.is_empty()),
            "{function}: every metric is per function: {document}"
        );
        for metric in directive["Metrics"].as_array().expect("Metrics") {
            let name = metric["Name"].as_str().expect("a metric name");
            let value = document[name]
                .as_f64()
                .unwrap_or_else(|| panic!("{function}: metric {name} has no value: {document}"));
            let (_, values) = metrics::METRICS
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, dimension)| ((), *dimension))
                .unwrap_or_else(|| panic!("{function}: {name} is not in shared::metrics::METRICS"));
            let label = dimensions
                .iter()
                .find(|(dimension, _)| dimension != metrics::FUNCTION_DIMENSION)
                .map(|(_, value)| value.clone())
                .unwrap_or_default();
            if let Some((_, allowed)) = values {
                assert!(allowed.contains(&label.as_str()), "{function}: {document}");
            }
            counted.push(((name.to_owned(), label), value));
        }
    }
    if let Some(request_id) = request_id {
        assert_eq!(document["RequestId"], json!(request_id), "{document}");
    }
    counted
}

/// `examples/orders`, a team's own function: under the emulator, it answers with the context
/// the real authorizer passed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_function_answers_with_the_authorizers_context() {
    let stack = Stack::start().await;
    let account = stack.sign_up().await;
    let context = stack.context(&account.access).await;

    let orders = RieFunction::start(
        "orders",
        &binaries().join("orders"),
        &BTreeMap::from([("AWS_LAMBDA_LOG_FORMAT".to_owned(), "JSON".to_owned())]),
    )
    .await;
    let mut request = with_context(event("me.json"), &context);
    request["routeKey"] = json!("GET /orders");
    request["rawPath"] = json!("/orders");
    request["requestContext"]["routeKey"] = json!("GET /orders");
    request["requestContext"]["http"]["path"] = json!("/orders");
    let (status, body) = http(&orders.invoke(&request).await);
    assert_eq!(status, 200, "{body}");
    // Every key the authorizer passed, read typed: flags as booleans, roles as a list.
    let mut typed = context.clone();
    for flag in ["email_verified", "mfa"] {
        typed[flag] = json!(context[flag] == "true");
    }
    let roles: Vec<&str> = context["roles"]
        .as_str()
        .unwrap()
        .split(',')
        .filter(|r| !r.is_empty())
        .collect();
    typed["roles"] = json!(roles);
    assert_eq!(body["caller"], typed, "every key the authorizer passed");
    for key in ["user_id", "user_email", "session_id", "issuer"] {
        assert!(body["caller"][key].is_string(), "{key}: {body}");
    }

    let mut without = request.clone();
    without["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    assert_eq!(http(&orders.invoke(&without).await).0, 401);
}

/// Behind the stack's distribution: the real binary reads the origin secret at its cold start,
/// refuses a request without it before any work, serves one with it, and logs it nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_the_edge_a_function_serves_only_requests_with_the_origin_secret() {
    use shared::http::edge::{ORIGIN_SECRET_HEADER, ORIGIN_SECRET_VAR, VIEWER_ADDRESS_HEADER};
    const SECRET: &str = "rie-edge-origin-secret-0123456789abcdefghijkl";
    let sam = sam_local_functions();
    let mut environment = local_environment(&sam["register"]);
    assert!(
        environment.contains_key(ORIGIN_SECRET_VAR),
        "template.yaml: declare {ORIGIN_SECRET_VAR} in Globals, so sam local can set it"
    );
    environment.insert(ORIGIN_SECRET_VAR.into(), SECRET.into());
    environment.insert("AWS_LAMBDA_LOG_LEVEL".into(), "TRACE".into());
    create_tables(&environment).await;
    let register = RieFunction::start("register", &binaries().join("register"), &environment).await;

    let sign_up = |headers: Value| {
        let email = format!("edge-{}@example.com", uuid::Uuid::new_v4().simple());
        let mut request = with_body(
            event("register.json"),
            json!({"email": email, "password": "correct horse battery staple"}),
        );
        for (name, value) in headers.as_object().unwrap() {
            request["headers"][name] = value.clone();
        }
        request
    };
    let viewer = format!(
        "198.51.100.{}:443",
        1 + uuid::Uuid::new_v4().as_u128() % 250
    );
    let (status, body) = http(
        &register
            .invoke(&sign_up(json!({ VIEWER_ADDRESS_HEADER: viewer })))
            .await,
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "edge_required");
    let (status, body) = http(
        &register
            .invoke(&sign_up(
                json!({ VIEWER_ADDRESS_HEADER: viewer, ORIGIN_SECRET_HEADER: SECRET }),
            ))
            .await,
    );
    assert_eq!(status, 201, "{body}");
    let logs = register.output().join("\n");
    assert!(!logs.contains(SECRET), "the origin secret is in the log");
}
