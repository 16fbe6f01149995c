//! The HTTP face of the service, shared by the Lambda functions and the local server: request
//! parsing (content type, size limit, JSON objects with typed fields), the API's views (docs/api.md),
//! and the one place where errors become `application/problem+json` responses.

pub mod edge;
pub mod paths;
mod problem;
mod request;
mod views;

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

pub use problem::{HttpError, Problem, RequestError};
pub use request::{
    JsonObject, MAX_BODY_BYTES, api_base, bearer_token, caller, json_object, link_base, principal,
    source_ip,
};
pub use views::{
    CeremonyView, EnrolmentView, ExternalMe, ExternalUserView, MfaRequiredView, PasskeyView,
    PasskeyWrapper, PasskeysView, RecoveryCodesView, SessionView, SessionsView, TokenResponse,
    UserView, UserWrapper,
};

/// How a response may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// Tokens and personal data: never stored by any cache.
    NoStore,
    /// Public keys and discovery documents: five minutes in any cache.
    Public,
}

impl Caching {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Caching::NoStore => "no-store",
            Caching::Public => "public, max-age=300",
        })
    }
}

/// A JSON response.
pub fn json_response(
    status: StatusCode,
    body: &impl Serialize,
    caching: Caching,
) -> Response<Body> {
    let body = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, caching.header());
    response
}

/// `204 No Content`.
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, Caching::NoStore.header());
    response
}

/// The body of a response as bytes, whatever its encoding.
pub fn body_bytes(body: &Body) -> &[u8] {
    match body {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    }
}
