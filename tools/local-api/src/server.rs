//! The HTTP server: HTTP/1.1 on loopback, one access-log line per request (method, path, status,
//! latency, request id; never a body, a query or a token), graceful shutdown. A client that is
//! slow to send its headers or its body is cut off, and connections are bounded, so none can
//! hold the server.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::gateway::{ClientRequest, Gateway, MAX_PAYLOAD_BYTES};

/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What one client may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From a connection's start (or its previous request) to the end of a request's headers.
    pub header_read_timeout: Duration,
    /// From the end of a request's headers to the end of its body.
    pub body_read_timeout: Duration,
    /// Connections served at once; further ones wait in the listen queue.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
    }
}

/// Serves until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, gateway, Limits::default(), shutdown).await
}

/// [`serve`] within `limits`.
pub async fn serve_with(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        // A free connection slot first: at the bound, new clients wait in the listen queue.
        let slot = tokio::select! {
            slot = connections.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(connection) => connection,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let gateway = gateway.clone();
                let body_deadline = limits.body_read_timeout;
                let service = service_fn(move |request| {
                    let gateway = gateway.clone();
                    async move {
                        Ok::<_, Infallible>(respond(&gateway, request, peer, body_deadline).await)
                    }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_read_timeout)
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                    drop(slot);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("some requests did not finish within {DRAIN_TIMEOUT:?}");
    }
    Ok(())
}

async fn respond(
    gateway: &Gateway,
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
    body_deadline: Duration,
) -> hyper::Response<Full<Bytes>> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let collected = tokio::time::timeout(
        body_deadline,
        Limited::new(body, MAX_PAYLOAD_BYTES).collect(),
    )
    .await;
    let answer = match collected {
        // A body that does not arrive in time: the connection closes with the answer.
        Err(_) => gateway.request_timeout(),
        Ok(Ok(body)) => {
            let request = ClientRequest {
                method: parts.method,
                path: path.clone(),
                query: parts.uri.query().map(str::to_owned),
                headers: parts.headers,
                body: body.to_bytes(),
                peer,
            };
            gateway.handle(request).await
        }
        // Larger than API Gateway accepts: it answers before any function runs.
        Ok(Err(_)) => gateway.payload_too_large(),
    };
    let latency = started.elapsed();
    info!(
        target: "access",
        "{method} {path} {} {:.1}ms {}",
        answer.status.as_u16(),
        latency.as_secs_f64() * 1000.0,
        answer.request_id
    );
    let mut response = hyper::Response::new(Full::new(answer.body));
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    if answer.status == hyper::StatusCode::REQUEST_TIMEOUT {
        response.headers_mut().insert(
            hyper::header::CONNECTION,
            "close".parse().expect("a header value"),
        );
    }
    response
}
