//! The translation between HTTP and API Gateway's shapes (HTTP API, payload 2.0): a request
//! becomes the v2 event the function would receive, or the authorizer's v2 REQUEST event, and
//! API Gateway's own answers go back as `{"message": "..."}`. Kept apart from the dispatch so
//! the event formats can be read and tested on their own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use lambda_http::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value, json};

const ACCOUNT_ID: &str = "000000000000";
const API_ID: &str = "local";

/// An incoming request, already read.
#[derive(Debug)]
pub struct ClientRequest {
    pub method: Method,
    /// The path, still percent-encoded, as API Gateway's `rawPath`.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub peer: SocketAddr,
}

/// API Gateway's own answers (not a function's): `{"message": "..."}`.
pub(crate) fn gateway_message(status: StatusCode, message: &str) -> (StatusCode, HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (
        status,
        headers,
        Bytes::from(json!({ "message": message }).to_string()),
    )
}

/// The parts of `requestContext` both events share.
pub(crate) struct RequestContext {
    value: Value,
    route_key: String,
}

impl RequestContext {
    pub(crate) fn new(incoming: &ClientRequest, route_key: String, request_id: &str) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let time = gateway_time(now.as_secs() as i64);
        let domain = header_text(&incoming.headers, header::HOST.as_str())
            .unwrap_or_else(|| "localhost".into());
        let value = json!({
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": domain,
            "domainPrefix": domain.split('.').next().unwrap_or_default(),
            "http": {
                "method": incoming.method.as_str(),
                "path": incoming.path,
                "protocol": "HTTP/1.1",
                "sourceIp": incoming.peer.ip().to_string(),
                "userAgent": header_text(&incoming.headers, header::USER_AGENT.as_str()).unwrap_or_default(),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": time,
            "timeEpoch": now.as_millis() as u64,
        });
        Self { value, route_key }
    }
}

/// `27/Nov/2026:14:00:00 +0000`, as `requestContext.time` has it.
fn gateway_time(seconds: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(seconds) else {
        return String::new();
    };
    let month = t.month().to_string();
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        t.day(),
        &month[..3],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub(crate) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// Headers as payload 2.0 carries them: lower-case names, repeated ones joined by commas, and
/// cookies moved to their own array.
fn event_headers(headers: &HeaderMap) -> (Map<String, Value>, Vec<String>) {
    let mut map = Map::new();
    let mut cookies = Vec::new();
    for name in headers.keys() {
        if name == header::COOKIE {
            for value in headers.get_all(name) {
                cookies.extend(
                    String::from_utf8_lossy(value.as_bytes())
                        .split(';')
                        .map(|c| c.trim().to_owned()),
                );
            }
            continue;
        }
        if let Some(value) = header_text(headers, name.as_str()) {
            map.insert(name.as_str().to_owned(), Value::String(value));
        }
    }
    (map, cookies)
}

fn query_parameters(query: Option<&str>) -> Map<String, Value> {
    let mut parameters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        parameters
            .entry(name.to_owned())
            .or_default()
            .push(value.to_owned());
    }
    parameters
        .into_iter()
        .map(|(k, v)| (k, Value::String(v.join(","))))
        .collect()
}

/// HTTP APIs pass text bodies as text and everything else base64-encoded.
fn is_text(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media.starts_with("text/")
        || media.ends_with("+json")
        || media.ends_with("+xml")
        || matches!(
            media.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-www-form-urlencoded"
        )
}

