//! An SES v2 stand-in in this process: it takes the functions' mail and counts it.

use super::*;

/// Answers every `SendEmail` (`POST /v2/email/outbound-emails`) as SES does, keeping nothing
/// but a count. Returns its URL and the count.
pub(super) async fn ses_stand_in() -> (String, Arc<AtomicUsize>) {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind the SES stand-in");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    let sent = Arc::new(AtomicUsize::new(0));
    let count = sent.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let count = count.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let count = count.clone();
                    async move {
                        let send = request.method() == hyper::Method::POST
                            && request.uri().path() == "/v2/email/outbound-emails";
                        let _ = request.into_body().collect().await;
                        let mut response = hyper::Response::new(Full::new(Bytes::new()));
                        if send {
                            count.fetch_add(1, Ordering::Relaxed);
                            let id = uuid::Uuid::new_v4().simple().to_string();
                            *response.body_mut() =
                                Full::new(Bytes::from(json!({ "MessageId": id }).to_string()));
                            response.headers_mut().insert(
                                hyper::header::CONTENT_TYPE,
                                hyper::header::HeaderValue::from_static("application/json"),
                            );
                        } else {
                            *response.status_mut() = hyper::StatusCode::NOT_FOUND;
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, sent)
}

// ------------------------------------------------------------------ one start
