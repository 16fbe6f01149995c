//! Sign-in with an OpenID provider, on both stores: against a real provider (oidc-provider,
//! started by `scripts/oidc-provider`) for the flows, and against a hostile fake for what a
//! real provider will not send (`alg: none`, a token for another audience, a wrong nonce, a
//! mix-up of issuers).

/// Runs each test on both stores, each with its own [`Oidc`].
macro_rules! oidc_on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Oidc::new(integration_tests::Backend::Dynamo).await).await;
                }
            )*
        }
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Oidc::new(integration_tests::Backend::Embedded).await).await;
                }
            )*
        }
    };
}

mod browser;
mod fake;
mod flows;
mod hostile;
mod http;
mod provider;

use std::collections::BTreeMap;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use integration_tests::fake_oidc::{FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FakeIssuer};
use integration_tests::oidc::{
    APP_CLIENT_ID, APP_CLIENT_SECRET, HS256_CLIENT_ID, HS256_CLIENT_SECRET, provider_url,
    sign_in_at_provider,
};
use integration_tests::{Backend, Harness, test_config};
use shared::AuthError;
use shared::config::oidc::OidcProviderConfig;
use shared::service::{Callback, CallbackRequest, Exchanged, OidcStart, SignIn, StartRequest};
use url::Url;

/// Where the app wants its users back: the one redirect URI the providers allow.
pub const APP: &str = "https://app.test.example/signed-in";
/// This API's own URL, as a request to it would show.
pub const API: &str = "https://auth.test.example";

/// The providers of the tests: `op` (the real provider's `app` client), `op-hs` (its client
/// whose ID tokens are HS256, signed with the client secret) and `fake` (the hostile fake).
pub fn providers(fake_issuer: &str) -> Vec<OidcProviderConfig> {
    let real = provider_url();
    let raw = serde_json::json!([
        {"id": "op", "name": "Test provider", "issuer": real, "client_id": APP_CLIENT_ID,
         "client_secret": APP_CLIENT_SECRET, "allowed_redirect_uris": [APP]},
        {"id": "op-hs", "issuer": real, "client_id": HS256_CLIENT_ID,
         "client_secret": HS256_CLIENT_SECRET, "allowed_redirect_uris": [APP]},
        {"id": "fake", "issuer": fake_issuer, "client_id": FAKE_CLIENT_ID,
         "client_secret": FAKE_CLIENT_SECRET, "allowed_redirect_uris": [APP],
         "algorithms": ["ES256"]},
    ]);
    shared::config::oidc::parse(Some(raw.to_string())).expect("the tests' providers are valid")
}

/// A harness whose service signs in with [`providers`], and the fake beside it.
pub struct Oidc {
    pub h: Harness,
    pub fake: FakeIssuer,
}

/// An app's PKCE pair, and what the start answered.
pub struct Started {
    pub verifier: String,
    pub cookie: String,
    pub location: String,
}

pub fn challenge_of(verifier: &str) -> String {
    B64.encode(digest(&SHA256, verifier.as_bytes()))
}

fn new_verifier() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The parameters of a URL's query or fragment.
pub fn parameters(encoded: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(encoded.as_bytes())
        .into_owned()
        .collect()
}

/// The fragment the app gets back, from a callback that redirected to [`APP`].
pub fn fragment(callback: &Callback) -> BTreeMap<String, String> {
    match callback {
        Callback::Redirect(location) => {
            let (base, fragment) = location.split_once('#').expect("a fragment");
            assert_eq!(base, APP, "the callback redirects only to the app");
            parameters(fragment)
        }
        Callback::Untrusted => panic!("the callback trusted no redirect"),
    }
}

/// The `error` a callback sent the app.
pub fn error_of(callback: &Callback) -> String {
    let fragment = fragment(callback);
    assert!(!fragment.contains_key("code"), "{fragment:?}");
    fragment.get("error").cloned().expect("an error")
}

impl Oidc {
    pub async fn new(backend: Backend) -> Self {
        let fake = FakeIssuer::start().await;
        let mut config = test_config();
        config.oidc_providers = providers(&fake.issuer);
        let h = Harness::new_with(backend, config).await;
        Self { h, fake }
    }

    pub async fn try_start(
        &self,
        provider: &str,
        request: StartRequest,
    ) -> Result<OidcStart, AuthError> {
        self.h
            .service
            .oidc_start(provider, request, API, Some("192.0.2.7"))
            .await
    }

    /// Starts a sign-in at `provider` for [`APP`], as an app would.
    pub async fn start(&self, provider: &str) -> Started {
        self.start_linking(provider, None).await
    }

    /// [`Self::start`], with a link ticket when given one.
    pub async fn start_linking(&self, provider: &str, link: Option<String>) -> Started {
        let verifier = new_verifier();
        let started = self
            .try_start(
                provider,
                StartRequest {
                    redirect_uri: Some(APP.into()),
                    code_challenge: Some(challenge_of(&verifier)),
                    state: Some("app-state-1".into()),
                    link,
                    ..Default::default()
                },
            )
            .await
            .expect("start");
        Started {
            verifier,
            cookie: started.cookie,
            location: started.location,
        }
    }

    /// The provider's answer for `login` (the real provider's login and consent pages; the
    /// fake answers at once), as the callback would receive it.
    pub async fn at_provider(&self, started: &Started, login: &str) -> CallbackRequest {
        let redirected = sign_in_at_provider(&started.location, login).await;
        let url = Url::parse(&redirected.location).expect("a callback URL");
        assert!(
            url.as_str().starts_with(&format!("{API}/auth/oidc/")),
            "the provider sends the browser back to our callback: {url}"
        );
        let query = parameters(url.query().unwrap_or_default());
        CallbackRequest {
            state: query.get("state").cloned(),
            code: query.get("code").cloned(),
            iss: query.get("iss").cloned(),
            error: query.get("error").cloned(),
        }
    }

    pub async fn callback(
        &self,
        provider: &str,
        answer: CallbackRequest,
        cookie: Option<&str>,
    ) -> Callback {
        self.h.service.oidc_callback(provider, answer, cookie).await
    }

    /// Start, provider, callback: our code (or the error) in the app's fragment.
    pub async fn through_provider(
        &self,
        provider: &str,
        login: &str,
    ) -> (Started, BTreeMap<String, String>) {
        let started = self.start(provider).await;
        let answer = self.at_provider(&started, login).await;
        let callback = self.callback(provider, answer, Some(&started.cookie)).await;
        (started, fragment(&callback))
    }

    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<Exchanged, AuthError> {
        self.h.service.oidc_exchange(code, verifier).await
    }

    /// The whole flow for `login` at `provider`, ending in a sign-in.
    pub async fn sign_in(&self, provider: &str, login: &str) -> SignIn {
        let (started, fragment) = self.through_provider(provider, login).await;
        let code = fragment
            .get("code")
            .unwrap_or_else(|| panic!("no code: {fragment:?}"));
        match self
            .exchange(code, &started.verifier)
            .await
            .expect("exchange")
        {
            Exchanged::SignIn(sign_in) => sign_in,
            Exchanged::Linked(_) => panic!("a sign-in, not a link"),
        }
    }

    /// [`Self::sign_in`], without a second step.
    pub async fn signed_in(&self, provider: &str, login: &str) -> shared::SignedIn {
        self.sign_in(provider, login)
            .await
            .signed_in()
            .expect("no second step")
    }
}
