//! API Gateway (HTTP API, payload 2.0), emulated: each HTTP request becomes the v2 event the
//! function would receive; protected routes first run the authorizer on the v2 authorizer
//! event; the function is the very handler its Lambda binary runs, picked from the one route
//! table, `shared::routes::ROUTES`. This module is the dispatch that ties the others together:
//! the events themselves are built in `events`, `--extra-route` functions run in
//! `extra_routes`, and the `/_dev/` pages are served by `dev`.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use lambda_http::http::{HeaderMap, HeaderValue, StatusCode, header};
use shared::AuthService;
use shared::authorizer;
use shared::handlers::Published;
use shared::http::edge::EdgeTrust;
use shared::http::{HttpError, body_bytes};
use shared::routes::{self, HandlerState, ROUTES};

use crate::dev;
use crate::events::{
    RequestContext, authorizer_event, gateway_message, header_text, request_event,
};
use crate::extra_routes::invoke_extra;
use crate::lifecycle::FolderEvents;
use crate::mail::FolderMailer;

pub use crate::events::ClientRequest;
pub use crate::extra_routes::{ExtraRoute, ExtraRouteSpec};

/// Body size API Gateway accepts for HTTP APIs; larger requests never reach a function.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

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
    /// The lifecycle events kept instead of put on a bus, served at `/_dev/events`.
    events: Option<FolderEvents>,
    extra_routes: Vec<ExtraRoute>,
    /// Whom the gateway trusts to name the client's address: by default nobody, so the per-IP
    /// budgets count the peer's address, as the functions count API Gateway's source address.
    edge: EdgeTrust,
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
            events: None,
            extra_routes: Vec::new(),
            edge: EdgeTrust::Direct,
        }
    }

    /// Serves only requests that carry this edge's origin secret, as the functions do behind
    /// the stack's CloudFront distribution.
    pub fn with_edge(mut self, edge: EdgeTrust) -> Self {
        self.edge = edge;
        self
    }

    /// Also serves the mail `mailer` keeps, at `GET /_dev/mail` and `GET /_dev/inbox`.
    pub fn with_dev_mail(mut self, mailer: FolderMailer) -> Self {
        self.mail = Some(mailer);
        self
    }

    /// Also serves the lifecycle events `events` keeps, at `GET /_dev/events`.
    pub fn with_dev_events(mut self, events: FolderEvents) -> Self {
        self.events = Some(events);
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
            let (mail, events) = (self.mail.as_ref(), self.events.as_ref());
            dev::serve(mail, events, &self.state.service, &incoming, page).await
        } else {
            self.dispatch(&incoming, &request_id).await
        };
        with_request_id(answer, request_id)
    }

    /// The answer to a request whose body did not arrive in time.
    pub fn request_timeout(&self) -> GatewayResponse {
        with_request_id(
            gateway_message(StatusCode::REQUEST_TIMEOUT, "Request Timeout"),
            request_id(),
        )
    }

    /// API Gateway's answer to a body over its limit.
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
        let mut request = match lambda_http::request::from_str(&event.to_string()) {
            Ok(request) => request,
            Err(_) => {
                return gateway_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
            }
        };
        // What the serving loop of every function does first.
        let response = match self.edge.admit(&mut request) {
            Ok(()) => route.handler.call(&self.state, request).await,
            Err(refused) => HttpError::from(refused).into_response(),
        };
        let (parts, body) = response.into_parts();
        (
            parts.status,
            parts.headers,
            Bytes::copy_from_slice(body_bytes(&body)),
        )
    }
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

/// Request ids in API Gateway's shape: 16 base64 characters.
fn request_id() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    B64.encode(&bytes[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_api_gateways() {
        let id = request_id();
        assert_eq!(id.len(), 16);
        assert_ne!(id, request_id());
    }
}
