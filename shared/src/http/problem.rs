//! Errors as `application/problem+json` (RFC 9457): the one place every error of every layer
//! becomes a status, a code and a message a client can act on. Internal details go to the log,
//! never into a response.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::service::AuthError;
use crate::validation::FieldError;

/// Seconds a client should wait after a `503`.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

/// A request the handlers cannot even start on.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("body is not a JSON object")]
    InvalidJson,
    #[error("invalid request: {detail}")]
    InvalidRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("body is over the size limit")]
    PayloadTooLarge,
    #[error("body is not application/json")]
    UnsupportedMediaType,
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: String },
    #[error("no authorizer context on a protected route")]
    MissingPrincipal,
    /// A user of an external issuer on a route that manages this service's own sessions.
    #[error("a user of the external issuer {issuer} on a session route")]
    ExternalCaller { issuer: String },
    /// With edge protection on: a request without our distribution's origin secret.
    #[error("a request that did not come through the API's distribution")]
    NotThroughEdge,
}

/// Anything a handler can fail with: a request it cannot read, or a refusal of the service.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl RequestError {
    /// A field present with a value it cannot take; `message` says which values it takes.
    pub fn invalid_value(field: &'static str, message: String) -> Self {
        RequestError::InvalidRequest {
            detail: message.clone(),
            errors: vec![FieldError {
                field,
                code: "invalid_value",
                message,
            }],
        }
    }

    /// Exactly one of `fields` must be there.
    pub fn one_of(fields: &[&'static str]) -> Self {
        let message = format!("Exactly one of {} is required.", fields.join(", "));
        RequestError::InvalidRequest {
            detail: message.clone(),
            errors: vec![FieldError {
                field: fields[0],
                code: "one_of",
                message,
            }],
        }
    }
}

impl From<HttpError> for Problem {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Request(e) => e.into(),
            HttpError::Auth(e) => e.into(),
        }
    }
}

impl HttpError {
    pub fn into_response(self) -> Response<Body> {
        Problem::from(self).into_response()
    }
}

/// A problem document and the headers that go with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub code: &'static str,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip)]
    pub retry_after_secs: Option<u64>,
    #[serde(skip)]
    pub allow: Option<String>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            type_: "about:blank",
            title,
            status: status.as_u16(),
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after_secs: None,
            allow: None,
        }
    }

    fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_secs = Some(seconds.max(1));
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::to_string(&self).unwrap_or_else(|_| "{}".to_owned());
        let mut response = Response::new(Body::Text(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(seconds) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            headers.insert(header::ALLOW, allow);
        }
        response
    }
}

impl From<RequestError> for Problem {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::InvalidJson => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "Invalid JSON",
                "The request body must be a JSON object.",
            ),
            RequestError::InvalidRequest { detail, errors } => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Invalid request",
                detail,
            )
            .with_errors(errors),
            RequestError::PayloadTooLarge => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                "The request body must be at most 16 KiB.",
            ),
            RequestError::UnsupportedMediaType => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "Send the request body as application/json.",
            ),
            RequestError::NotFound => Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "There is nothing at this path.",
            ),
            RequestError::MethodNotAllowed { allow } => {
                let mut problem = Problem::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "Method not allowed",
                    format!("This path accepts {allow}."),
                );
                problem.allow = Some(allow);
                problem
            }
            RequestError::MissingPrincipal => {
                warn!("protected handler invoked without an authorizer context");
                invalid_token()
            }
            RequestError::ExternalCaller { issuer } => Problem::new(
                StatusCode::FORBIDDEN,
                "external_caller",
                "External token",
                format!(
                    "This route manages sessions of this service; sign-ins from {issuer} are managed there."
                ),
            ),
            RequestError::NotThroughEdge => Problem::new(
                StatusCode::FORBIDDEN,
                "edge_required",
                "Call the public URL",
                "This API is served through its public URL only.",
            ),
        }
    }
}

