//! `--extra-route`: another team's Lambda binary served on a route of its own behind this API's
//! authorizer. The spec is parsed here, the binary runs as a child process against a loopback
//! Runtime API, and its payload 2.0 answer is turned back into HTTP as API Gateway does; apart
//! from the dispatch because none of this touches the route table's handlers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use lambda_http::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value;
use shared::routes::{self, ROUTES};

use crate::events::gateway_message;
use crate::runtime_api::{LambdaProcess, Outcome};

/// A route of another team's function, served behind this API's authorizer: its Lambda binary
/// runs as a child process against a loopback Runtime API, as in Lambda.
pub struct ExtraRoute {
    /// Upper case, or `ANY`.
    pub method: String,
    /// With `{name}` for a path parameter.
    pub path: String,
    pub function: LambdaProcess,
}

/// `--extra-route 'GET /orders=path/to/binary'`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraRouteSpec {
    pub method: String,
    pub path: String,
    pub binary: std::path::PathBuf,
}

impl ExtraRouteSpec {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let usage = || format!("--extra-route {spec:?}: expected 'METHOD /path=path/to/binary'");
        let (route, binary) = spec.split_once('=').ok_or_else(usage)?;
        let (method, path) = route.trim().split_once(' ').ok_or_else(usage)?;
        let path = path.trim();
        if !path.starts_with('/') || binary.trim().is_empty() {
            return Err(usage());
        }
        let method = method.trim().to_ascii_uppercase();
        if !matches!(
            method.as_str(),
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" | "ANY"
        ) {
            return Err(usage());
        }
        if routes::resolve(ROUTES, &method, path).is_some() {
            return Err(format!(
                "--extra-route {spec:?}: this API already serves {method} {path}"
            ));
        }
        Ok(Self {
            method,
            path: path.to_owned(),
            binary: binary.trim().into(),
        })
    }

    /// Starts the function; it stops with the server.
    pub async fn start(&self) -> Result<ExtraRoute, String> {
        let name = self
            .binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "extra".into());
        let function = LambdaProcess::spawn(&self.binary, &name, &[])
            .await
            .map_err(|e| format!("{}: {e}", self.binary.display()))?;
        Ok(ExtraRoute {
            method: self.method.clone(),
            path: self.path.clone(),
            function,
        })
    }
}

/// Runs another team's function on the event and turns its answer (an HTTP API payload 2.0
/// response) into the HTTP response, as API Gateway does.
pub(crate) async fn invoke_extra(
    extra: &ExtraRoute,
    event: &Value,
) -> (StatusCode, HeaderMap, Bytes) {
    let failed = || gateway_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    let answer = match extra
        .function
        .api
        .invoke(Bytes::from(event.to_string()))
        .await
    {
        Ok(Outcome::Response(answer)) => answer,
        Ok(Outcome::Error(error)) => {
            tracing::warn!(route = %format!("{} {}", extra.method, extra.path), error = %String::from_utf8_lossy(&error), "the function failed");
            return failed();
        }
        Err(e) => {
            tracing::warn!(route = %format!("{} {}", extra.method, extra.path), error = %e, "the function did not answer");
            return failed();
        }
    };
    let Ok(answer) = serde_json::from_slice::<Value>(&answer) else {
        return failed();
    };
    // A function may answer any JSON value: without `statusCode` it is the body of a 200.
    let Some(status) = answer.get("statusCode").and_then(Value::as_u64) else {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return (StatusCode::OK, headers, Bytes::from(answer.to_string()));
    };
    let Ok(status) = StatusCode::from_u16(status as u16) else {
        return failed();
    };
    let mut headers = HeaderMap::new();
    for (name, value) in answer["headers"].as_object().into_iter().flatten() {
        if let (Ok(name), Some(Ok(value))) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            value.as_str().map(HeaderValue::from_str),
        ) {
            headers.append(name, value);
        }
    }
    for cookie in answer["cookies"].as_array().into_iter().flatten() {
        if let Some(Ok(value)) = cookie.as_str().map(HeaderValue::from_str) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    let body = answer["body"].as_str().unwrap_or_default();
    let body = if answer["isBase64Encoded"] == true {
        match B64.decode(body) {
            Ok(bytes) => Bytes::from(bytes),
            Err(_) => return failed(),
        }
    } else {
        Bytes::from(body.to_owned())
    };
    (status, headers, body)
}
