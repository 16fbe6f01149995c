//! Store faults: DynamoDB unreachable, DynamoDB throttling past the SDK's retries, and DynamoDB
//! Local stopped and started in the middle of registrations. Every route answers
//! `503 service_unavailable` with `Retry-After` within a bound below the Lambda timeout, and a
//! registration is all or nothing.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use integration_tests::{Harness, test_config};
use lambda_http::{Body, Response};
use serde_json::{Value, json};
use shared::authorizer;
use shared::handlers::Published;
use shared::http::body_bytes;
use shared::model::TokenType;
use shared::{AuthService, Password};
use tokio::net::TcpListener;

/// Well below the functions' 10-second Lambda timeout.
const ANSWER_WITHIN: Duration = Duration::from_secs(9);

fn event(method: &str, path: &str, body: Option<Value>, path_id: Option<&str>) -> Value {
    let mut event = json!({
        "version": "2.0", "routeKey": format!("{method} {path}"), "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "api.example.com"},
        "requestContext": {
            "http": {"method": method, "path": path, "sourceIp": "203.0.113.77"},
            "requestId": "fault", "routeKey": format!("{method} {path}"), "stage": "$default",
            "authorizer": {"lambda": {"user_id": "6f1d0c52-8d0e-4c55-9a34-2b8f3c1e7a10",
                                       "user_email": "x@example.com",
                                       "session_id": "0c4b2f6e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"}}
        },
        "isBase64Encoded": false,
    });
    if let Some(body) = body {
        event["body"] = json!(body.to_string());
    }
    if let Some(id) = path_id {
        event["pathParameters"] = json!({"id": id});
    }
    event
}

/// Awaits a handler, failing the test if it takes longer than the bound.
async fn within(answer: impl std::future::Future<Output = Response<Body>>) -> Response<Body> {
    tokio::time::timeout(ANSWER_WITHIN, answer)
        .await
        .expect("answered within the bound")
}

/// Every route with a request that must reach the store, each answered within the bound.
async fn every_route(h: &Harness) -> Vec<(&'static str, Response<Body>)> {
    let creds = json!({"email": "fault@example.com", "password": "correct horse battery staple"});
    let refresh = json!({"refresh_token": h.mint_token_for_unknown_session(TokenType::Refresh)});
    let change = json!({
        "current_password": "correct horse battery staple",
        "new_password": "another long horse staple 77",
    });
    let session = Some("9c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f");
    let routes = [
        (
            "register",
            event("POST", "/auth/register", Some(creds.clone()), None),
        ),
        ("login", event("POST", "/auth/login", Some(creds), None)),
        (
            "refresh",
            event("POST", "/auth/refresh", Some(refresh), None),
        ),
        ("logout", event("POST", "/auth/logout", None, None)),
        (
            "logout all",
            event("POST", "/auth/logout", Some(json!({"all": true})), None),
        ),
        (
            "password",
            event("POST", "/auth/password", Some(change), None),
        ),
        ("me", event("GET", "/auth/me", None, None)),
        ("sessions", event("GET", "/auth/sessions", None, None)),
        (
            "revoke",
            event("DELETE", "/auth/sessions/{id}", None, session),
        ),
    ];
    let mut answers = Vec::new();
    for (route, event) in routes {
        let service: &AuthService = &h.service;
        let answer = within(integration_tests::invoke(service, &event)).await;
        answers.push((route, answer));
    }
    answers
}