fn invalid_token() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "Invalid token",
        "The token is invalid, expired or revoked. Sign in again.",
    )
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidEmail(error) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_email",
                "Invalid email",
                error.message.clone(),
            )
            .with_errors(vec![error]),
            AuthError::WeakPassword(errors) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "weak_password",
                "Weak password",
                "The password does not meet the password policy; see errors.",
            )
            .with_errors(errors),
            AuthError::EmailTaken => Problem::new(
                StatusCode::CONFLICT,
                "email_taken",
                "Email taken",
                "An account with this email already exists. Sign in instead.",
            ),
            AuthError::InvalidCredentials => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid credentials",
                "Email or password is incorrect.",
            ),
            AuthError::AccountDisabled => Problem::new(
                StatusCode::FORBIDDEN,
                "account_disabled",
                "Account disabled",
                "This account is disabled.",
            ),
            AuthError::InvalidToken(reason) => {
                info!(%reason, "token refused");
                invalid_token()
            }
            AuthError::NotFound => Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "No such session.",
            ),
            AuthError::InvalidCode => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_code",
                "Invalid code",
                "The code is wrong, was used already, or has expired.",
            ),
            AuthError::MalformedCode { field } => {
                let message = format!(
                    "Field {field:?} must be a six-digit code from the authenticator app, or a recovery code where one is accepted."
                );
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Invalid request",
                    message.clone(),
                )
                .with_errors(vec![FieldError {
                    field,
                    code: "malformed_code",
                    message,
                }])
            }
            AuthError::MfaAlreadyEnabled => Problem::new(
                StatusCode::CONFLICT,
                "mfa_already_enabled",
                "Two-factor sign-in is on",
                "Two-factor sign-in is on already; turn it off first to enrol again.",
            ),
            AuthError::MfaNotEnabled => Problem::new(
                StatusCode::CONFLICT,
                "mfa_not_enabled",
                "Two-factor sign-in is off",
                "Two-factor sign-in is not on for this account.",
            ),
            AuthError::MfaSetupRequired => Problem::new(
                StatusCode::CONFLICT,
                "mfa_setup_required",
                "No enrolment to confirm",
                "Start with POST /auth/mfa/totp/setup, then confirm with a code from the app.",
            ),
            AuthError::EmailUnverified => Problem::new(
                StatusCode::FORBIDDEN,
                "email_unverified",
                "Address not verified",
                "Verify your email address first: POST /auth/email/verification sends a new link.",
            ),
            AuthError::PasskeyRefused => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid credentials",
                "The passkey was not accepted.",
            ),
            AuthError::PasskeyTaken => Problem::new(
                StatusCode::CONFLICT,
                "passkey_taken",
                "Passkey registered already",
                "This passkey is registered already.",
            ),
            AuthError::TooManyPasskeys => Problem::new(
                StatusCode::CONFLICT,
                "too_many_passkeys",
                "Too many passkeys",
                "This account holds the most passkeys it may; remove one first.",
            ),
            AuthError::PasskeyNotFound => Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "No such passkey.",
            ),
            AuthError::LastCredential => Problem::new(
                StatusCode::CONFLICT,
                "last_credential",
                "Last way in",
                "This is the account's only way to sign in; add another first.",
            ),
            AuthError::FreshFactorRequired => Problem::new(
                StatusCode::UNAUTHORIZED,
                "reauthentication_required",
                "Confirm it is you",
                "Send your current password: this change needs it, or a sign-in from the last 10 minutes.",
            ),
            AuthError::InvalidField { field, message } => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Invalid request",
                message.clone(),
            )
            .with_errors(vec![FieldError {
                field,
                code: "invalid_value",
                message,
            }]),
            AuthError::ProviderNotFound => Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "No such sign-in provider.",
            ),
            AuthError::IdentityTaken => Problem::new(
                StatusCode::CONFLICT,
                "identity_taken",
                "Identity linked already",
                "This provider account is linked to an account already.",
            ),
            AuthError::TooManyIdentities => Problem::new(
                StatusCode::CONFLICT,
                "too_many_identities",
                "Too many linked accounts",
                "This account holds the most linked provider accounts it may; unlink one first.",
            ),
            AuthError::UserNotFound => Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "No such user.",
            ),
            AuthError::Forbidden => Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                "This needs a role the caller does not hold.",
            ),
            AuthError::IdentityNotFound => Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "No such linked identity.",
            ),
            AuthError::TooManyRequests { retry_after_secs } => {
                crate::metrics::throttled();
                Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    "Too many requests",
                    format!("Too many attempts. Try again in {retry_after_secs} seconds."),
                )
                .retry_after(retry_after_secs)
            }
            AuthError::Unavailable(detail) => {
                warn!(%detail, "store unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "Service unavailable",
                    "The service is temporarily unavailable. Try again shortly.",
                )
                .retry_after(UNAVAILABLE_RETRY_AFTER_SECS)
            }
            AuthError::Internal(detail) => {
                error!(%detail, "internal error");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "Something went wrong on our side.",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body_bytes;

    fn body(problem: Problem) -> (Response<Body>, serde_json::Value) {
        let response = problem.into_response();
        let json = serde_json::from_slice(body_bytes(response.body())).unwrap();
        (response, json)
    }

    #[test]
    fn problems_have_the_contract_shape() {
        let (response, json) = body(AuthError::InvalidCredentials.into());
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(
            json,
            serde_json::json!({"type": "about:blank", "title": "Invalid credentials", "status": 401,
                "code": "invalid_credentials", "detail": "Email or password is incorrect."})
        );
    }

    #[test]
    fn internal_details_never_reach_the_response() {
        let secret = "connection to 10.0.0.7 failed: password=hunter2";
        for error in [
            AuthError::Internal(secret.into()),
            AuthError::Unavailable(secret.into()),
            AuthError::InvalidToken(secret.into()),
        ] {
            let (_, json) = body(error.into());
            assert!(!json.to_string().contains("hunter2"), "{json}");
            assert!(!json.to_string().contains("10.0.0.7"), "{json}");
        }
    }

    #[test]
    fn unavailable_and_throttled_carry_retry_after() {
        let (response, json) = body(AuthError::Unavailable("x".into()).into());
        assert_eq!(response.status(), 503);
        assert_eq!(json["code"], "service_unavailable");
        assert!(response.headers().contains_key("retry-after"));
        let (response, _) = body(
            AuthError::TooManyRequests {
                retry_after_secs: 8,
            }
            .into(),
        );
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "8");
    }

    #[test]
    fn method_not_allowed_says_what_is() {
        let (response, json) = body(
            RequestError::MethodNotAllowed {
                allow: "POST".into(),
            }
            .into(),
        );
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "POST");
        assert_eq!(json["code"], "method_not_allowed");
    }
}
