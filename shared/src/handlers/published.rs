//! What the routes that need no store serve from: the issuer and its published keys. The
//! function that holds it (`Function::Web`) builds no store client and reads no secret.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use super::discovery::JWKS_PATH;
use crate::config::oidc::OidcProviderConfig;
use crate::tokens::{JwkSet, KeyRing};

/// The issuer and its public keys, and the OpenID providers users may sign in with.
#[derive(Debug, Clone)]
pub struct Published {
    pub(super) issuer: String,
    pub(super) jwks: JwkSet,
    pub(super) providers: Vec<SignInProvider>,
}

/// A provider as a sign-in button shows it: never its client or secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignInProvider {
    pub id: String,
    pub name: String,
}

impl Published {
    pub fn new(issuer: impl Into<String>, keys: &KeyRing) -> Self {
        Self {
            issuer: issuer.into(),
            jwks: keys.jwks(),
            providers: Vec::new(),
        }
    }

    /// The same, listing these providers at `GET /auth/oidc/providers`.
    pub fn with_providers(mut self, configs: &[OidcProviderConfig]) -> Self {
        self.providers = configs
            .iter()
            .map(|c| SignInProvider {
                id: c.id.clone(),
                name: c.display_name().to_owned(),
            })
            .collect();
        self
    }

    /// Where the JWK Set is served: the host the request came to, else the issuer.
    pub(super) fn jwks_uri(&self, request: &Request) -> String {
        let host = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => context.domain_name.clone(),
            _ => None,
        };
        match host {
            Some(host) if !host.is_empty() => {
                let scheme = if host.starts_with("127.0.0.1") || host.starts_with("localhost") {
                    "http"
                } else {
                    "https"
                };
                format!("{scheme}://{host}{JWKS_PATH}")
            }
            _ => format!("{}{JWKS_PATH}", self.issuer.trim_end_matches('/')),
        }
    }
}
