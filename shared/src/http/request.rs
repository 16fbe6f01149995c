//! Reading requests as API Gateway delivers them (HTTP API, payload 2.0): bodies that may arrive
//! base64-encoded, a 16 KiB limit, `application/json` only, and the authorizer's context.

use lambda_http::http::{HeaderMap, header};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::RequestError;
use super::body_bytes;
use crate::config::Config;
use crate::service::{Caller, LinkBase, Principal};
use crate::tokens::external::ExternalIdentity;
use crate::validation::FieldError;

/// The limit on request bodies (docs/api.md, "Errors").
pub const MAX_BODY_BYTES: usize = 16 * 1024;

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// The body as a JSON object, or `None` when there is no body at all. Over 16 KiB is refused
/// before anything else, then a body that is not `application/json`, then anything that is not
/// a JSON object.
pub fn json_object(request: &Request) -> Result<Option<JsonObject>, RequestError> {
    let bytes = body_bytes(request.body());
    if bytes.len() > MAX_BODY_BYTES {
        return Err(RequestError::PayloadTooLarge);
    }
    if bytes.is_empty() {
        return Ok(None);
    }
    if !is_json(request.headers()) {
        return Err(RequestError::UnsupportedMediaType);
    }
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(Some(JsonObject(map))),
        _ => Err(RequestError::InvalidJson),
    }
}

/// A JSON object body with typed access to its fields.
#[derive(Debug, Clone)]
pub struct JsonObject(Map<String, Value>);

fn field_error(field: &'static str, code: &'static str, message: String) -> RequestError {
    RequestError::InvalidRequest {
        detail: message.clone(),
        errors: vec![FieldError {
            field,
            code,
            message,
        }],
    }
}

impl JsonObject {
    /// Refuses fields outside `allowed`, so a typo is an error instead of being ignored.
    pub fn only(&self, allowed: &[&str]) -> Result<(), RequestError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(unknown) => {
                let shown: String = unknown.chars().take(64).collect();
                Err(RequestError::InvalidRequest {
                    detail: format!("Unknown field {shown:?}; expected {}.", allowed.join(", ")),
                    errors: vec![FieldError {
                        field: "body",
                        code: "unknown_field",
                        message: format!("Unknown field {shown:?}."),
                    }],
                })
            }
            None => Ok(()),
        }
    }

    /// A string field that must be present and not null.
    pub fn string(&self, field: &'static str) -> Result<&str, RequestError> {
        self.required(field, "a string", Value::as_str)
    }

    /// An object field that must be present (a WebAuthn credential, as the browser gives it).
    pub fn object(&self, field: &'static str) -> Result<&Value, RequestError> {
        self.required(field, "an object", |value| {
            value.is_object().then_some(value)
        })
    }

    /// A field that must be present, not null, and what `pick` takes (`kind` says what that is).
    fn required<'a, T>(
        &'a self,
        field: &'static str,
        kind: &str,
        pick: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<T, RequestError> {
        match self.0.get(field) {
            None => Err(field_error(
                field,
                "missing",
                format!("Field {field:?} is required."),
            )),
            Some(Value::Null) => Err(field_error(
                field,
                "null",
                format!("Field {field:?} must not be null."),
            )),
            Some(value) => pick(value).ok_or_else(|| {
                field_error(
                    field,
                    "wrong_type",
                    format!("Field {field:?} must be {kind}."),
                )
            }),
        }
    }

    /// Whether the body has this field at all.
    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// A string field that may be absent (but not null).
    pub fn optional_string(&self, field: &'static str) -> Result<Option<&str>, RequestError> {
        if self.has(field) {
            self.string(field).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A list of strings that may be absent (but not null).
    pub fn optional_strings(
        &self,
        field: &'static str,
    ) -> Result<Option<Vec<String>>, RequestError> {
        if !self.has(field) {
            return Ok(None);
        }
        self.required(field, "a list of strings", |value| {
            value
                .as_array()?
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
        })
        .map(Some)
    }

    /// A boolean field that may be absent.
    pub fn optional_bool(&self, field: &'static str) -> Result<Option<bool>, RequestError> {
        match self.0.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Null) => Err(field_error(
                field,
                "null",
                format!("Field {field:?} must not be null."),
            )),
            Some(_) => Err(field_error(
                field,
                "wrong_type",
                format!("Field {field:?} must be true or false."),
            )),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is case-insensitive).
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains([' ', ',']))
        .then_some(token)
}

