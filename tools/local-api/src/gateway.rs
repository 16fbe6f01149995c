//! API Gateway (HTTP API, payload 2.0), emulated: each HTTP request becomes the v2 event the
//! function would receive; protected routes first run the authorizer on the v2 authorizer
//! event; the function is the very handler its Lambda binary runs, picked from the one route
//! table, `shared::routes::ROUTES`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use lambda_http::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value, json};
use shared::AuthService;
use shared::authorizer;
use shared::handlers::Published;
use shared::http::body_bytes;
use shared::routes::{self, HandlerState, ROUTES};

use crate::runtime_api::{LambdaProcess, Outcome};

use crate::mail::{FolderMailer, inbox_page};

/// Body size API Gateway accepts for HTTP APIs; larger requests never reach a function.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

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

/// What goes back to the client.
#[derive(Debug)]
pub struct GatewayResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub request_id: String,
}

pub struct Gateway {
    state: LocalState,
    /// The mail kept instead of sent, served at `/_dev/`.
    mail: Option<FolderMailer>,
    extra_routes: Vec<ExtraRoute>,
}

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

/// What serves a request: a route of the table, or another team's function.
enum Target<'a> {
    Table(&'static routes::Route),
    Extra(&'a ExtraRoute),
}

impl Target<'_> {
    fn key(&self) -> String {
        match self {
            Target::Table(route) => route.key(),
            Target::Extra(extra) => format!("{} {}", extra.method, extra.path),
        }
    }

    fn is_protected(&self) -> bool {
        match self {
            Target::Table(route) => route.is_protected(),
            Target::Extra(_) => true,
        }
    }
}

/// What the handlers run on: the local server holds both the service and the discovery
/// documents, where each Lambda function holds one.
struct LocalState {
    service: Arc<AuthService>,
    discovery: Published,
}

impl HandlerState for LocalState {
    fn service(&self) -> Option<&AuthService> {
        Some(&self.service)
    }
    fn published(&self) -> Option<&Published> {
        Some(&self.discovery)
    }
}

impl Gateway {
    /// Serves every route of `shared::routes::ROUTES`.
    pub fn new(service: Arc<AuthService>, discovery: Published) -> Self {
        Self {
            state: LocalState { service, discovery },
            mail: None,
            extra_routes: Vec::new(),
        }
    }

    /// Also serves the mail `mailer` keeps, at `GET /_dev/mail` and `GET /_dev/inbox`.
    pub fn with_dev_mail(mut self, mailer: FolderMailer) -> Self {
        self.mail = Some(mailer);
        self
    }

    /// Also serves these routes, each behind the authorizer.
    pub fn with_extra_routes(mut self, extra_routes: Vec<ExtraRoute>) -> Self {
        self.extra_routes = extra_routes;
        self
    }

    fn target(&self, method: &str, path: &str) -> (Target<'_>, BTreeMap<String, String>) {
        if let Some((route, parameters)) = routes::resolve(ROUTES, method, path) {
            return (Target::Table(route), parameters);
        }
        for extra in &self.extra_routes {
            if (extra.method == "ANY" || extra.method == method)
                && let Some(parameters) = shared::http::paths::match_path(&extra.path, path)
            {
                return (Target::Extra(extra), parameters);
            }
        }
        (Target::Table(routes::default_route()), BTreeMap::new())
    }

    pub async fn handle(&self, incoming: ClientRequest) -> GatewayResponse {
        let request_id = request_id();
        let answer = if incoming.body.len() > MAX_PAYLOAD_BYTES {
            gateway_message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")
        } else if let Some(page) = incoming.path.strip_prefix("/_dev/") {
            self.dev(&incoming, page).await
        } else {
            self.dispatch(&incoming, &request_id).await
        };
        with_request_id(answer, request_id)
    }

    /// The local server's own pages: the mail it kept instead of sending.
    async fn dev(&self, incoming: &ClientRequest, page: &str) -> (StatusCode, HeaderMap, Bytes) {
        let Some(mail) = self
            .mail
            .as_ref()
            .filter(|_| incoming.method == Method::GET)
            // Only under a loopback name: a page on another site that rebinds its own name to
            // 127.0.0.1 must not read the mail (DNS rebinding).
            .filter(|_| loopback_host(&incoming.headers))
        else {
            return gateway_message(StatusCode::NOT_FOUND, "Not Found");
        };
        // Mail goes out after the answer; what the requests so far sent is there once it is idle.
        self.state.service.outbox_idle().await;
        let to = form_urlencoded::parse(incoming.query.as_deref().unwrap_or_default().as_bytes())
            .find(|(name, _)| name == "to")
            .map(|(_, value)| value.into_owned());
        let messages = match mail.messages(to.as_deref()) {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the mail folder");
                return gateway_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
            }
        };
        let (content_type, body) = match page {
            "mail" => (
                "application/json",
                json!({ "messages": messages }).to_string(),
            ),
            "inbox" => ("text/html; charset=utf-8", inbox_page(&messages)),
            _ => return gateway_message(StatusCode::NOT_FOUND, "Not Found"),
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        (StatusCode::OK, headers, Bytes::from(body))
    }

