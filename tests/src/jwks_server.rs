//! A JWKS endpoint on loopback, standing in for an external issuer: it serves whatever JWK Set
//! the test sets, counts the requests, and can be taken down, slowed down or made to redirect.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Default)]
struct State {
    body: Mutex<String>,
    requests: AtomicUsize,
    down: AtomicBool,
    /// Milliseconds to wait before answering.
    delay_ms: AtomicU64,
    /// Where to redirect instead of answering.
    redirect: Mutex<Option<String>>,
}

pub struct JwksServer {
    pub url: String,
    state: Arc<State>,
}

impl JwksServer {
    pub async fn start(body: impl Into<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!(
            "http://{}/api/auth/jwks",
            listener.local_addr().expect("address")
        );
        let state = Arc::new(State {
            body: Mutex::new(body.into()),
            ..State::default()
        });
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_request| {
                        let state = state.clone();
                        async move {
                            state.requests.fetch_add(1, Ordering::SeqCst);
                            let delay = state.delay_ms.load(Ordering::SeqCst);
                            if delay > 0 {
                                tokio::time::sleep(Duration::from_millis(delay)).await;
                            }
                            let redirect = state.redirect.lock().unwrap().clone();
                            let (status, body) = if state.down.load(Ordering::SeqCst) {
                                (503, String::from("unavailable"))
                            } else if redirect.is_some() {
                                (302, String::new())
                            } else {
                                (200, state.body.lock().unwrap().clone())
                            };
                            let mut response = hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json");
                            if let Some(location) = redirect {
                                response = response.header("location", location);
                            }
                            let response = response.body(Full::new(Bytes::from(body))).unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, state }
    }

    /// How many times the JWK Set was requested.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn serve(&self, body: impl Into<String>) {
        *self.state.body.lock().unwrap() = body.into();
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Answers only after `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Answers `302 Found` to `location` instead of the JWK Set (`None`: serves it again).
    pub fn set_redirect(&self, location: Option<String>) {
        *self.state.redirect.lock().unwrap() = location;
    }
}
