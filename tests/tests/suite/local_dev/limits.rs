//! The local server as API Gateway treats a client: several `Authorization` headers reach the
//! authorizer joined by commas (and are refused), a client slow to send its headers is cut
//! off, and connections are bounded, so no client can hold the server.

use std::time::Duration;

use integration_tests::Harness;
use local_api::server::Limits;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PASSWORD: &str = "correct horse battery staple";

/// Reads until the server closes the connection; `None` if it has not within `patience`.
async fn read_until_closed(stream: &mut TcpStream, patience: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    tokio::time::timeout(patience, stream.read_to_end(&mut received))
        .await
        .ok()?
        .ok()?;
    Some(received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_authorization_headers_are_refused_as_api_gateway_refuses_them() {
    let h = Harness::embedded();
    let api = h.serve_local_api().await;
    let registered = api
        .post_json(
            "/auth/register",
            &json!({"email": "two-headers@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    let token = registered.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = format!("Bearer {token}");
    let one = api
        .send("GET", "/auth/me", &[("authorization", &bearer)], "")
        .await;
    assert_eq!(one.status, 200);
    for second in [
        bearer.as_str(),
        "Bearer something-else",
        "Basic dXNlcjpwdw==",
    ] {
        let two = api
            .send(
                "GET",
                "/auth/me",
                &[("authorization", &bearer), ("authorization", second)],
                "",
            )
            .await;
        assert_eq!(two.status, 403, "joined with {second:?}");
        assert_eq!(two.json(), json!({"message": "Forbidden"}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_slow_to_send_its_headers_is_cut_off() {
    let h = Harness::embedded();
    let api = h
        .serve_local_api_within(Limits {
            header_read_timeout: Duration::from_secs(1),
            ..Limits::default()
        })
        .await;
    // Half a request line and header, then nothing; and a connection that sends nothing.
    let mut partial = TcpStream::connect(api.addr).await.unwrap();
    partial
        .write_all(b"GET /auth/me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(api.addr).await.unwrap();
    for stream in [&mut partial, &mut silent] {
        assert!(
            read_until_closed(stream, Duration::from_secs(20))
                .await
                .is_some(),
            "the server closes a connection whose headers do not arrive"
        );
    }
    // Clients that send their request are served as before.
    assert_eq!(api.get("/.well-known/jwks.json", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_are_bounded() {
    let h = Harness::embedded();
    let api = h
        .serve_local_api_within(Limits {
            header_read_timeout: Duration::from_secs(2),
            body_read_timeout: Duration::from_secs(2),
            max_connections: 1,
        })
        .await;
    let mut holder = TcpStream::connect(api.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // accepted: it holds the one slot
    let waiting = tokio::spawn({
        let addr = api.addr;
        async move {
            integration_tests::local::LocalApi::at(addr)
                .get("/.well-known/jwks.json", None)
                .await
                .status
        }
    });
    // Well before the holder is cut off (at 2 s), the second client still waits.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !waiting.is_finished(),
        "no second connection is served while the bound is reached"
    );
    assert!(
        read_until_closed(&mut holder, Duration::from_secs(20))
            .await
            .is_some()
    );
    let status = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_slow_to_send_its_body_is_cut_off() {
    let h = Harness::embedded();
    let api = h
        .serve_local_api_within(Limits {
            body_read_timeout: Duration::from_secs(1),
            ..Limits::default()
        })
        .await;
    // The headers promise 100 bytes; ten arrive, then nothing.
    let mut slow = TcpStream::connect(api.addr).await.unwrap();
    slow.write_all(
        b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":",
    )
    .await
    .unwrap();
    let answer = read_until_closed(&mut slow, Duration::from_secs(20))
        .await
        .expect("the server answers and closes a connection whose body does not arrive");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(api.get("/.well-known/jwks.json", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dev_pages_answer_only_under_a_loopback_host() {
    let h = Harness::embedded();
    let api = h.serve_local_api().await;
    for (host, status) in [
        ("127.0.0.1", "200"),
        ("localhost:3000", "200"),
        ("attacker.example", "404"),
        ("rebound.attacker.example:3000", "404"),
    ] {
        let mut stream = TcpStream::connect(api.addr).await.unwrap();
        stream
            .write_all(
                format!("GET /_dev/mail HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let answer = read_until_closed(&mut stream, Duration::from_secs(20))
            .await
            .expect("an answer");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{host}: {answer}"
        );
    }
}
