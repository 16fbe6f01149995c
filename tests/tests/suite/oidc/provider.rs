//! The tests' real OpenID Provider (oidc-provider, started by `scripts/oidc-provider`) is up and
//! behaves as the sign-in tests rely on: its discovery document, a sign-in through its own
//! login and consent pages that ends in a redirect to the callback with `code`, `state` and
//! `iss`, and no redirect to a redirect_uri off the callback pattern.

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use integration_tests::local::http_get;
use integration_tests::oidc::{
    APP_CLIENT_ID, provider_url, sign_in_at_provider, try_sign_in_at_provider,
};
use serde_json::Value;
use url::Url;

const CALLBACK: &str = "http://127.0.0.1:9/auth/oidc/op/callback";
const VERIFIER: &str = "a-pkce-verifier-of-enough-length-0123456789abcdef";

async fn discovery() -> Value {
    let url = format!("{}/.well-known/openid-configuration", provider_url());
    serde_json::from_slice(&http_get(&url).await).expect("a JSON discovery document")
}

/// An authorization request of the `app` client for `redirect_uri`, with PKCE (S256).
async fn authorize_url(redirect_uri: &str, state: &str) -> String {
    let discovery = discovery().await;
    let endpoint = discovery["authorization_endpoint"]
        .as_str()
        .expect("an authorization_endpoint");
    let challenge = B64.encode(digest(&SHA256, VERIFIER.as_bytes()));
    let mut url = Url::parse(endpoint).expect("a URL");
    url.query_pairs_mut()
        .append_pair("client_id", APP_CLIENT_ID)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email")
        .append_pair("state", state)
        .append_pair("nonce", "a-nonce-0123456789")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    url.into()
}

#[tokio::test]
async fn discovery_names_the_issuer_rfc_9207_and_pkce_s256() {
    let discovery = discovery().await;
    assert_eq!(discovery["issuer"], provider_url().as_str(), "{discovery}");
    assert_eq!(
        discovery["authorization_response_iss_parameter_supported"], true,
        "{discovery}"
    );
    let methods = discovery["code_challenge_methods_supported"]
        .as_array()
        .expect("code_challenge_methods_supported");
    assert!(methods.iter().any(|m| m == "S256"), "{discovery}");
}

#[tokio::test]
async fn a_sign_in_redirects_to_the_callback_with_code_state_and_iss() {
    let url = authorize_url(CALLBACK, "state-0123456789").await;
    let redirected = sign_in_at_provider(&url, "ada@example.com").await;
    assert!(
        redirected.location.starts_with(&format!("{CALLBACK}?")),
        "{}",
        redirected.location
    );
    let location = Url::parse(&redirected.location).expect("a URL");
    let query: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    assert!(param("error").is_none(), "{}", redirected.location);
    assert!(
        param("code").is_some_and(|code| !code.is_empty()),
        "{}",
        redirected.location
    );
    assert_eq!(param("state"), Some("state-0123456789"));
    assert_eq!(param("iss"), Some(provider_url().as_str()));
}

#[tokio::test]
async fn a_redirect_uri_off_the_callback_pattern_is_not_redirected_to() {
    let evil = "http://127.0.0.1:9/evil";
    let url = authorize_url(evil, "state-evil").await;
    match try_sign_in_at_provider(&url, "ada@example.com").await {
        Ok(redirected) => panic!("the provider redirected to {}", redirected.location),
        Err(stuck) => {
            assert_eq!(stuck.status, 400, "{}", stuck.body);
            assert!(
                stuck.body.contains("invalid_redirect_uri"),
                "{}",
                stuck.body
            );
        }
    }
}
