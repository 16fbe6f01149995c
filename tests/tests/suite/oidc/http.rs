//! The OpenID Connect routes over HTTP, through the local server (which runs the authorizer
//! before protected routes) on both stores, against the real provider: the start's redirect
//! and cookie, the callback's redirect to the app, the exchange, `/auth/me`, linking, the
//! identities, and the problems bad requests get. Every log line of the journey is captured at
//! trace level, and no secret of the flow is in any of them.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use integration_tests::local::{LocalApi, Reply};
use integration_tests::oidc::{APP_CLIENT_SECRET, sign_in_at_provider};
use serde_json::json;
use url::Url;

use super::{APP, Oidc, challenge_of, parameters};

oidc_on_both_stores!(the_routes_answer_as_documented_and_log_no_secret);

fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let writer = log.clone();
        let subscriber =
            shared::logging::subscriber("trace", false, move || Capture(writer.clone()));
        // Under `cargo test` another test may have set one first; nextest runs each alone.
        let _ = tracing::subscriber::set_global_default(subscriber);
        log
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The login cookie a start set, as a browser would send it back.
fn login_cookie(reply: &Reply) -> String {
    let set_cookie = reply.header("set-cookie").expect("a cookie");
    for attribute in [
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=600",
    ] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let pair = set_cookie.split(';').next().unwrap();
    assert!(pair.starts_with("__Host-oidc="), "{set_cookie}");
    pair.to_owned()
}

async fn get_with_cookie(api: &LocalApi, path: &str, cookie: &str) -> Reply {
    api.send("GET", path, &[("cookie", cookie)], Bytes::new())
        .await
}

/// The app's page the callback sent the browser to, with its fragment.
fn app_fragment(reply: &Reply) -> std::collections::BTreeMap<String, String> {
    assert_eq!(reply.status, 302, "{:?}", reply.body);
    let location = reply.header("location").expect("a Location");
    let (base, fragment) = location.split_once('#').expect("a fragment");
    assert_eq!(base, APP);
    parameters(fragment)
}

/// A start for the `op` provider, then the provider, then the callback: our code, the
/// verifier, and every secret the flow handled on the way.
async fn through(
    api: &LocalApi,
    login: &str,
    link: Option<&str>,
    secrets: &mut Vec<String>,
) -> (String, String) {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("redirect_uri", APP)
        .append_pair("code_challenge", &challenge_of(&verifier))
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "s-1");
    if let Some(ticket) = link {
        query.append_pair("link", ticket);
    }
    let start = api
        .get(&format!("/auth/oidc/op/start?{}", query.finish()), None)
        .await;
    assert_eq!(start.status, 302, "{:?}", start.body);
    assert_eq!(start.header("cache-control"), Some("no-store"));
    let cookie = login_cookie(&start);
    let to_provider = start
        .header("location")
        .expect("to the provider")
        .to_owned();
    let authorize = Url::parse(&to_provider).unwrap();
    let sent = parameters(authorize.query().unwrap());
    assert_eq!(sent["code_challenge_method"], "S256");
    assert_ne!(
        sent["code_challenge"],
        challenge_of(&verifier),
        "our own PKCE pair, not the app's"
    );
    assert_eq!(
        sent["redirect_uri"],
        format!("http://{}/auth/oidc/op/callback", api.addr)
    );
    let redirected = sign_in_at_provider(&to_provider, login).await;
    let callback = Url::parse(&redirected.location).unwrap();
    let answer = parameters(callback.query().unwrap());
    secrets.extend([
        verifier.clone(),
        cookie.split_once('=').unwrap().1.to_owned(),
        sent["state"].clone(),
        sent["nonce"].clone(),
        answer["code"].clone(),
    ]);
    let path = format!("{}?{}", callback.path(), callback.query().unwrap());
    let back = get_with_cookie(api, &path, &cookie).await;
    assert!(
        back.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0")),
        "the spent login's cookie is cleared"
    );
    let fragment = app_fragment(&back);
    assert_eq!(fragment["state"], "s-1");
    let code = fragment["code"].clone();
    secrets.push(code.clone());
    // The same answer again: the state is spent, no redirect is trusted.
    let again = get_with_cookie(api, &path, &cookie).await;
    assert_eq!(again.status, 400);
    assert!(
        again
            .content_type()
            .is_some_and(|t| t.starts_with("text/html"))
    );
    assert!(again.header("location").is_none());
    (code, verifier)
}

