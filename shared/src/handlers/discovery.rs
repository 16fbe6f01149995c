//! Key discovery: the public JWK Set and an OpenID-style configuration document, so standard
//! verifiers can find the keys. The same function is the API's catch-all route, answering
//! `404 not_found` for unknown paths and `405 method_not_allowed` for known paths.

use lambda_http::http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use crate::http::{Caching, HttpError, json_response};
use crate::routes;
use crate::tokens::{JwkSet, KeyRing};

pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";

/// What the discovery routes serve.
#[derive(Debug, Clone)]
pub struct Discovery {
    issuer: String,
    jwks: JwkSet,
}

impl Discovery {
    pub fn new(issuer: impl Into<String>, keys: &KeyRing) -> Self {
        Self {
            issuer: issuer.into(),
            jwks: keys.jwks(),
        }
    }

    /// Where the JWK Set is served: the host the request came to, else the issuer.
    fn jwks_uri(&self, request: &Request) -> String {
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

/// `GET /.well-known/jwks.json`: the public signing keys.
pub async fn jwks(discovery: &Discovery, _request: Request) -> Response<Body> {
    json_response(StatusCode::OK, &discovery.jwks, Caching::Public)
}

/// `GET /.well-known/openid-configuration`: where the keys are and which algorithms sign.
pub async fn openid_configuration(discovery: &Discovery, request: Request) -> Response<Body> {
    let document = json!({
        "issuer": discovery.issuer,
        "jwks_uri": discovery.jwks_uri(&request),
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
    });
    json_response(StatusCode::OK, &document, Caching::Public)
}

/// The catch-all route: `405` with `Allow` for a known path, else `404`.
pub async fn not_routed(_discovery: &Discovery, request: Request) -> Response<Body> {
    HttpError::from(routes::not_routed(routes::request_path(&request))).into_response()
}