pub(crate) fn request_event(
    incoming: &ClientRequest,
    context: &RequestContext,
    path_parameters: &BTreeMap<String, String>,
    authorizer_context: Option<Value>,
) -> Value {
    let (headers, cookies) = event_headers(&incoming.headers);
    let mut request_context = context.value.clone();
    if let Some(lambda) = authorizer_context {
        request_context["authorizer"] = json!({ "lambda": lambda });
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": context.route_key,
        "rawPath": incoming.path,
        "rawQueryString": incoming.query.clone().unwrap_or_default(),
        "headers": headers,
        "requestContext": request_context,
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    let query = query_parameters(incoming.query.as_deref());
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !path_parameters.is_empty() {
        event["pathParameters"] = json!(path_parameters);
    }
    if !incoming.body.is_empty() {
        match std::str::from_utf8(&incoming.body) {
            Ok(text) if is_text(&incoming.headers) => event["body"] = json!(text),
            _ => {
                event["body"] = json!(B64.encode(&incoming.body));
                event["isBase64Encoded"] = json!(true);
            }
        }
    }
    event
}

/// The authorizer's payload 2.0 REQUEST event, identity sources the `Authorization` header and
/// the route (the cache key the template declares).
pub(crate) fn authorizer_event(
    incoming: &ClientRequest,
    context: &RequestContext,
    authorization: &str,
) -> Value {
    let (headers, cookies) = event_headers(&incoming.headers);
    json!({
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": format!(
            "arn:aws:execute-api:local:{ACCOUNT_ID}:{API_ID}/$default/{}{}",
            incoming.method, incoming.path
        ),
        "identitySource": [authorization, context.route_key],
        "routeKey": context.route_key,
        "rawPath": incoming.path,
        "rawQueryString": incoming.query.clone().unwrap_or_default(),
        "cookies": cookies,
        "headers": headers,
        "queryStringParameters": query_parameters(incoming.query.as_deref()),
        "requestContext": context.value,
        "pathParameters": {},
        "stageVariables": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::http::body_bytes;
    use shared::routes::{self, ROUTES};

    fn incoming(content_type: Option<&str>, body: &[u8]) -> ClientRequest {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        headers.append("x-multi", HeaderValue::from_static("one"));
        headers.append("x-multi", HeaderValue::from_static("two"));
        if let Some(ct) = content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        ClientRequest {
            method: Method::POST,
            path: "/auth/login".into(),
            query: Some("x=1&x=2&y".into()),
            headers,
            body: Bytes::copy_from_slice(body),
            peer: "127.0.0.1:5555".parse().unwrap(),
        }
    }

    fn route() -> String {
        routes::resolve(ROUTES, "POST", "/auth/login")
            .unwrap()
            .0
            .key()
    }

    #[test]
    fn builds_the_v2_event_api_gateway_would_send() {
        let incoming = incoming(Some("application/json"), br#"{"a":1}"#);
        let context = RequestContext::new(&incoming, route(), "req-1");
        let event = request_event(&incoming, &context, &BTreeMap::new(), None);
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "POST /auth/login");
        assert_eq!(event["rawQueryString"], "x=1&x=2&y");
        assert_eq!(event["queryStringParameters"], json!({"x": "1,2", "y": ""}));
        assert_eq!(event["headers"]["x-multi"], "one,two");
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(event["requestContext"]["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(event["requestContext"]["requestId"], "req-1");
        assert_eq!(event["requestContext"]["stage"], "$default");
        assert_eq!(event["body"], r#"{"a":1}"#);
        assert_eq!(event["isBase64Encoded"], false);
        // The runtime's own parser accepts it.
        assert!(lambda_http::request::from_str(&event.to_string()).is_ok());
    }

    #[test]
    fn binary_bodies_are_base64_encoded() {
        let incoming = incoming(Some("application/octet-stream"), &[0, 159, 146, 150]);
        let context = RequestContext::new(&incoming, route(), "req-1");
        let event = request_event(&incoming, &context, &BTreeMap::new(), None);
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], B64.encode([0, 159, 146, 150]));
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        assert_eq!(body_bytes(request.body()), [0, 159, 146, 150]);
    }

    #[test]
    fn time_is_in_api_gateway_format() {
        assert_eq!(gateway_time(1_795_788_000), "27/Nov/2026:14:00:00 +0000");
        assert_eq!(gateway_time(1_780_000_000), "28/May/2026:20:26:40 +0000");
    }
}