async fn the_routes_answer_as_documented_and_log_no_secret(o: Oidc) {
    let log = captured();
    let api = o.h.serve_local_api().await;
    let mut secrets = vec![APP_CLIENT_SECRET.to_owned()];

    let providers = api.get("/auth/oidc/providers", None).await;
    assert_eq!(providers.status, 200);
    assert_eq!(
        providers.json()["providers"][0],
        json!({"id": "op", "name": "Test provider"})
    );
    let listed = providers.json()["providers"].to_string();
    assert!(
        !listed.contains("secret") && !listed.contains("client"),
        "{listed}"
    );

    // A new account, signed in through the authorizer.
    let (code, verifier) = through(&api, "http-ada@example.com", None, &mut secrets).await;
    let wrong = api
        .post_json(
            "/auth/oidc/exchange",
            &json!({"code": code, "code_verifier": "x".repeat(43)}),
            None,
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.code().as_deref()),
        (401, Some("invalid_code"))
    );
    // A wrong verifier spent that code: the app starts again.
    let _ = verifier;
    let (code, verifier) = through(&api, "http-ada@example.com", None, &mut secrets).await;
    let signed_in = api
        .post_json(
            "/auth/oidc/exchange",
            &json!({"code": code, "code_verifier": verifier}),
            None,
        )
        .await;
    assert_eq!(signed_in.status, 200, "{:?}", signed_in.body);
    for field in ["access_token", "refresh_token"] {
        let token = signed_in.string(field);
        secrets.push(shared::tokens::token_hash(&token));
        secrets.push(token);
    }
    let access = signed_in.string("access_token");
    let me = api.get("/auth/me", Some(&access)).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["user"]["email"], "http-ada@example.com");
    assert_eq!(me.json()["user"]["email_verified"], true);

    // Its only way in stays.
    let identities = api.get("/auth/identities", Some(&access)).await;
    assert_eq!(identities.status, 200);
    let identity = identities.json()["identities"][0].clone();
    assert_eq!(identity["provider"], "op");
    assert!(
        identity["linked_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let id = identity["id"].as_str().unwrap();
    let last = api
        .send(
            "DELETE",
            &format!("/auth/identities/{id}"),
            &[("authorization", &format!("Bearer {access}"))],
            Bytes::new(),
        )
        .await;
    assert_eq!(
        (last.status, last.code().as_deref()),
        (409, Some("last_credential"))
    );

    // A password account links a provider account while signed in.
    let own = o.h.register("http-bo@example.com").await;
    o.h.verify_address(own.user.id).await;
    let verifier = "l".repeat(43);
    let link = api
        .post_json(
            "/auth/oidc/op/link",
            &json!({"redirect_uri": APP, "code_challenge": challenge_of(&verifier)}),
            Some(&own.access_token),
        )
        .await;
    assert_eq!(link.status, 200, "{:?}", link.body);
    let url = Url::parse(&link.string("url")).unwrap();
    assert_eq!(url.path(), "/auth/oidc/op/start");
    let ticket = parameters(url.query().unwrap())["link"].clone();
    secrets.push(ticket.clone());
    let (code, verifier) = through(
        &api,
        "http-bo-work@example.com",
        Some(&ticket),
        &mut secrets,
    )
    .await;
    let linked = api
        .post_json(
            "/auth/oidc/exchange",
            &json!({"code": code, "code_verifier": verifier}),
            None,
        )
        .await;
    assert_eq!(linked.status, 200, "{:?}", linked.body);
    assert_eq!(linked.json()["identity"]["provider"], "op");
    let listed = api.get("/auth/identities", Some(&own.access_token)).await;
    assert_eq!(listed.json()["identities"].as_array().unwrap().len(), 1);

    // Bad requests: problems, never redirects.
    for (path, field) in [
        (
            "/auth/oidc/op/start?redirect_uri=https%3A%2F%2Fevil.example%2F&code_challenge=x",
            "redirect_uri",
        ),
        ("/auth/oidc/op/start?code_challenge=x", "redirect_uri"),
        (
            "/auth/oidc/op/start?redirect_uri=https%3A%2F%2Fapp.test.example%2Fsigned-in",
            "code_challenge",
        ),
        ("/auth/oidc/op/start?state=a&state=b", "state"),
    ] {
        let refused = api.get(path, None).await;
        assert_eq!(refused.status, 400, "{path}");
        assert!(refused.header("location").is_none());
        assert_eq!(refused.content_type(), Some("application/problem+json"));
        assert_eq!(refused.json()["errors"][0]["field"], field, "{path}");
    }
    assert_eq!(api.get("/auth/oidc/nope/start", None).await.status, 404);
    let unknown = api
        .get("/auth/oidc/op/callback?state=unknown&code=x", None)
        .await;
    assert_eq!(unknown.status, 400);
    let extra = api
        .post_json(
            "/auth/oidc/exchange",
            &json!({"code": "x", "code_verifier": "y", "more": 1}),
            None,
        )
        .await;
    assert_eq!(extra.status, 400);

    o.h.service.outbox_idle().await;
    let log = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(log.contains("identity linked"), "the journey was logged");
    for secret in &secrets {
        assert!(!secret.is_empty());
        assert!(
            !log.contains(secret.as_str()),
            "a secret of the flow is in the log: {secret}"
        );
    }
}