async fn assert_every_route_is_unavailable(h: &Harness) {
    for (route, response) in every_route(h).await {
        let body: Value =
            serde_json::from_slice(body_bytes(response.body())).unwrap_or(Value::Null);
        assert_eq!(response.status(), 503, "{route}: {body}");
        assert_eq!(body["code"], "service_unavailable", "{route}");
        assert!(response.headers().contains_key("retry-after"), "{route}");
        assert!(
            !body.to_string().contains("127.0.0.1"),
            "{route}: no internals in {body}"
        );
    }
    // The authorizer cannot decide: an error (API Gateway answers 500), never a silent allow.
    let token = h.mint_token_for_unknown_session(TokenType::Access);
    let v2 = json!({"version": "2.0", "type": "REQUEST", "identitySource": [format!("Bearer {token}")],
                    "headers": {}, "requestContext": {"http": {"method": "GET", "path": "/auth/me"}}});
    let decision = tokio::time::timeout(ANSWER_WITHIN, authorizer::handle(&h.service, v2))
        .await
        .unwrap();
    assert_eq!(decision, Err(authorizer::AuthorizerError::Unavailable));
    // The key routes need no store at all.
    let discovery = Published::new(&h.config.issuer, &h.keys);
    let jwks = integration_tests::invoke(
        &discovery,
        &event("GET", "/.well-known/jwks.json", None, None),
    )
    .await;
    assert_eq!(jwks.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_503_when_dynamodb_is_unreachable() {
    let h = Harness::unreachable_dynamo(test_config()).await;
    assert_every_route_is_unavailable(&h).await;
}

/// A DynamoDB endpoint that answers every request with throttling, counting them.
async fn throttling_endpoint() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async {
                        let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"Rate of requests exceeds the allowed throughput."}"#;
                        let response = hyper::Response::builder()
                            .status(400)
                            .header("content-type", "application/x-amz-json-1.0")
                            .header("x-amzn-requestid", "THROTTLED")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, requests)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_503_when_dynamodb_keeps_throttling() {
    let (addr, requests) = throttling_endpoint().await;
    let h = Harness::dynamo_at(&format!("http://{addr}"), test_config()).await;
    let login = json!({"email": "fault@example.com", "password": "correct horse battery staple"});
    let first = integration_tests::invoke(
        &*h.service,
        &event("POST", "/auth/login", Some(login), None),
    )
    .await;
    assert_eq!(first.status(), 503);
    assert!(
        requests.load(Ordering::SeqCst) >= 2,
        "the SDK retried before giving up"
    );
    assert_every_route_is_unavailable(&h).await;
}

// ------------------------------------------------------------------ interrupted registrations

/// A DynamoDB Local of this test's own, on disk so that a restart keeps its data.
struct DedicatedDynamo {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl DedicatedDynamo {
    fn jar_dir() -> std::path::PathBuf {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/dynamodb-local");
        assert!(
            dir.join("DynamoDBLocal.jar").exists(),
            "DynamoDB Local is not installed: run scripts/test"
        );
        dir
    }

    fn start(port: u16, dir: tempfile::TempDir) -> Self {
        let jars = Self::jar_dir();
        let child = Command::new("java")
            .arg(format!(
                "-Djava.library.path={}",
                jars.join("DynamoDBLocal_lib").display()
            ))
            .arg("-jar")
            .arg(jars.join("DynamoDBLocal.jar"))
            .args([
                "-sharedDb",
                "-disableTelemetry",
                "-port",
                &port.to_string(),
                "-dbPath",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start DynamoDB Local");
        Self { child, port, dir }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_until_ready(&self, client: &aws_sdk_dynamodb::Client) {
        for _ in 0..300 {
            if client.list_tables().send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("DynamoDB Local did not start");
    }

    /// Kills it at once, as a crash would.
    fn kill(mut self) -> tempfile::TempDir {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.dir
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_registration_leaves_the_whole_user_or_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dynamo = DedicatedDynamo::start(port, tempfile::tempdir().unwrap());
    let h = Harness::dynamo_at(&dynamo.endpoint(), test_config()).await;
    let client = shared::DynamoStore::client_for_endpoint(&dynamo.endpoint()).await;
    dynamo.wait_until_ready(&client).await;
    shared::DynamoStore::new(
        client.clone(),
        &h.config.users_table,
        &h.config.sessions_table,
        &h.config.history_table,
    )
    .create_tables()
    .await
    .unwrap();

    // Registrations trickle in (Argon2 runs two at a time) while DynamoDB Local dies.
    let emails: Vec<String> = (0..40).map(|i| format!("crash{i}@example.com")).collect();
    let attempts: Vec<_> = emails
        .iter()
        .map(|email| {
            let (service, email) = (h.service.clone(), email.clone());
            tokio::spawn(async move {
                service
                    .register(&email, &Password::new("correct horse battery staple"), None)
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let dir = dynamo.kill();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.unwrap());
    }
    let created = outcomes.iter().filter(|o| o.is_ok()).count();
    let unavailable = outcomes
        .iter()
        .filter(|o| matches!(o, Err(shared::AuthError::Unavailable(_))))
        .count();
    assert_eq!(created + unavailable, emails.len(), "{outcomes:?}");
    assert!(unavailable > 0, "the crash interrupted some registrations");

    // Back up on the same data.
    let dynamo = DedicatedDynamo::start(port, dir);
    dynamo.wait_until_ready(&client).await;

    // Every email has both its guard and its user, pointing at each other, or neither.
    let users = scan(&client, &h.config.users_table).await;
    for email in &emails {
        let guard = users
            .iter()
            .find(|item| item["pk"] == json!(format!("EMAIL#{email}")));
        match guard {
            Some(guard) => {
                let user_id = guard["user_id"].as_str().unwrap();
                let user = users
                    .iter()
                    .find(|item| item["pk"] == json!(format!("USER#{user_id}")));
                assert!(
                    user.is_some_and(|u| u["email"] == json!(email)),
                    "guard without its user: {email}"
                );
            }
            None => assert!(
                !users.iter().any(|item| item["email"] == json!(email)),
                "user without its guard: {email}"
            ),
        }
    }
    let stored_users = users
        .iter()
        .filter(|item| {
            item["pk"]
                .as_str()
                .is_some_and(|pk| pk.starts_with("USER#"))
        })
        .count();
    assert_eq!(stored_users, created);

    // The interrupted ones can simply register again: no orphaned guard holds their address.
    for (email, outcome) in emails.iter().zip(&outcomes) {
        if outcome.is_err() {
            h.service
                .register(email, &Password::new("correct horse battery staple"), None)
                .await
                .unwrap();
        }
    }
    drop(dynamo.kill());
}

/// Every item of a table, as JSON with plain values.
async fn scan(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Value> {
    let mut pages = client
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send();
    let mut items = Vec::new();
    while let Some(item) = pages.next().await {
        let item = item.unwrap();
        let mut object = serde_json::Map::new();
        for (name, value) in item {
            let plain = match value {
                aws_sdk_dynamodb::types::AttributeValue::S(s) => json!(s),
                aws_sdk_dynamodb::types::AttributeValue::N(n) => json!(n),
                aws_sdk_dynamodb::types::AttributeValue::Bool(b) => json!(b),
                other => json!(format!("{other:?}")),
            };
            object.insert(name, plain);
        }
        items.push(Value::Object(object));
    }
    items
}