/// Who the authorizer said the caller is: `user_id`, `user_email`, `session_id` and `issuer`
/// from the Lambda authorizer's context. Downstream functions trust this and never the
/// client's claims. A context without `issuer` is this service's own.
pub fn caller(request: &Request, own_issuer: &str) -> Result<Caller, RequestError> {
    let fields = request
        .request_context_ref()
        .and_then(RequestContext::authorizer)
        .map(|a| &a.fields)
        .ok_or(RequestError::MissingPrincipal)?;
    let text = |key: &str| fields.get(key).and_then(Value::as_str);
    if let Some(issuer) = text("issuer").filter(|issuer| *issuer != own_issuer) {
        let user_id = text("user_id")
            .filter(|id| !id.is_empty())
            .ok_or(RequestError::MissingPrincipal)?;
        return Ok(Caller::External(ExternalIdentity {
            user_id: user_id.to_owned(),
            user_email: text("user_email").unwrap_or_default().to_owned(),
            session_id: text("session_id").unwrap_or_default().to_owned(),
            issuer: issuer.to_owned(),
        }));
    }
    let uuid = |key: &str| text(key).and_then(|v| Uuid::parse_str(v).ok());
    match (uuid("user_id"), text("user_email"), uuid("session_id")) {
        (Some(user_id), Some(email), Some(chain_id)) => Ok(Caller::Own(Principal {
            user_id,
            user_email: email.to_owned(),
            chain_id,
            email_verified: text("email_verified") == Some("true"),
            mfa: text("mfa") == Some("true"),
            roles: text("roles")
                .unwrap_or_default()
                .split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
        })),
        _ => Err(RequestError::MissingPrincipal),
    }
}

/// This service's own signed-in user, for the routes that manage its sessions: an external
/// issuer's user has no session here.
pub fn principal(request: &Request, own_issuer: &str) -> Result<Principal, RequestError> {
    match caller(request, own_issuer)? {
        Caller::Own(principal) => Ok(principal),
        Caller::External(identity) => Err(RequestError::ExternalCaller {
            issuer: identity.issuer,
        }),
    }
}

/// Where the emailed links of this request point: `APP_URL`, or else the API's own base URL as
/// API Gateway names it (its domain, and the stage unless it is the default one).
pub fn link_base(request: &Request, config: &Config) -> Option<LinkBase> {
    if let Some(url) = &config.app_url {
        return Some(LinkBase(url.clone()));
    }
    api_base(request).map(LinkBase)
}

/// The API's own base URL: behind our distribution the host the viewer used, else the domain
/// API Gateway names and the stage unless it is the default one. Where OpenID providers send
/// the browser back, and emailed links point without `APP_URL`.
pub fn api_base(request: &Request) -> Option<String> {
    // Behind our distribution: the host the viewer used (see `edge`).
    if let Some(super::edge::PublicHost(host)) = request.extensions().get() {
        return Some(format!("https://{host}"));
    }
    let (domain, stage) = match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => (&context.domain_name, &context.stage),
        RequestContext::ApiGatewayV1(context) => (&context.domain_name, &context.stage),
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    let domain = domain.as_deref().filter(|d| !d.is_empty())?;
    let scheme = if domain.starts_with("127.0.0.1") || domain.starts_with("localhost") {
        "http"
    } else {
        "https"
    };
    let stage = stage
        .as_deref()
        .filter(|s| !s.is_empty() && *s != "$default")
        .map(|s| format!("/{s}"))
        .unwrap_or_default();
    Some(format!("{scheme}://{domain}{stage}"))
}

