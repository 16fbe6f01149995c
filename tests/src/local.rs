//! The local API server, started in-process on a free port around a harness's service, and a
//! small HTTP client for black-box tests.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use local_api::{Gateway, server};
use serde_json::Value;
use shared::handlers::Published;
use shared::http::edge::EdgeTrust;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::Harness;

/// A running local API; stops when dropped.
pub struct LocalApi {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for LocalApi {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl Harness {
    /// Serves this harness's service the way `local-api` does.
    pub async fn serve_local_api(&self) -> LocalApi {
        self.serve_local_api_within(server::Limits::default()).await
    }

    /// [`Self::serve_local_api`] with other limits on slow clients and connections.
    pub async fn serve_local_api_within(&self, limits: server::Limits) -> LocalApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        self.serve_local_api_on(listener, limits)
    }

    /// [`Self::serve_local_api_within`] on a listener bound already (a test that needs its
    /// port first, for the relying party of its passkeys).
    pub fn serve_local_api_on(&self, listener: TcpListener, limits: server::Limits) -> LocalApi {
        self.serve_gateway(listener, limits, EdgeTrust::Direct)
    }

    /// [`Self::serve_local_api`] as the functions serve behind the stack's distribution: only
    /// requests with its origin secret, the client named by `CloudFront-Viewer-Address`.
    pub async fn serve_local_api_behind(&self, edge: EdgeTrust) -> LocalApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        self.serve_gateway(listener, server::Limits::default(), edge)
    }

    fn serve_gateway(
        &self,
        listener: TcpListener,
        limits: server::Limits,
        edge: EdgeTrust,
    ) -> LocalApi {
        let discovery = Published::new(self.config.issuer.clone(), &self.keys)
            .with_providers(&self.config.oidc_providers);
        let mut gateway = Gateway::new(self.service.clone(), discovery)
            .with_dev_mail(self.mail.clone())
            .with_edge(edge);
        if let Some(events) = &self.dev_events {
            gateway = gateway.with_dev_events(events.clone());
        }
        let addr = listener.local_addr().expect("address");
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(server::serve_with(
            listener,
            Arc::new(gateway),
            limits,
            async {
                let _ = stopped.await;
            },
        ));
        LocalApi {
            addr,
            shutdown: Some(shutdown),
        }
    }
}

/// An answer from the server.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A string field of the JSON body (a token, an id), or a panic that shows the body.
    pub fn string(&self, field: &str) -> String {
        let json = self.json();
        json[field]
            .as_str()
            .unwrap_or_else(|| panic!("no {field} in {json:?}"))
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// The problem code (docs/api.md), if this is a problem document.
    pub fn code(&self) -> Option<String> {
        self.json()["code"].as_str().map(str::to_owned)
    }
}

impl LocalApi {
    /// A client of the server at `addr`, which it does not own (dropping it stops nothing).
    pub fn at(addr: SocketAddr) -> Self {
        Self {
            addr,
            shutdown: None,
        }
    }

    /// Sends one request on a fresh connection.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let stream = TcpStream::connect(self.addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let mut request = hyper::Request::builder().method(method).uri(path);
        let request_headers = request.headers_mut().expect("headers");
        request_headers.insert(
            "host",
            HeaderValue::from_str(&self.addr.to_string()).unwrap(),
        );
        for (name, value) in headers {
            request_headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
        }
        let response = sender
            .send_request(request.body(Full::new(body.into())).expect("request"))
            .await
            .expect("response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        let authorization = bearer.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|a| ("authorization", a.as_str()))
            .collect();
        self.send("GET", path, &headers, Bytes::new()).await
    }

    pub async fn post_json(&self, path: &str, body: &Value, bearer: Option<&str>) -> Reply {
        let authorization = bearer.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        headers.extend(authorization.iter().map(|a| ("authorization", a.as_str())));
        self.send("POST", path, &headers, Bytes::from(body.to_string()))
            .await
    }
}

/// The body of `GET url` for a plain-HTTP loopback URL (`http://127.0.0.1:PORT/path`).
pub async fn http_get(url: &str) -> Bytes {
    let rest = url.strip_prefix("http://").expect("a plain-HTTP URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let api = LocalApi::at(authority.parse().expect("an IP address and port"));
    let reply = api
        .send(
            "GET",
            if path.is_empty() { "/" } else { path },
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200, "GET {url}");
    reply.body
}
