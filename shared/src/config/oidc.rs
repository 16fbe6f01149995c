//! `OIDC_PROVIDERS`: the OpenID providers users may sign in with, a JSON list.

use serde::Deserialize;

use super::{ConfigError, ExternalAlgorithm, is_allowed_jwks_uri};

const NAME: &str = "OIDC_PROVIDERS";
/// The most providers a deployment may configure.
pub const MAX_PROVIDERS: usize = 16;

/// How the provider sends the user back: query parameters on a `GET` (the default), or a form
/// `POST` (Apple, when it is asked for the name or address scopes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    #[default]
    Query,
    FormPost,
}

/// A client secret: never printed, never logged.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(redacted)")
    }
}

/// One OpenID provider, as `OIDC_PROVIDERS` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// In the routes (`/auth/oidc/{id}/start`) and in tokens' `idp`: `[a-z0-9-]{1,32}`.
    pub id: String,
    /// What the sign-in buttons say; the id when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The issuer: discovery is read from `{issuer}/.well-known/openid-configuration` (one `/`
    /// between them), and the document's `issuer` must be this, exactly (Auth0's ends in `/`).
    pub issuer: String,
    pub client_id: String,
    /// In AWS: the Secrets Manager secret holding the client secret, read at cold start.
    #[serde(default)]
    pub client_secret_arn: Option<String>,
    /// Locally only: the client secret itself.
    #[serde(default)]
    pub client_secret: Option<ClientSecret>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Where the app may be sent back to, compared exactly.
    pub allowed_redirect_uris: Vec<String>,
    #[serde(default)]
    pub response_mode: ResponseMode,
    /// The ID token claim holding "the provider verified this address": `email_verified` by
    /// default (Microsoft Entra ID: `xms_edov`).
    #[serde(default = "default_email_verified_claim")]
    pub email_verified_claim: String,
    /// The ID token algorithms accepted: asymmetric only, `RS256` by default (what Google,
    /// Microsoft and Apple sign with). Never `none`, never HMAC.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<ExternalAlgorithm>,
}

impl OidcProviderConfig {
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into()]
}
fn default_email_verified_claim() -> String {
    "email_verified".into()
}
fn default_algorithms() -> Vec<ExternalAlgorithm> {
    vec![ExternalAlgorithm::RS256]
}

fn is_provider_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An app's redirect URI: absolute, HTTPS (HTTP only to loopback), no fragment.
fn is_allowed_redirect_uri(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| u.fragment().is_none() && u.host().is_some())
        && is_allowed_jwks_uri(uri)
}

pub fn parse(raw: Option<String>) -> Result<Vec<OidcProviderConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let invalid = |reason: String| ConfigError::Invalid { name: NAME, reason };
    let providers: Vec<OidcProviderConfig> = serde_json::from_str(&raw)
        .map_err(|e| invalid(format!("expected a JSON array of providers: {e}")))?;
    if providers.len() > MAX_PROVIDERS {
        return Err(invalid(format!("at most {MAX_PROVIDERS} providers")));
    }
    for (i, p) in providers.iter().enumerate() {
        let problem = if !is_provider_id(&p.id) {
            Some("id must match [a-z0-9-]{1,32}".to_owned())
        } else if providers[..i].iter().any(|other| other.id == p.id) {
            Some("id is listed twice".into())
        } else if !is_allowed_jwks_uri(&p.issuer) {
            Some("issuer must be https:// (http:// only for loopback)".into())
        } else if p.client_id.trim().is_empty() {
            Some("client_id must not be empty".into())
        } else if p.client_secret_arn.is_some() == p.client_secret.is_some() {
            Some("set exactly one of client_secret_arn and client_secret".into())
        } else if !p.scopes.iter().any(|s| s == "openid") {
            Some("scopes must hold openid".into())
        } else if p.scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
            Some("a scope must be one word".into())
        } else if p.allowed_redirect_uris.is_empty() {
            Some("allowed_redirect_uris must not be empty".into())
        } else if let Some(bad) = p
            .allowed_redirect_uris
            .iter()
            .find(|u| !is_allowed_redirect_uri(u))
        {
            Some(format!(
                "redirect URI {bad:?} must be absolute https:// (http:// only for loopback), without a fragment"
            ))
        } else if p.algorithms.is_empty() {
            Some("algorithms must not be empty".into())
        } else if p.email_verified_claim.is_empty() {
            Some("email_verified_claim must not be empty".into())
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(invalid(format!("provider {i} ({:?}): {problem}", p.id)));
        }
    }
    Ok(providers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(fields: &str) -> String {
        format!(
            r#"[{{"id":"google","issuer":"https://accounts.google.com","client_id":"c","allowed_redirect_uris":["https://app.example/done"]{fields}}}]"#
        )
    }

    #[test]
    fn a_provider_parses_with_defaults_and_hides_its_secret() {
        let providers = parse(Some(one(r#","client_secret":"s3cret""#))).unwrap();
        let p = &providers[0];
        assert_eq!(p.scopes, ["openid", "email"]);
        assert_eq!(p.response_mode, ResponseMode::Query);
        assert_eq!(p.email_verified_claim, "email_verified");
        assert_eq!(p.algorithms, [ExternalAlgorithm::RS256]);
        assert_eq!(p.display_name(), "google");
        assert!(!format!("{p:?}").contains("s3cret"));
    }

    #[test]
    fn unsafe_providers_are_refused() {
        let cases = [
            one(""),
            one(r#","client_secret":"s","client_secret_arn":"arn:x""#),
            one(r#","client_secret":"s","scopes":["email"]"#),
            one(r#","client_secret":"s","algorithms":["HS256"]"#),
            one(r#","client_secret":"s","algorithms":[]"#),
            one(r#","client_secret":"s","allowed_redirect_uris":["http://app.example/done"]"#),
            one(r#","client_secret":"s","allowed_redirect_uris":["https://app.example/#x"]"#),
            one(r#","client_secret":"s","allowed_redirect_uris":[]"#),
            one(r#","client_secret":"s","unknown":1"#),
            one(r#","client_secret":"s","response_mode":"fragment""#),
            one(r#","client_secret":"s"},{"id":"google","issuer":"https://b.example","client_id":"c","client_secret":"s","allowed_redirect_uris":["https://app.example/done"]"#),
            r#"[{"id":"Google","issuer":"https://a.example","client_id":"c","client_secret":"s","allowed_redirect_uris":["https://app.example/"]}]"#.into(),
            r#"[{"id":"g","issuer":"http://a.example","client_id":"c","client_secret":"s","allowed_redirect_uris":["https://app.example/"]}]"#.into(),
        ];
        for raw in cases {
            assert!(
                matches!(
                    parse(Some(raw.clone())),
                    Err(ConfigError::Invalid { name: NAME, .. })
                ),
                "{raw}"
            );
        }
    }

    #[test]
    fn loopback_http_is_allowed_for_local_providers() {
        let raw = r#"[{"id":"op","issuer":"http://127.0.0.1:4000","client_id":"app","client_secret":"s","allowed_redirect_uris":["http://localhost:3000/done"],"response_mode":"form_post"}]"#;
        let p = &parse(Some(raw.into())).unwrap()[0];
        assert_eq!(p.response_mode, ResponseMode::FormPost);
    }
}
