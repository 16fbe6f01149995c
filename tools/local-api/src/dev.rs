//! The local server's own pages, `GET /_dev/mail` and `GET /_dev/inbox`: the mail it kept
//! instead of sending; `GET /_dev/events`: the lifecycle events it kept instead of putting on
//! a bus. No Lambda function serves them, so they sit beside the dispatch rather
//! than in the route table, and they answer only under a loopback `Host`.

use bytes::Bytes;
use lambda_http::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::json;
use shared::AuthService;

use crate::events::{ClientRequest, gateway_message};
use crate::lifecycle::FolderEvents;
use crate::mail::{FolderMailer, inbox_page};

/// The local server's own pages: the mail and the events it kept.
pub(crate) async fn serve(
    mail: Option<&FolderMailer>,
    events: Option<&FolderEvents>,
    service: &AuthService,
    incoming: &ClientRequest,
    page: &str,
) -> (StatusCode, HeaderMap, Bytes) {
    if page == "events" {
        return serve_events(events, service, incoming).await;
    }
    let Some(mail) = mail
        .filter(|_| incoming.method == Method::GET)
        // Only under a loopback name: a page on another site that rebinds its own name to
        // 127.0.0.1 must not read the mail (DNS rebinding).
        .filter(|_| loopback_host(&incoming.headers))
    else {
        return gateway_message(StatusCode::NOT_FOUND, "Not Found");
    };
    // Mail goes out after the answer; what the requests so far sent is there once it is idle.
    service.after_answer_idle().await;
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

/// `GET /_dev/events`: the kept lifecycle events, newest first.
async fn serve_events(
    events: Option<&FolderEvents>,
    service: &AuthService,
    incoming: &ClientRequest,
) -> (StatusCode, HeaderMap, Bytes) {
    let Some(events) = events
        .filter(|_| incoming.method == Method::GET)
        .filter(|_| loopback_host(&incoming.headers))
    else {
        return gateway_message(StatusCode::NOT_FOUND, "Not Found");
    };
    // Events go out after the answer, as mail does.
    service.after_answer_idle().await;
    let kind = form_urlencoded::parse(incoming.query.as_deref().unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "type")
        .map(|(_, value)| value.into_owned());
    let events = match events.events(kind.as_deref()) {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the events file");
            return gateway_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let body = json!({ "events": events }).to_string();
    (StatusCode::OK, headers, Bytes::from(body))
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
