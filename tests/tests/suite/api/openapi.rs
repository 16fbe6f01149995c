//! The local API checked against `openapi.yaml` for every route: each reply's status, content
//! type and body shape must be documented, and every documented operation must be exercised.

use std::collections::BTreeSet;

use integration_tests::Harness;
use integration_tests::local::{LocalApi, Reply};
use integration_tests::openapi::OpenApi;
use serde_json::{Value, json};
use shared::Clock;

const EMAIL: &str = "spec@example.com";
const PASSWORD: &str = "correct horse battery staple";

#[test]
fn the_document_describes_exactly_the_served_routes() {
    let documented: BTreeSet<(String, String)> = OpenApi::load().operations().into_iter().collect();
    let served: BTreeSet<(String, String)> = shared::routes::ENDPOINTS
        .iter()
        .map(|e| (e.method.to_owned(), e.path.to_owned()))
        .collect();
    assert_eq!(documented, served);
}

/// Sends requests and checks every reply against the document, remembering what it covered.
struct Checker<'a> {
    api: &'a LocalApi,
    spec: OpenApi,
    covered: BTreeSet<(String, String)>,
}

impl Checker<'_> {
    async fn send(
        &mut self,
        method: &str,
        template: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
        content_type: &str,
    ) -> Reply {
        let authorization = bearer.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|a| ("authorization", a.as_str()))
            .collect();
        if body.is_some() {
            headers.push(("content-type", content_type));
        }
        self.send_with(method, template, path, &headers, body.unwrap_or_default())
            .await
    }

    /// [`Self::send`] with these headers exactly (a cookie, a form).
    async fn send_with(
        &mut self,
        method: &str,
        template: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let reply = self.api.send(method, path, headers, body.to_owned()).await;
        if let Err(problem) = self.spec.check(method, template, &reply) {
            panic!("{problem}\nbody: {}", String::from_utf8_lossy(&reply.body));
        }
        self.covered
            .insert((method.to_owned(), template.to_owned()));
        reply
    }

    async fn post(&mut self, path: &str, body: &Value, bearer: Option<&str>) -> Reply {
        self.send(
            "POST",
            path,
            path,
            bearer,
            Some(&body.to_string()),
            "application/json",
        )
        .await
    }

    async fn get(&mut self, path: &str, bearer: Option<&str>) -> Reply {
        self.send("GET", path, path, bearer, None, "").await
    }
}

fn field(reply: &Reply, name: &str) -> String {
    reply.json()[name].as_str().unwrap().to_owned()
}