/// The client's address: as [`super::edge::EdgeTrust::admit`] established it for this
/// request, else the source address API Gateway saw.
pub fn source_ip(request: &Request) -> Option<String> {
    match request.extensions().get::<super::edge::ClientAddress>() {
        Some(super::edge::ClientAddress(address)) => address.clone(),
        None => super::edge::gateway_source_ip(request),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Body;

    fn request(content_type: Option<&str>, body: Body) -> Request {
        let mut builder = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/auth/login");
        if let Some(ct) = content_type {
            builder = builder.header("content-type", ct);
        }
        builder.body(body).unwrap()
    }

    #[test]
    fn accepts_json_objects_with_a_charset() {
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
        ] {
            let r = request(Some(ct), Body::Text(r#"{"email":"a@b.co"}"#.into()));
            assert_eq!(
                json_object(&r).unwrap().unwrap().string("email").unwrap(),
                "a@b.co",
                "{ct}"
            );
        }
    }

    #[test]
    fn base64_bodies_arrive_as_bytes_and_parse_the_same() {
        let r = request(
            Some("application/json"),
            Body::Binary(br#"{"email":"a@b.co"}"#.to_vec()),
        );
        assert_eq!(
            json_object(&r).unwrap().unwrap().string("email").unwrap(),
            "a@b.co"
        );
    }

    #[test]
    fn refuses_wrong_content_types() {
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("application/jsonp"),
        ] {
            let r = request(ct, Body::Text("{}".into()));
            assert!(
                matches!(json_object(&r), Err(RequestError::UnsupportedMediaType)),
                "{ct:?}"
            );
        }
    }

    #[test]
    fn refuses_non_objects_and_broken_json() {
        for body in ["[]", "\"x\"", "1", "null", "{", "{\"a\":}", "\u{0}"] {
            let r = request(Some("application/json"), Body::Text(body.into()));
            assert!(
                matches!(json_object(&r), Err(RequestError::InvalidJson)),
                "{body}"
            );
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let r = request(
            Some("application/json"),
            Body::Text(format!("{{\"a\":{deep}}}")),
        );
        assert!(matches!(json_object(&r), Err(RequestError::InvalidJson)));
    }

    #[test]
    fn refuses_bodies_over_16_kib_before_parsing() {
        let r = request(
            Some("text/plain"),
            Body::Text("x".repeat(MAX_BODY_BYTES + 1)),
        );
        assert!(matches!(
            json_object(&r),
            Err(RequestError::PayloadTooLarge)
        ));
        let r = request(
            Some("application/json"),
            Body::Text(format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES - 8))),
        );
        assert!(json_object(&r).is_ok());
    }

    #[test]
    fn empty_bodies_are_none() {
        assert!(json_object(&request(None, Body::Empty)).unwrap().is_none());
    }

    #[test]
    fn fields_are_typed() {
        let object = |s: &str| {
            json_object(&request(Some("application/json"), Body::Text(s.into())))
                .unwrap()
                .unwrap()
        };
        let code = |e: RequestError| match e {
            RequestError::InvalidRequest { errors, .. } => errors[0].code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(object("{}").string("email").unwrap_err()), "missing");
        assert_eq!(
            code(object(r#"{"email":null}"#).string("email").unwrap_err()),
            "null"
        );
        assert_eq!(
            code(object(r#"{"email":5}"#).string("email").unwrap_err()),
            "wrong_type"
        );
        assert_eq!(
            code(object(r#"{"all":"yes"}"#).optional_bool("all").unwrap_err()),
            "wrong_type"
        );
        assert_eq!(
            object(r#"{"all":true}"#).optional_bool("all").unwrap(),
            Some(true)
        );
        assert_eq!(
            code(
                object(r#"{"email":"a","x":1}"#)
                    .only(&["email"])
                    .unwrap_err()
            ),
            "unknown_field"
        );
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer_token("bearer  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer a, Bearer b"), None);
        assert_eq!(bearer_token("abc"), None);
    }
}
