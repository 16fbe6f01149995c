//! The fake OpenID Provider behaves like a strict real one when honest, and spoils its answers
//! only as told: the tests that use it rely on both.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use integration_tests::fake_oidc::{
    FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FakeIssuer, IssParam, Tamper,
};
use integration_tests::local::{LocalApi, Reply};
use serde_json::{Value, json};

const REDIRECT: &str = "https://app.example.com/callback?keep=1";
const VERIFIER: &str = "a-pkce-verifier-of-enough-length-0123456789abcdef";

async fn get(fake: &FakeIssuer, path: &str) -> Reply {
    LocalApi::at(fake.addr).get(path, None).await
}

/// The redirect's query parameters.
fn redirect_query(reply: &Reply) -> Vec<(String, String)> {
    assert_eq!(reply.status, 302, "{:?}", reply.body);
    let location = url::Url::parse(reply.header("location").expect("a location")).unwrap();
    assert_eq!(location.path(), "/callback");
    location.query_pairs().into_owned().collect()
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Starts a sign-in with `nonce` and the PKCE challenge of [`VERIFIER`]; returns its code.
async fn authorize(fake: &FakeIssuer, nonce: &str) -> String {
    let challenge = B64.encode(digest(&SHA256, VERIFIER.as_bytes()));
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", FAKE_CLIENT_ID)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid email")
        .append_pair("state", "state-1")
        .append_pair("nonce", nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let reply = get(fake, &format!("/authorize?{query}")).await;
    let query = redirect_query(&reply);
    param(&query, "code").expect("a code").to_owned()
}

/// Exchanges `code` with `verifier`, the client authenticated by HTTP Basic.
async fn exchange(fake: &FakeIssuer, code: &str, verifier: &str) -> Reply {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_verifier", verifier)
        .finish();
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{FAKE_CLIENT_ID}:{FAKE_CLIENT_SECRET}"))
    );
    let headers = [
        ("authorization", basic.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    LocalApi::at(fake.addr)
        .send("POST", "/token", &headers, body)
        .await
}

fn part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a part");
    serde_json::from_slice(&B64.decode(part).expect("base64url")).expect("JSON")
}

#[tokio::test]
async fn discovery_names_the_issuer_and_its_endpoints() {
    let fake = FakeIssuer::start().await;
    assert!(fake.issuer.starts_with("http://127.0.0.1:") && !fake.issuer.ends_with('/'));
    let document = get(&fake, "/.well-known/openid-configuration").await;
    assert_eq!(document.status, 200);
    let document = document.json();
    let issuer = &fake.issuer;
    assert_eq!(document["issuer"], json!(issuer));
    assert_eq!(
        document["authorization_endpoint"],
        json!(format!("{issuer}/authorize"))
    );
    assert_eq!(document["token_endpoint"], json!(format!("{issuer}/token")));
    assert_eq!(document["jwks_uri"], json!(format!("{issuer}/jwks")));
    assert_eq!(
        document["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    assert_eq!(
        document["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(
        document["authorization_response_iss_parameter_supported"],
        true
    );

    fake.set_discovery_issuer(Some("https://elsewhere.example".into()));
    let document = get(&fake, "/.well-known/openid-configuration").await.json();
    assert_eq!(document["issuer"], "https://elsewhere.example");
    assert_eq!(document["jwks_uri"], json!(format!("{issuer}/jwks")));
}

#[tokio::test]
async fn authorize_redirects_with_code_state_and_iss_and_records_the_request() {
    let fake = FakeIssuer::start().await;
    let challenge = B64.encode(digest(&SHA256, VERIFIER.as_bytes()));
    let code = authorize(&fake, "nonce-1").await;
    assert!(!code.is_empty());
    let seen = fake.last_authorize().expect("recorded");
    assert_eq!(seen.nonce.as_deref(), Some("nonce-1"));
    assert_eq!(seen.client_id, FAKE_CLIENT_ID);
    assert_eq!(seen.redirect_uri, REDIRECT);
    assert_eq!(seen.code_challenge.as_deref(), Some(challenge.as_str()));
    assert_eq!(seen.code_challenge_method.as_deref(), Some("S256"));
    assert_eq!(seen.scope.as_deref(), Some("openid email"));

    let path = format!(
        "/authorize?response_type=code&client_id=app&state=s&redirect_uri={}",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let query = redirect_query(&get(&fake, &path).await);
    assert_eq!(
        param(&query, "keep"),
        Some("1"),
        "the redirect's own query kept"
    );
    assert_eq!(param(&query, "state"), Some("s"));
    assert_eq!(param(&query, "iss"), Some(fake.issuer.as_str()));

    fake.set_iss_param(IssParam::Omit);
    fake.set_error(Some("access_denied".into()));
    let query = redirect_query(&get(&fake, &path).await);
    assert_eq!(param(&query, "error"), Some("access_denied"));
    assert_eq!(param(&query, "code"), None);
    assert_eq!(param(&query, "iss"), None);

    // Odd input is refused, not redirected.
    assert_eq!(get(&fake, "/authorize?client_id=app").await.status, 400);
    assert_eq!(
        get(&fake, "/authorize?client_id=app&client_id=x")
            .await
            .status,
        400
    );
    let foreign = path.replace("client_id=app", "client_id=other");
    assert_eq!(get(&fake, &foreign).await.status, 400);
}

#[tokio::test]
async fn the_token_endpoint_returns_an_id_token_signed_by_the_published_key() {
    let fake = FakeIssuer::start().await;
    fake.set_now(1_700_000_000);
    let code = authorize(&fake, "nonce-2").await;
    let reply = exchange(&fake, &code, VERIFIER).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["token_type"], "Bearer");
    let token = reply.string("id_token");

    assert_eq!(
        part(&token, 0),
        json!({"alg": "ES256", "kid": "fake-1", "typ": "JWT"})
    );
    let claims = part(&token, 1);
    assert_eq!(claims["nonce"], "nonce-2");
    assert_eq!(claims["iss"], json!(fake.issuer));
    assert_eq!(claims["aud"], FAKE_CLIENT_ID);
    assert_eq!(claims["azp"], FAKE_CLIENT_ID);
    assert_eq!(claims["sub"], "fake-user-1");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(
        (claims["iat"].as_i64(), claims["exp"].as_i64()),
        (Some(1_700_000_000), Some(1_700_000_060))
    );

    let jwks = get(&fake, "/jwks").await.json();
    let jwk = &jwks["keys"][0];
    assert_eq!(
        (&jwk["kty"], &jwk["crv"], &jwk["kid"]),
        (&json!("EC"), &json!("P-256"), &json!("fake-1"))
    );
    let mut point = vec![4u8];
    point.extend(B64.decode(jwk["x"].as_str().unwrap()).unwrap());
    point.extend(B64.decode(jwk["y"].as_str().unwrap()).unwrap());
    let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point);
    let verify = |token: &str| {
        let (input, signature) = token.rsplit_once('.').unwrap();
        key.verify(input.as_bytes(), &B64.decode(signature).unwrap())
    };
    assert!(verify(&token).is_ok(), "verifies with the published key");

    // A flipped signature byte no longer verifies.
    fake.set_tamper(Tamper::Signature);
    let code = authorize(&fake, "nonce-3").await;
    let spoiled = exchange(&fake, &code, VERIFIER).await.string("id_token");
    assert!(verify(&spoiled).is_err());
    assert_eq!(fake.token_requests(), 2);
}

#[tokio::test]
async fn a_replayed_code_gets_invalid_grant() {
    let fake = FakeIssuer::start().await;
    let code = authorize(&fake, "nonce-4").await;
    assert_eq!(exchange(&fake, &code, VERIFIER).await.status, 200);
    let replay = exchange(&fake, &code, VERIFIER).await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.json(), json!({"error": "invalid_grant"}));
    assert_eq!(fake.replays(), 1);
    assert_eq!(fake.token_requests(), 2);
}

#[tokio::test]
async fn a_wrong_verifier_or_secret_is_refused() {
    let fake = FakeIssuer::start().await;
    let code = authorize(&fake, "nonce-5").await;
    let wrong = exchange(
        &fake,
        &code,
        "another-verifier-of-enough-length-0123456789abcdef",
    )
    .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.json()["error"], "invalid_grant");

    // The client secret in the form, and wrong.
    let body = format!(
        "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&client_id=app\
         &client_secret=nope&redirect_uri={}",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let api = LocalApi::at(fake.addr);
    let refused = api.send("POST", "/token", &[], body.clone()).await;
    assert_eq!(
        (refused.status, refused.json()["error"].clone()),
        (401, json!("invalid_client"))
    );
    // Right, the refused tries left the code unspent.
    let body = body.replace(
        "client_secret=nope",
        &format!("client_secret={FAKE_CLIENT_SECRET}"),
    );
    assert_eq!(api.send("POST", "/token", &[], body).await.status, 200);
    assert_eq!(api.send("POST", "/token", &[], "%zz=&&=").await.status, 400);
    assert_eq!(fake.replays(), 0);
}

#[tokio::test]
async fn alg_none_gives_a_token_with_an_empty_signature() {
    let fake = FakeIssuer::start().await;
    fake.set_tamper(Tamper::AlgNone);
    let code = authorize(&fake, "nonce-6").await;
    let token = exchange(&fake, &code, VERIFIER).await.string("id_token");
    assert!(token.ends_with('.'), "{token}");
    assert_eq!(token.split('.').count(), 3);
    assert_eq!(part(&token, 0), json!({"alg": "none"}));
    assert_eq!(part(&token, 1)["nonce"], "nonce-6");
}