/// Both stores, each with the OpenID providers of [`oidc_providers`] at a fake of its own.
mod every_reply_matches_the_document {
    use integration_tests::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn dynamodb() {
        super::every_reply_matches_the_document(Backend::Dynamo).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn embedded() {
        super::every_reply_matches_the_document(Backend::Embedded).await;
    }
}

/// Where the app wants its users back after an OpenID sign-in.
const OIDC_APP: &str = "https://app.example.com/signed-in";

/// `fake` (answers on a GET) and `fake-post` (posts its answer), both at `issuer`.
fn oidc_providers(issuer: &str) -> Vec<shared::config::oidc::OidcProviderConfig> {
    use integration_tests::fake_oidc::{FAKE_CLIENT_ID, FAKE_CLIENT_SECRET};
    let raw = json!([
        {"id": "fake", "name": "Fake", "issuer": issuer, "client_id": FAKE_CLIENT_ID,
         "client_secret": FAKE_CLIENT_SECRET, "allowed_redirect_uris": [OIDC_APP],
         "algorithms": ["ES256"]},
        {"id": "fake-post", "issuer": issuer, "client_id": FAKE_CLIENT_ID,
         "client_secret": FAKE_CLIENT_SECRET, "allowed_redirect_uris": [OIDC_APP],
         "response_mode": "form_post", "algorithms": ["ES256"]},
    ]);
    shared::config::oidc::parse(Some(raw.to_string())).expect("the test's providers")
}

/// An app's PKCE pair: a verifier and its S256 challenge.
fn pkce() -> (String, String) {
    use base64::Engine;
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    (verifier, challenge)
}

/// The path and query of an absolute URL.
fn path_of(url: &str) -> String {
    let url = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// The parameters of the fragment the callback sent the app back with.
fn app_fragment(reply: &Reply) -> std::collections::BTreeMap<String, String> {
    let location = reply.header("location").expect("a Location");
    let (app, fragment) = location.split_once('#').expect("a fragment");
    assert_eq!(app, OIDC_APP);
    url::form_urlencoded::parse(fragment.as_bytes())
        .into_owned()
        .collect()
}

impl Checker<'_> {
    /// A start (`/auth/oidc/…/start?…`), the provider, and its callback (a `GET`, or for
    /// `fake-post` the form `POST`): the fragment the app gets back.
    async fn through_provider(
        &mut self,
        start: &str,
    ) -> std::collections::BTreeMap<String, String> {
        let started = self
            .send_with("GET", "/auth/oidc/{provider}/start", start, &[], "")
            .await;
        assert_eq!(started.status, 302, "{:?}", started.json());
        let cookie = started
            .header("set-cookie")
            .expect("the login cookie")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let redirected = integration_tests::oidc::sign_in_at_provider(
            started.header("location").unwrap(),
            "spec",
        )
        .await;
        let back = path_of(&redirected.location);
        let template = "/auth/oidc/{provider}/callback";
        let answered = if back.starts_with("/auth/oidc/fake-post/") {
            let (path, form) = back.split_once('?').unwrap();
            let headers = [
                ("cookie", cookie.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ];
            let answered = self.send_with("POST", template, path, &headers, form).await;
            assert_eq!(answered.status, 303);
            answered
        } else {
            let answered = self
                .send_with("GET", template, &back, &[("cookie", &cookie)], "")
                .await;
            assert_eq!(answered.status, 302);
            answered
        };
        app_fragment(&answered)
    }
}

async fn every_reply_matches_the_document(backend: integration_tests::Backend) {
    let fake = integration_tests::fake_oidc::FakeIssuer::start().await;
    let mut config = integration_tests::test_config();
    config.oidc_providers = oidc_providers(&fake.issuer);
    let h = Harness::new_with(backend, config).await;
    let api = h.serve_local_api().await;
    let mut c = Checker {
        api: &api,
        spec: OpenApi::load(),
        covered: BTreeSet::new(),
    };
    let creds = json!({"email": EMAIL, "password": PASSWORD});

    // register: 201, 409, 400, 413, 415, 422
    let registered = c.post("/auth/register", &creds, None).await;
    assert_eq!(registered.status, 201);
    assert_eq!(c.post("/auth/register", &creds, None).await.status, 409);
    assert_eq!(
        c.post("/auth/register", &json!({"email": EMAIL}), None)
            .await
            .status,
        400
    );
    assert_eq!(
        c.send(
            "POST",
            "/auth/register",
            "/auth/register",
            None,
            Some("nope"),
            "application/json"
        )
        .await
        .status,
        400
    );
    let big = json!({"email": "x".repeat(20_000), "password": PASSWORD}).to_string();
    assert_eq!(
        c.send(
            "POST",
            "/auth/register",
            "/auth/register",
            None,
            Some(&big),
            "application/json"
        )
        .await
        .status,
        413
    );
    assert_eq!(
        c.send(
            "POST",
            "/auth/register",
            "/auth/register",
            None,
            Some("a=b"),
            "application/x-www-form-urlencoded"
        )
        .await
        .status,
        415
    );
    assert_eq!(
        c.post(
            "/auth/register",
            &json!({"email": "bad", "password": PASSWORD}),
            None
        )
        .await
        .status,
        422
    );
    assert_eq!(
        c.post(
            "/auth/register",
            &json!({"email": "weak@example.com", "password": "password"}),
            None
        )
        .await
        .status,
        422
    );

    // login: 200, 401, 400, 422
    let login = c.post("/auth/login", &creds, None).await;
    assert_eq!(login.status, 200);
    assert_eq!(
        c.post(
            "/auth/login",
            &json!({"email": EMAIL, "password": "wrong wrong"}),
            None
        )
        .await
        .status,
        401
    );
    assert_eq!(
        c.post("/auth/login", &json!({"email": EMAIL, "password": 1}), None)
            .await
            .status,
        400
    );
    assert_eq!(
        c.post(
            "/auth/login",
            &json!({"email": "@", "password": PASSWORD}),
            None
        )
        .await
        .status,
        422
    );

    // refresh: 200, 401, 400
    let refreshed = c
        .post(
            "/auth/refresh",
            &json!({"refresh_token": field(&login, "refresh_token")}),
            None,
        )
        .await;
    assert_eq!(refreshed.status, 200);
    assert_eq!(
        c.post("/auth/refresh", &json!({"refresh_token": "x.y.z"}), None)
            .await
            .status,
        401
    );
    assert_eq!(c.post("/auth/refresh", &json!({}), None).await.status, 400);

    let access = field(&refreshed, "access_token");
    // me: 200, 401, 403
    assert_eq!(c.get("/auth/me", Some(&access)).await.status, 200);
    assert_eq!(c.get("/auth/me", None).await.status, 401);
    assert_eq!(c.get("/auth/me", Some("forged")).await.status, 403);

    // sessions: 200, 401, 403; delete: 204, 404, 401
    let sessions = c.get("/auth/sessions", Some(&access)).await;
    assert_eq!(sessions.status, 200);
    assert_eq!(c.get("/auth/sessions", None).await.status, 401);
    assert_eq!(c.get("/auth/sessions", Some("forged")).await.status, 403);
    let other = sessions.json()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let template = "/auth/sessions/{id}";
    assert_eq!(
        c.send(
            "DELETE",
            template,
            &format!("/auth/sessions/{other}"),
            Some(&access),
            None,
            ""
        )
        .await
        .status,
        204
    );
    assert_eq!(
        c.send(
            "DELETE",
            template,
            &format!("/auth/sessions/{other}"),
            Some(&access),
            None,
            ""
        )
        .await
        .status,
        404
    );
    assert_eq!(
        c.send(
            "DELETE",
            template,
            "/auth/sessions/not-a-uuid",
            Some(&access),
            None,
            ""
        )
        .await
        .status,
        404
    );
    assert_eq!(
        c.send(
            "DELETE",
            template,
            &format!("/auth/sessions/{other}"),
            None,
            None,
            ""
        )
        .await
        .status,
        401
    );

    // password: 400, 401 (both kinds), 403, 422, 204
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    assert_eq!(
        c.post(
            "/auth/password",
            &json!({"current_password": PASSWORD}),
            Some(&access)
        )
        .await
        .status,
        400
    );
    assert_eq!(
        c.post(
            "/auth/password",
            &change(PASSWORD, "another long horse staple 77"),
            None
        )
        .await
        .status,
        401
    );
    assert_eq!(
        c.post(
            "/auth/password",
            &change("wrong wrong", "another long horse staple 77"),
            Some(&access)
        )
        .await
        .status,
        401
    );
    assert_eq!(
        c.post(
            "/auth/password",
            &change(PASSWORD, "another long horse staple 77"),
            Some("forged")
        )
        .await
        .status,
        403
    );
    assert_eq!(
        c.post("/auth/password", &change(PASSWORD, "short"), Some(&access))
            .await
            .status,
        422
    );
    assert_eq!(
        c.post(
            "/auth/password",
            &change(PASSWORD, "another long horse staple 77"),
            Some(&access)
        )
        .await
        .status,
        204
    );
    let creds = json!({"email": EMAIL, "password": "another long horse staple 77"});

    // logout: 400, 401, 403, 204
    assert_eq!(
        c.post("/auth/logout", &json!({"all": "yes"}), Some(&access))
            .await
            .status,
        400
    );
    assert_eq!(
        c.send("POST", "/auth/logout", "/auth/logout", None, None, "")
            .await
            .status,
        401
    );
    assert_eq!(
        c.send(
            "POST",
            "/auth/logout",
            "/auth/logout",
            Some("forged"),
            None,
            ""
        )
        .await
        .status,
        403
    );
    assert_eq!(
        c.send(
            "POST",
            "/auth/logout",
            "/auth/logout",
            Some(&access),
            None,
            ""
        )
        .await
        .status,
        204
    );

    // the account lifecycle by email, with a session of its own
    let mailer = "mailer@example.com";
    let mailer_creds = json!({"email": mailer, "password": PASSWORD});
    let mailer_access = field(
        &c.post("/auth/register", &mailer_creds, None).await,
        "access_token",
    );
    let verification = c
        .post("/auth/email/verification", &json!({}), Some(&mailer_access))
        .await;
    assert_eq!(verification.status, 202);
    let resend = c
        .post("/auth/email/verification", &json!({}), Some(&mailer_access))
        .await;
    assert_eq!(resend.status, 429, "one a minute");
    assert_eq!(
        c.post(
            "/auth/email/verification",
            &json!({"x": 1}),
            Some(&mailer_access)
        )
        .await
        .status,
        400
    );
    let token = h.link_token(mailer, "verify-email").await;
    let verified = c
        .post("/auth/email/verify", &json!({ "token": token }), None)
        .await;
    assert_eq!(verified.status, 200);
    assert_eq!(verified.json()["user"]["email_verified"], true);
    let spent = c
        .post("/auth/email/verify", &json!({ "token": token }), None)
        .await;
    assert_eq!(spent.status, 401);
    assert_eq!(
        c.post("/auth/email/verify", &json!({}), None).await.status,
        400
    );
    let change = |email: &str, password: &str| json!({"email": email, "password": password});
    assert_eq!(
        c.post(
            "/auth/email",
            &change("moved@example.com", PASSWORD),
            Some(&mailer_access)
        )
        .await
        .status,
        202
    );
    assert_eq!(
        c.post(
            "/auth/email",
            &change("throttled@example.com", PASSWORD),
            Some(&mailer_access)
        )
        .await
        .status,
        429,
        "one address change a minute per user"
    );
    assert_eq!(
        c.post(
            "/auth/email",
            &change("moved@example.com", "wrong password here"),
            Some(&mailer_access)
        )
        .await
        .status,
        401
    );
    h.clock.advance(61);
    assert_eq!(
        c.post(
            "/auth/email",
            &change(mailer, PASSWORD),
            Some(&mailer_access)
        )
        .await
        .status,
        202,
        "a taken address answers as any other"
    );
    assert_eq!(
        c.post(
            "/auth/email",
            &change("not an address", PASSWORD),
            Some(&mailer_access)
        )
        .await
        .status,
        422
    );
    assert_eq!(
        c.post("/auth/email", &json!({}), None).await.status,
        401,
        "API Gateway's own answer"
    );
    let change_token = h.link_token("moved@example.com", "verify-email").await;
    let moved = c
        .post(
            "/auth/email/verify",
            &json!({ "token": change_token }),
            None,
        )
        .await;
    assert_eq!(moved.status, 200);
    assert_eq!(moved.json()["user"]["email"], "moved@example.com");
    let forgot = |email: &str| json!({ "email": email });
    assert_eq!(
        c.post("/auth/password/forgot", &forgot("moved@example.com"), None)
            .await
            .status,
        202
    );
    assert_eq!(
        c.post("/auth/password/forgot", &forgot("nobody@example.com"), None)
            .await
            .status,
        202
    );
    assert_eq!(
        c.post("/auth/password/forgot", &forgot("@"), None)
            .await
            .status,
        422
    );
    let reset_token = h.link_token("moved@example.com", "reset-password").await;
    let reset = |password: &str| json!({"token": reset_token, "password": password});
    assert_eq!(
        c.post("/auth/password/reset", &reset("short"), None)
            .await
            .status,
        422
    );
    assert_eq!(
        c.post(
            "/auth/password/reset",
            &reset("a brand new horse staple 2026"),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        c.post(
            "/auth/password/reset",
            &reset("a brand new horse staple 2026"),
            None
        )
        .await
        .status,
        401
    );
    assert_eq!(c.get("/verify-email", None).await.status, 200);
    assert_eq!(c.get("/reset-password", None).await.status, 200);
    assert_eq!(c.get("/account", None).await.status, 200);

    // two-factor sign-in, with a user of its own
    let second = "second-factor@example.com";
    let second_creds = json!({"email": second, "password": PASSWORD});
    let second_access = field(
        &c.post("/auth/register", &second_creds, None).await,
        "access_token",
    );
    let code = |code: &str| json!({ "code": code });
    assert_eq!(
        c.post(
            "/auth/mfa/totp/setup",
            &json!({"password": PASSWORD}),
            Some(&second_access)
        )
        .await
        .status,
        403,
        "email_unverified"
    );
    let second_id = h.store.user_by_email(second).await.unwrap().unwrap().id;
    h.verify_address(second_id).await;
    assert_eq!(
        c.post(
            "/auth/mfa/totp/confirm",
            &code("123456"),
            Some(&second_access)
        )
        .await
        .status,
        409,
        "no setup yet"
    );
    assert_eq!(
        c.post(
            "/auth/mfa/recovery-codes",
            &json!({"password": PASSWORD, "code": "123456"}),
            Some(&second_access)
        )
        .await
        .status,
        409,
        "TOTP is off"
    );
    assert_eq!(
        c.send(
            "DELETE",
            "/auth/mfa/totp",
            "/auth/mfa/totp",
            Some(&second_access),
            Some(&json!({"password": PASSWORD, "code": "123456"}).to_string()),
            "application/json"
        )
        .await
        .status,
        409
    );
    let wrong_password = json!({"password": "not the password at all"});
    assert_eq!(
        c.post(
            "/auth/mfa/totp/setup",
            &wrong_password,
            Some(&second_access)
        )
        .await
        .status,
        401
    );
    let setup = c
        .post(
            "/auth/mfa/totp/setup",
            &json!({"password": PASSWORD}),
            Some(&second_access),
        )
        .await;
    assert_eq!(setup.status, 200);
    let secret = base32::decode(
        base32::Alphabet::Rfc4648 { padding: false },
        setup.json()["secret"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(
        c.post(
            "/auth/mfa/totp/confirm",
            &code("12345"),
            Some(&second_access)
        )
        .await
        .status,
        400,
        "not six digits"
    );
    let wrong = if h.totp_code(&secret) == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert_eq!(
        c.post("/auth/mfa/totp/confirm", &code(wrong), Some(&second_access))
            .await
            .status,
        401
    );
    let confirmed = c
        .post(
            "/auth/mfa/totp/confirm",
            &code(&h.totp_code(&secret)),
            Some(&second_access),
        )
        .await;
    assert_eq!(confirmed.status, 200);
    let recovery: Vec<String> =
        serde_json::from_value(confirmed.json()["recovery_codes"].clone()).unwrap();
    assert_eq!(
        c.post(
            "/auth/mfa/totp/setup",
            &json!({"password": PASSWORD}),
            Some(&second_access)
        )
        .await
        .status,
        409,
        "on already"
    );
    h.clock.advance(30);
    let challenge = c.post("/auth/login", &second_creds, None).await;
    assert_eq!(challenge.status, 200);
    let mfa_token = field(&challenge, "mfa_token");
    let verify = |code: &str| json!({"mfa_token": mfa_token, "code": code});
    assert_eq!(
        c.post("/auth/mfa/verify", &verify(wrong), None)
            .await
            .status,
        401
    );
    assert_eq!(
        c.post("/auth/mfa/verify", &json!({"mfa_token": mfa_token}), None)
            .await
            .status,
        400
    );
    let finished = c
        .post("/auth/mfa/verify", &verify(&h.totp_code(&secret)), None)
        .await;
    assert_eq!(finished.status, 200);
    assert_eq!(
        c.post("/auth/mfa/verify", &verify(&h.totp_code(&secret)), None)
            .await
            .status,
        401,
        "the mfa_token is spent"
    );
    let regenerated = c
        .post(
            "/auth/mfa/recovery-codes",
            &json!({"password": PASSWORD, "code": recovery[0]}),
            Some(&second_access),
        )
        .await;
    assert_eq!(regenerated.status, 200);
    assert_eq!(
        c.send(
            "DELETE",
            "/auth/mfa/totp",
            "/auth/mfa/totp",
            Some(&second_access),
            Some(
                &json!({"password": PASSWORD, "code": regenerated.json()["recovery_codes"][0]})
                    .to_string()
            ),
            "application/json"
        )
        .await
        .status,
        204
    );

    // passkeys, with a user of their own and a soft key
    let holder = "passkeys@example.com";
    let holder_access = field(
        &c.post(
            "/auth/register",
            &json!({"email": holder, "password": PASSWORD}),
            None,
        )
        .await,
        "access_token",
    );
    let password = json!({ "password": PASSWORD });
    assert_eq!(
        c.post(
            "/auth/passkeys/register/options",
            &password,
            Some(&holder_access)
        )
        .await
        .status,
        403,
        "email_unverified"
    );
    let holder_id = h.store.user_by_email(holder).await.unwrap().unwrap().id;
    h.verify_address(holder_id).await;
    let options = c
        .post(
            "/auth/passkeys/register/options",
            &password,
            Some(&holder_access),
        )
        .await;
    assert_eq!(options.status, 200);
    let options = options.json();
    let mut key = integration_tests::passkeys::SoftKey::new(true);
    let credential = key.create(&options["publicKey"]);
    assert_eq!(
        c.post(
            "/auth/passkeys/register",
            &json!({"ceremony_id": options["ceremony_id"]}),
            Some(&holder_access)
        )
        .await
        .status,
        400
    );
    let added = c
        .post(
            "/auth/passkeys/register",
            &json!({"ceremony_id": options["ceremony_id"], "credential": credential}),
            Some(&holder_access),
        )
        .await;
    assert_eq!(added.status, 201);
    let id = added.json()["passkey"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        c.get("/auth/passkeys", Some(&holder_access)).await.status,
        200
    );
    let rename = |path: &str| {
        (
            format!("/auth/passkeys/{path}"),
            json!({"name": "Phone"}).to_string(),
        )
    };
    let (path, body) = rename(&id);
    assert_eq!(
        c.send(
            "PATCH",
            "/auth/passkeys/{id}",
            &path,
            Some(&holder_access),
            Some(&body),
            "application/json"
        )
        .await
        .status,
        200
    );
    let (path, body) = rename("unknown");
    assert_eq!(
        c.send(
            "PATCH",
            "/auth/passkeys/{id}",
            &path,
            Some(&holder_access),
            Some(&body),
            "application/json"
        )
        .await
        .status,
        404
    );
    let options = c
        .post("/auth/passkeys/login/options", &json!({}), None)
        .await;
    assert_eq!(options.status, 200);
    let options = options.json();
    let answer = key.get(&options["publicKey"]);
    let login = json!({"ceremony_id": options["ceremony_id"], "credential": answer});
    assert_eq!(
        c.post("/auth/passkeys/login", &login, None).await.status,
        200
    );
    assert_eq!(
        c.post("/auth/passkeys/login", &login, None).await.status,
        401,
        "the ceremony is spent"
    );
    assert_eq!(
        c.post(
            "/auth/mfa/passkey/options",
            &json!({"mfa_token": "A".repeat(43)}),
            None
        )
        .await
        .status,
        401
    );
    let path = format!("/auth/passkeys/{id}");
    assert_eq!(
        c.send(
            "DELETE",
            "/auth/passkeys/{id}",
            &path,
            Some(&holder_access),
            Some(&password.to_string()),
            "application/json"
        )
        .await
        .status,
        204
    );

    // OpenID providers: a sign-in on both callbacks, a link, unlinking
    fake.set_now(h.clock.now());
    let listed = c.get("/auth/oidc/providers", None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["providers"][0]["name"], "Fake");
    let (verifier, challenge) = pkce();
    let start = |provider: &str, redirect_uri: &str, challenge: &str| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_challenge", challenge)
            .append_pair("state", "spec")
            .finish();
        format!("/auth/oidc/{provider}/start?{query}")
    };
    let template = "/auth/oidc/{provider}/start";
    for (provider, redirect_uri, status) in [
        ("nope", OIDC_APP, 404),
        ("fake", "https://elsewhere.example/", 400),
    ] {
        let path = start(provider, redirect_uri, &challenge);
        let reply = c.send_with("GET", template, &path, &[], "").await;
        assert_eq!(reply.status, status, "{provider} {redirect_uri}");
    }
    let template = "/auth/oidc/{provider}/callback";
    let unknown = c
        .send_with(
            "GET",
            template,
            "/auth/oidc/fake/callback?state=x&code=y",
            &[],
            "",
        )
        .await;
    assert_eq!(unknown.status, 400, "a state of nobody's: a page");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let unknown = c
        .send_with(
            "POST",
            template,
            "/auth/oidc/fake-post/callback",
            &form,
            "state=x&code=y",
        )
        .await;
    assert_eq!(unknown.status, 400);
    let exchange = |code: &str, verifier: &str| json!({"code": code, "code_verifier": verifier});
    assert_eq!(
        c.post(
            "/auth/oidc/exchange",
            &exchange(&"A".repeat(43), "short"),
            None
        )
        .await
        .status,
        400
    );
    assert_eq!(
        c.post(
            "/auth/oidc/exchange",
            &exchange(&"A".repeat(43), &verifier),
            None
        )
        .await
        .status,
        401
    );
    let fragment = c
        .through_provider(&start("fake", OIDC_APP, &challenge))
        .await;
    assert_eq!(fragment["state"], "spec");
    let signed_in = c
        .post(
            "/auth/oidc/exchange",
            &exchange(&fragment["code"], &verifier),
            None,
        )
        .await;
    assert_eq!(signed_in.status, 200);
    let federated = field(&signed_in, "access_token");
    assert_eq!(
        c.post(
            "/auth/oidc/exchange",
            &exchange(&fragment["code"], &verifier),
            None
        )
        .await
        .status,
        401,
        "the code is spent"
    );
    let fragment = c
        .through_provider(&start("fake-post", OIDC_APP, &challenge))
        .await;
    assert_eq!(
        c.post(
            "/auth/oidc/exchange",
            &exchange(&fragment["code"], &verifier),
            None
        )
        .await
        .status,
        200
    );
    let identities = c.get("/auth/identities", Some(&federated)).await;
    assert_eq!(identities.status, 200);
    assert_eq!(c.get("/auth/identities", None).await.status, 401);
    let listed = identities.json()["identities"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2, "the address linked the second provider");
    let id_of = |provider: &str| {
        listed
            .iter()
            .find(|i| i["provider"] == provider)
            .and_then(|i| i["id"].as_str())
            .unwrap_or_else(|| panic!("no {provider} identity: {listed:?}"))
            .to_owned()
    };
    let (first, last) = (id_of("fake-post"), id_of("fake"));
    let template = "/auth/identities/{id}";
    let unlink = |id: &str| format!("/auth/identities/{id}");
    for (id, status) in [(&first, 204), (&last, 409), (&first, 404)] {
        let reply = c
            .send("DELETE", template, &unlink(id), Some(&federated), None, "")
            .await;
        assert_eq!(reply.status, status, "{id}");
    }
    assert_eq!(
        c.send("DELETE", template, &unlink(&last), None, None, "")
            .await
            .status,
        401
    );
    // Linking, from the passkey holder's account (verified, signed in a moment ago).
    let link = |redirect_uri: &str| json!({"redirect_uri": redirect_uri, "code_challenge": challenge, "password": PASSWORD});
    let linker = field(
        &c.post(
            "/auth/register",
            &json!({"email": "linker@example.com", "password": PASSWORD}),
            None,
        )
        .await,
        "access_token",
    );
    for (path, body, bearer, status) in [
        ("/auth/oidc/fake/link", link(OIDC_APP), None, 401),
        ("/auth/oidc/fake/link", link(OIDC_APP), Some("forged"), 403),
        (
            "/auth/oidc/fake/link",
            link(OIDC_APP),
            Some(linker.as_str()),
            403,
        ),
        (
            "/auth/oidc/nope/link",
            link(OIDC_APP),
            Some(holder_access.as_str()),
            404,
        ),
        (
            "/auth/oidc/fake/link",
            link("https://elsewhere.example/"),
            Some(holder_access.as_str()),
            400,
        ),
    ] {
        let reply = c
            .send(
                "POST",
                "/auth/oidc/{provider}/link",
                path,
                bearer,
                Some(&body.to_string()),
                "application/json",
            )
            .await;
        assert_eq!(reply.status, status, "{path} {bearer:?}");
    }
    // First the provider account the federated user holds, then one of the holder's own.
    for (account, status) in [(None, 409), (Some("holder-at-the-provider"), 200)] {
        if let Some(subject) = account {
            fake.set_account(subject, holder, true);
        }
        let reply = c
            .send(
                "POST",
                "/auth/oidc/{provider}/link",
                "/auth/oidc/fake/link",
                Some(&holder_access),
                Some(&link(OIDC_APP).to_string()),
                "application/json",
            )
            .await;
        assert_eq!(reply.status, 200);
        let fragment = c.through_provider(&path_of(&field(&reply, "url"))).await;
        let exchanged = c
            .post(
                "/auth/oidc/exchange",
                &exchange(&fragment["code"], &verifier),
                None,
            )
            .await;
        assert_eq!(exchanged.status, status, "{account:?}");
        match account {
            None => assert_eq!(exchanged.code().as_deref(), Some("identity_taken")),
            Some(_) => assert_eq!(exchanged.json()["identity"]["provider"], "fake"),
        }
    }

    // admin: the role granted to a user, then a refresh to carry it; a plain user refused at
    // the authorizer
    let signed_up = |email: &str| json!({"email": email, "password": PASSWORD});
    let boss = c
        .post("/auth/register", &signed_up("boss@example.com"), None)
        .await;
    let boss_id: uuid::Uuid = boss.json()["user"]["id"].as_str().unwrap().parse().unwrap();
    h.store
        .set_roles(boss_id, &["admin".to_owned()], h.clock.now())
        .await
        .unwrap();
    let boss = field(
        &c.post(
            "/auth/refresh",
            &json!({"refresh_token": field(&boss, "refresh_token")}),
            None,
        )
        .await,
        "access_token",
    );
    let target = c
        .post("/auth/register", &signed_up("target@example.com"), None)
        .await;
    let plain = field(&target, "access_token");
    let target = target.json()["user"]["id"].as_str().unwrap().to_owned();
    let nobody = uuid::Uuid::new_v4().to_string();
    let template = "/admin/users";
    let mut cursor: Option<String> = None;
    let mut listed = 0;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/admin/users?limit=2&cursor={cursor}"),
            None => "/admin/users?limit=2".to_owned(),
        };
        let page = c.send("GET", template, &path, Some(&boss), None, "").await;
        assert_eq!(page.status, 200);
        listed += page.json()["users"].as_array().unwrap().len();
        match page.json()["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert!(listed >= 2, "{listed} users listed");
    for (path, bearer, status) in [
        ("/admin/users", Some(boss.as_str()), 200),
        ("/admin/users?email=target@example.com", Some(&boss), 200),
        ("/admin/users?limit=0", Some(&boss), 400),
        ("/admin/users?limit=many", Some(&boss), 400),
        ("/admin/users?cursor=!!!", Some(&boss), 400),
        ("/admin/users?email=nope", Some(&boss), 422),
        ("/admin/users", None, 401),
        ("/admin/users", Some(&plain), 403),
        ("/admin/users", Some("forged"), 403),
    ] {
        let reply = c.send("GET", template, path, bearer, None, "").await;
        assert_eq!(reply.status, status, "{path} {bearer:?}");
    }
    let user = |id: &str| format!("/admin/users/{id}");
    let template = "/admin/users/{id}";
    for (id, bearer, status) in [
        (&target, Some(boss.as_str()), 200),
        (&nobody, Some(&boss), 404),
        (&target, None, 401),
        (&target, Some(&plain), 403),
    ] {
        let reply = c.send("GET", template, &user(id), bearer, None, "").await;
        assert_eq!(reply.status, status, "{id} {bearer:?}");
    }
    for (id, body, content_type, bearer, status) in [
        (
            &target,
            json!({"roles": ["support"]}),
            "application/json",
            Some(boss.as_str()),
            200,
        ),
        (
            &target,
            json!({"is_active": "no"}),
            "application/json",
            Some(&boss),
            400,
        ),
        (
            &target,
            json!({"roles": ["Not A Role"]}),
            "application/json",
            Some(&boss),
            400,
        ),
        (&target, json!({}), "text/plain", Some(&boss), 415),
        (
            &nobody,
            json!({"is_active": false}),
            "application/json",
            Some(&boss),
            404,
        ),
        (
            &target,
            json!({"is_active": false}),
            "application/json",
            None,
            401,
        ),
        (
            &target,
            json!({"is_active": false}),
            "application/json",
            Some(&plain),
            403,
        ),
    ] {
        let reply = c
            .send(
                "PATCH",
                template,
                &user(id),
                bearer,
                Some(&body.to_string()),
                content_type,
            )
            .await;
        assert_eq!(reply.status, status, "{id} {body} {bearer:?}");
    }
    let template = "/admin/users/{id}/sessions";
    let sessions = |id: &str| format!("/admin/users/{id}/sessions");
    for (id, bearer, status) in [
        (&target, Some(boss.as_str()), 200),
        (&nobody, Some(&boss), 404),
        (&target, None, 401),
        (&target, Some(&plain), 403),
    ] {
        let reply = c
            .send("GET", template, &sessions(id), bearer, None, "")
            .await;
        assert_eq!(reply.status, status, "{id} {bearer:?}");
        if status == 200 {
            assert_eq!(reply.json()["sessions"][0]["current"], false);
        }
    }
    let template = "/admin/users/{id}/sessions/revoke";
    let revoke = |id: &str| format!("/admin/users/{id}/sessions/revoke");
    for (id, bearer, status) in [
        (&target, None, 401),
        (&target, Some(plain.as_str()), 403),
        (&nobody, Some(&boss), 404),
        (&target, Some(&boss), 204),
    ] {
        let reply = c
            .send("POST", template, &revoke(id), bearer, None, "")
            .await;
        assert_eq!(reply.status, status, "{id} {bearer:?}");
    }
    assert_eq!(
        c.get("/auth/me", Some(&plain)).await.status,
        403,
        "its sessions ended"
    );
    let template = "/admin/users/{id}";
    for (id, bearer, status) in [
        (&target, None, 401),
        (&target, Some(plain.as_str()), 403),
        (&nobody, Some(&boss), 404),
        (&target, Some(&boss), 204),
        (&target, Some(&boss), 404),
    ] {
        let reply = c
            .send("DELETE", template, &user(id), bearer, None, "")
            .await;
        assert_eq!(reply.status, status, "{id} {bearer:?}");
    }

    // the security history: the admin's own, a page at a time
    let template = "/auth/security-events";
    for (path, bearer, status) in [
        ("/auth/security-events", Some(boss.as_str()), 200),
        ("/auth/security-events?limit=1", Some(&boss), 200),
        ("/auth/security-events?limit=0", Some(&boss), 400),
        (
            "/auth/security-events?cursor=not-a-cursor",
            Some(&boss),
            400,
        ),
        ("/auth/security-events", None, 401),
        ("/auth/security-events", Some("forged"), 403),
    ] {
        let reply = c.send("GET", template, path, bearer, None, "").await;
        assert_eq!(reply.status, status, "{path} {bearer:?}");
    }

    // deleting one's own account: the password confirms it
    let leaving = c
        .post("/auth/register", &signed_up("leaving@example.com"), None)
        .await;
    let leaving = field(&leaving, "access_token");
    let template = "/auth/account";
    for (body, content_type, bearer, status) in [
        (
            Some(json!({"password": "not the password"})),
            "application/json",
            Some(leaving.as_str()),
            401,
        ),
        (None, "", Some(&leaving), 400),
        (
            Some(json!({"password": 7})),
            "application/json",
            Some(&leaving),
            400,
        ),
        (Some(json!({})), "text/plain", Some(&leaving), 415),
        (
            Some(json!({"password": PASSWORD})),
            "application/json",
            None,
            401,
        ),
        (
            Some(json!({"password": PASSWORD})),
            "application/json",
            Some(&leaving),
            204,
        ),
        (
            Some(json!({"password": PASSWORD})),
            "application/json",
            Some(&leaving),
            403,
        ),
    ] {
        let body = body.map(|b| b.to_string());
        let reply = c
            .send(
                "DELETE",
                template,
                template,
                bearer,
                body.as_deref(),
                content_type,
            )
            .await;
        assert_eq!(reply.status, status, "{body:?} {bearer:?}");
    }

    // keys
    assert_eq!(c.get("/.well-known/jwks.json", None).await.status, 200);
    assert_eq!(
        c.get("/.well-known/openid-configuration", None)
            .await
            .status,
        200
    );

    // too_many_requests
    for _ in 0..h.config.login_max_failures {
        c.post(
            "/auth/login",
            &json!({"email": "throttled@example.com", "password": "wrong wrong"}),
            None,
        )
        .await;
    }
    let throttled = c
        .post(
            "/auth/login",
            &json!({"email": "throttled@example.com", "password": "wrong wrong"}),
            None,
        )
        .await;
    assert_eq!(throttled.status, 429);

    // account_disabled and internal
    let user_id: uuid::Uuid = registered.json()["user"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    h.store
        .set_active(user_id, false, h.clock.now())
        .await
        .unwrap();
    assert_eq!(c.post("/auth/login", &creds, None).await.status, 403);
    h.create_user_with_unreadable_hash("broken@example.com")
        .await;
    assert_eq!(
        c.post(
            "/auth/login",
            &json!({"email": "broken@example.com", "password": PASSWORD}),
            None
        )
        .await
        .status,
        500
    );

    let documented: BTreeSet<(String, String)> = c.spec.operations().into_iter().collect();
    assert_eq!(
        c.covered, documented,
        "every documented operation was exercised"
    );
}

#[tokio::test]
async fn unavailable_replies_match_the_document() {
    let h = Harness::unreachable_dynamo(integration_tests::test_config()).await;
    let api = h.serve_local_api().await;
    let mut c = Checker {
        api: &api,
        spec: OpenApi::load(),
        covered: BTreeSet::new(),
    };
    let creds = json!({"email": EMAIL, "password": PASSWORD});
    for path in ["/auth/register", "/auth/login"] {
        let reply = c.post(path, &creds, None).await;
        assert_eq!(reply.status, 503);
        assert!(reply.header("retry-after").is_some());
    }
    // A protected route: the authorizer cannot decide, so API Gateway answers 500.
    let token = h.mint_token_for_unknown_session(shared::model::TokenType::Access);
    assert_eq!(c.get("/auth/me", Some(&token)).await.status, 500);
}
