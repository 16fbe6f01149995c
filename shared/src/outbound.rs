//! Calls out to other parties (an external issuer's JWK Set, an OpenID provider's discovery
//! document and token endpoint), every one bounded: HTTPS, or plain HTTP for loopback tests;
//! an answer over 64 KiB, a redirect, or an answer slower than [`FETCH_TIMEOUT`] is refused.
//! Redirects are never followed: the configured URI is the only place an answer comes from.
//!
//! The client is built on first use, so functions that never call out never load TLS roots.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// An answer larger than this is refused.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// An answer slower than this is refused.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a call out failed; the text is for logs, never for a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The bounded HTTP client, shared by everything in a function that calls out.
#[derive(Debug, Default)]
pub struct Outbound {
    client: OnceLock<Result<HttpsClient, String>>,
}

impl Outbound {
    fn client(&self) -> Result<&HttpsClient, FetchError> {
        self.client
            .get_or_init(|| {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .map_err(|e| format!("no TLS root certificates: {e}"))?
                    .https_or_http()
                    .enable_http1()
                    .build();
                Ok(Client::builder(TokioExecutor::new()).build(connector))
            })
            .as_ref()
            .map_err(|e| FetchError(e.clone()))
    }

    /// `GET uri` for JSON; the body of a `2xx` answer.
    pub async fn get_json(&self, uri: &str) -> Result<Bytes, FetchError> {
        let request = hyper::Request::get(parse(uri)?)
            .header("accept", "application/json")
            .body(Full::default())
            .map_err(|e| FetchError(e.to_string()))?;
        let (status, body) = self.send(request).await?;
        if !status.is_success() {
            return Err(FetchError(format!("status {status}")));
        }
        Ok(body)
    }

    /// Any request (a token endpoint's form `POST`): the status and body of any answer but a
    /// redirect, which is refused.
    pub async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<(hyper::StatusCode, Bytes), FetchError> {
        let client = self.client()?;
        tokio::time::timeout(FETCH_TIMEOUT, async {
            let response = client
                .request(request)
                .await
                .map_err(|e| FetchError(e.to_string()))?;
            let status = response.status();
            if status.is_redirection() {
                return Err(FetchError(format!("redirect ({status}) not followed")));
            }
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| FetchError(e.to_string()))?
                .to_bytes();
            Ok((status, body))
        })
        .await
        .map_err(|_| FetchError("timed out".into()))?
    }
}

fn parse(uri: &str) -> Result<hyper::Uri, FetchError> {
    uri.parse().map_err(|e| FetchError(format!("{uri}: {e}")))
}
