//! Key discovery: the public JWK Set and an OpenID-style configuration document, so standard
//! verifiers can find the keys.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;

use super::Published;
use crate::http::{Caching, json_response};

pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";

/// `GET /.well-known/jwks.json`: the public signing keys.
pub async fn jwks(published: &Published, _request: Request) -> Response<Body> {
    json_response(StatusCode::OK, &published.jwks, Caching::Public)
}

/// `GET /auth/oidc/providers`: the OpenID providers users may sign in with, for sign-in buttons.
pub async fn oidc_providers(published: &Published, _request: Request) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({ "providers": published.providers }),
        Caching::Public,
    )
}

/// `GET /.well-known/openid-configuration`: where the keys are and which algorithms sign.
pub async fn openid_configuration(published: &Published, request: Request) -> Response<Body> {
    let document = json!({
        "issuer": published.issuer,
        "jwks_uri": published.jwks_uri(&request),
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
    });
    json_response(StatusCode::OK, &document, Caching::Public)
}