    /// API Gateway's answer to a body over its limit.
    /// The answer to a request whose body did not arrive in time.
    pub fn request_timeout(&self) -> GatewayResponse {
        with_request_id(
            gateway_message(StatusCode::REQUEST_TIMEOUT, "Request Timeout"),
            request_id(),
        )
    }

    pub fn payload_too_large(&self) -> GatewayResponse {
        with_request_id(
            gateway_message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
            request_id(),
        )
    }

    async fn dispatch(
        &self,
        incoming: &ClientRequest,
        request_id: &str,
    ) -> (StatusCode, HeaderMap, Bytes) {
        // Like API Gateway: a route whose method and path match, else the catch-all.
        let (target, path_parameters) = self.target(incoming.method.as_str(), &incoming.path);
        let context = RequestContext::new(incoming, target.key(), request_id);

        let authorizer_context = if target.is_protected() {
            // API Gateway refuses a request without the identity source before calling anyone.
            // Several `Authorization` headers reach the authorizer joined by commas, as API
            // Gateway joins them; no bearer token has a comma, so that is refused.
            let Some(authorization) =
                header_text(&incoming.headers, header::AUTHORIZATION.as_str())
            else {
                return gateway_message(StatusCode::UNAUTHORIZED, "Unauthorized");
            };
            let event = authorizer_event(incoming, &context, &authorization);
            match authorizer::handle(&self.state.service, event).await {
                Ok(answer) if answer["isAuthorized"] == true => Some(answer["context"].clone()),
                Ok(_) => return gateway_message(StatusCode::FORBIDDEN, "Forbidden"),
                Err(_) => {
                    return gateway_message(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Internal Server Error",
                    );
                }
            }
        } else {
            None
        };

        let event = request_event(incoming, &context, &path_parameters, authorizer_context);
        let route = match target {
            Target::Table(route) => route,
            Target::Extra(extra) => return invoke_extra(extra, &event).await,
        };
        let request = match lambda_http::request::from_str(&event.to_string()) {
            Ok(request) => request,
            Err(_) => {
                return gateway_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
            }
        };
        let response = route.handler.call(&self.state, request).await;
        let (parts, body) = response.into_parts();
        (
            parts.status,
            parts.headers,
            Bytes::copy_from_slice(body_bytes(&body)),
        )
    }
}

/// Runs another team's function on the event and turns its answer (an HTTP API payload 2.0
/// response) into the HTTP response, as API Gateway does.
async fn invoke_extra(extra: &ExtraRoute, event: &Value) -> (StatusCode, HeaderMap, Bytes) {
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

fn with_request_id(
    (status, mut headers, body): (StatusCode, HeaderMap, Bytes),
    request_id: String,
) -> GatewayResponse {
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("apigw-requestid", value);
    }
    GatewayResponse {
        status,
        headers,
        body,
        request_id,
    }
}

/// API Gateway's own answers (not a function's): `{"message": "..."}`.
fn gateway_message(status: StatusCode, message: &str) -> (StatusCode, HeaderMap, Bytes) {
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

/// Request ids in API Gateway's shape: 16 base64 characters.
fn request_id() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    B64.encode(&bytes[..12])
}

/// The parts of `requestContext` both events share.
struct RequestContext {
    value: Value,
    route_key: String,
}

impl RequestContext {
    fn new(incoming: &ClientRequest, route_key: String, request_id: &str) -> Self {
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

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
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

fn request_event(
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

/// Whether the request's `Host` names this machine's loopback: `localhost` (or a name under
/// it), an address in 127.0.0.0/8, or `[::1]`, with or without a port.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The authorizer's payload 2.0 REQUEST event, identity sources the `Authorization` header and
/// the route (the cache key the template declares).
fn authorizer_event(
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
mod loopback_tests {
    use super::*;

    fn host(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn dev_pages_answer_only_under_a_loopback_host() {
        for good in [
            "localhost",
            "localhost:3000",
            "LOCALHOST:3000",
            "app.localhost:3000",
            "127.0.0.1",
            "127.0.0.1:3000",
            "127.1.2.3:80",
            "[::1]:3000",
            "[::1]",
        ] {
            assert!(loopback_host(&host(good)), "{good}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:3000",
            "localhost.attacker.example",
            "127.0.0.1.attacker.example",
            "192.168.1.10:3000",
            "[2001:db8::1]:3000",
            "",
        ] {
            assert!(!loopback_host(&host(bad)), "{bad}");
        }
        assert!(!loopback_host(&HeaderMap::new()), "no Host at all");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn request_ids_look_like_api_gateways() {
        let id = request_id();
        assert_eq!(id.len(), 16);
        assert_ne!(id, request_id());
    }
}
