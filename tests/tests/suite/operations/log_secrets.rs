//! Nothing secret in logs: the whole journey through the local API on both stores, with every
//! log line of every crate captured at trace level (through the one filter every process uses,
//! `shared::logging`, which holds the runtime, the SDK and hyper at info), and not one
//! password, token, token hash, password hash or private key in any of them.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use integration_tests::local::{LocalApi, Reply};
use integration_tests::{Harness, on_both_stores};
use serde_json::json;
use shared::tokens::token_hash;

/// Everything logged in this process so far. The subscriber is global: nextest gives each test a
/// process of its own; under `cargo test` the other tests' lines land here too.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let writer = log.clone();
        // What RUST_LOG=trace gives the local server and AWS_LAMBDA_LOG_LEVEL=TRACE a function.
        let subscriber =
            shared::logging::subscriber("trace", false, move || Capture(writer.clone()));
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        log
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Remembers every secret the journey handles.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn tokens_of(&mut self, reply: &Reply) {
        for field in ["access_token", "refresh_token"] {
            if let Some(token) = reply.json()[field].as_str() {
                self.0.push(token.to_owned());
                self.0.push(token_hash(token));
                // The signature alone is as good as the token for a replay.
                self.0.push(token.rsplit('.').next().unwrap().to_owned());
            }
        }
    }
}

on_both_stores!(the_whole_journey_logs_no_secret);

async fn the_whole_journey_logs_no_secret(h: Harness) {
    let log = captured();
    let api: LocalApi = h.serve_local_api().await;
    let email = "secret.keeper@example.com";
    let (password, new_password) = ("Tr0ub4dor&3-glacier-moth", "another long horse staple 77");
    let mut secrets = Secrets(vec![
        password.to_owned(),
        new_password.to_owned(),
        "wrong password 1".to_owned(),
    ]);
    let creds = |p: &str| json!({"email": email, "password": p});

    let registered = api
        .post_json("/auth/register", &creds(password), None)
        .await;
    assert_eq!(registered.status, 201);
    secrets.tokens_of(&registered);
    let access = registered.string("access_token");
    assert_eq!(api.get("/auth/me", Some(&access)).await.status, 200);

    let login = api.post_json("/auth/login", &creds(password), None).await;
    secrets.tokens_of(&login);
    let refresh = login.string("refresh_token");
    let rotated = api
        .post_json("/auth/refresh", &json!({"refresh_token": refresh}), None)
        .await;
    secrets.tokens_of(&rotated);
    let replayed = api
        .post_json("/auth/refresh", &json!({"refresh_token": refresh}), None)
        .await;
    assert_eq!(replayed.status, 200);
    h.clock.advance(h.config.refresh_reuse_grace_secs + 1);
    assert_eq!(
        api.post_json("/auth/refresh", &json!({"refresh_token": refresh}), None)
            .await
            .status,
        401
    );

    assert_eq!(api.get("/auth/sessions", Some(&access)).await.status, 200);
    let change = json!({"current_password": password, "new_password": new_password});
    assert_eq!(
        api.post_json("/auth/password", &change, Some(&access))
            .await
            .status,
        204
    );
    for _ in 0..6 {
        api.post_json("/auth/login", &creds("wrong password 1"), None)
            .await;
    }
    h.clock.advance(3600);
    let again = api
        .post_json("/auth/login", &creds(new_password), None)
        .await;
    assert_eq!(again.status, 200);
    secrets.tokens_of(&again);
    let again_access = again.string("access_token");
    assert_eq!(api.get("/auth/me", Some("not.a.token")).await.status, 403);
    assert_eq!(
        api.post_json("/auth/logout", &json!({"all": true}), Some(&again_access))
            .await
            .status,
        204
    );
    assert_eq!(api.get("/auth/me", Some(&again_access)).await.status, 403);

    // What the store holds is secret too.
    let user = h.store.user_by_email(email).await.unwrap().unwrap();
    secrets.0.push(user.password_hash.clone());
    secrets
        .0
        .push(user.password_hash.rsplit('$').next().unwrap().to_owned());
    let private = h.keys.signing().unwrap().private_jwk_json().unwrap();
    let private: serde_json::Value = serde_json::from_str(&private).unwrap();
    secrets.0.push(private["d"].as_str().unwrap().to_owned());

    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(text.lines().count() > 15, "the log was captured:\n{text}");
    assert!(
        text.contains("session started"),
        "service events are logged"
    );
    assert!(text.contains("token refused"), "refusals are logged");
    for secret in &secrets.0 {
        assert!(secret.len() >= 8, "a meaningful secret");
        if let Some(line) = text.lines().find(|line| line.contains(secret.as_str())) {
            panic!("a secret is in the log: {line}");
        }
    }
}

/// The register function's own binary, as Lambda runs it: its `lambda_runtime` loop polls a
/// small Runtime API on loopback (this test's), receives the raw event with the password, and
/// answers with the tokens. Everything it prints, at `AWS_LAMBDA_LOG_LEVEL=TRACE` and
/// `RUST_LOG=trace`, is read back, and no secret is in it. (At trace the runtime itself would log
/// each raw event: "raw JSON event received from Lambda".)
#[tokio::test(flavor = "multi_thread")]
async fn the_register_function_logs_no_secret_at_trace_through_its_own_runtime() {
    use integration_tests::rie::{dynamodb_endpoint, repository};

    // Built with the workspace's features, as scripts/test builds it: `cargo build -p register`
    // alone would unify features differently and rebuild half the dependency tree.
    let binary = integration_tests::rie::binaries().join("register");
    let endpoint = dynamodb_endpoint();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (users, sessions, history) = (
        format!("users-{id}"),
        format!("sessions-{id}"),
        format!("history-{id}"),
    );
    let client = shared::DynamoStore::client_for_endpoint(&endpoint).await;
    let store = shared::DynamoStore::new(client, &users, &sessions, &history);
    store
        .create_tables()
        .await
        .expect("tables in DynamoDB Local");

    let (email, password) = ("runtime.path@example.com", "Tr0ub4dor&3-runtime-moth");
    let mut event: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repository().join("events/register.json")).unwrap(),
    )
    .unwrap();
    event["body"] = json!(json!({"email": email, "password": password}).to_string());
    event["headers"]["content-length"] = json!(event["body"].as_str().unwrap().len().to_string());
    let runtime = runtime_api::RuntimeApi::start(event.to_string()).await;

    // env.json's parameters, as `sam local` gives them, with this test's tables and endpoints.
    let env: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repository().join("env.json")).unwrap())
            .unwrap();
    let mut command = tokio::process::Command::new(&binary);
    for (name, value) in env["Parameters"].as_object().unwrap() {
        command.env(name, value.as_str().unwrap());
    }
    let signing_jwk = env["Parameters"]["JWT_SIGNING_KEY"]
        .as_str()
        .unwrap()
        .to_owned();
    command
        .env("USERS_TABLE", &users)
        .env("SESSIONS_TABLE", &sessions)
        .env("HISTORY_TABLE", &history)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &endpoint)
        // Mail goes nowhere: the test is about the logs of the request, not the mail.
        .env("AWS_ENDPOINT_URL_SESV2", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_LAMBDA_RUNTIME_API", &runtime.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "register")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_LEVEL", "TRACE")
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("start the register function");
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let read = |mut pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
        tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut text).await;
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let (stdout, stderr) = (read(Box::new(stdout)), read(Box::new(stderr)));

    let answer = tokio::time::timeout(std::time::Duration::from_secs(60), runtime.response())
        .await
        .expect("the function answered its invocation");
    child.kill().await.unwrap();
    let output = format!("{}{}", stdout.await.unwrap(), stderr.await.unwrap());

    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["statusCode"], 201, "{answer}\n{output}");
    let body: serde_json::Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    let mut secrets = vec![password.to_owned()];
    for field in ["access_token", "refresh_token"] {
        let token = body[field].as_str().unwrap();
        secrets.push(token.to_owned());
        secrets.push(token_hash(token));
        secrets.push(token.rsplit('.').next().unwrap().to_owned());
    }
    let user = shared::store::UserStore::user_by_email(&store, email)
        .await
        .unwrap()
        .unwrap();
    secrets.push(user.password_hash.clone());
    secrets.push(user.password_hash.rsplit('$').next().unwrap().to_owned());
    let signing: serde_json::Value = serde_json::from_str(&signing_jwk).unwrap();
    secrets.push(signing["d"].as_str().unwrap().to_owned());

    assert!(
        output.contains("session started"),
        "the function's own events are logged:\n{output}"
    );
    assert!(
        output
            .lines()
            .any(|line| line.contains("DEBUG") && line.contains("answered status=201")),
        "the function logs below info, as asked:\n{output}"
    );
    for secret in &secrets {
        if let Some(line) = output.lines().find(|line| line.contains(secret.as_str())) {
            panic!("a secret is in the function's log: {line}");
        }
    }
}

/// Just enough of Lambda's Runtime API (and of its Extensions API, which the function's mail
/// extension registers with) to deliver one invocation and take its answer.
mod runtime_api {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    pub struct RuntimeApi {
        pub address: String,
        responses: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
    }

    impl RuntimeApi {
        pub async fn start(event: String) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap().to_string();
            let (sender, receiver) = mpsc::unbounded_channel();
            let pending = Arc::new(Mutex::new(Some(event)));
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (pending, sender) = (pending.clone(), sender.clone());
                    tokio::spawn(async move {
                        let service = service_fn(
                            move |request: hyper::Request<hyper::body::Incoming>| {
                                let (pending, sender) = (pending.clone(), sender.clone());
                                async move {
                                    let path = request.uri().path().to_owned();
                                    let mut response = hyper::Response::builder().status(200);
                                    let body = if path == "/2018-06-01/runtime/invocation/next" {
                                        let next = pending.lock().unwrap().take();
                                        match next {
                                            Some(event) => {
                                                response = response
                                                .header("lambda-runtime-aws-request-id", "c0ffee00-0000-4000-8000-000000000001")
                                                .header("lambda-runtime-deadline-ms", (now_ms() + 30_000).to_string())
                                                .header("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:register");
                                                event
                                            }
                                            // One invocation only: later polls wait for ever.
                                            None => std::future::pending().await,
                                        }
                                    } else if path.starts_with("/2018-06-01/runtime/invocation/")
                                        || path == "/2018-06-01/runtime/init/error"
                                    {
                                        let bytes =
                                            request.into_body().collect().await.unwrap().to_bytes();
                                        let _ = sender
                                            .send(String::from_utf8_lossy(&bytes).into_owned());
                                        response = response.status(202);
                                        String::from("{}")
                                    } else if path == "/2020-01-01/extension/register" {
                                        response =
                                            response.header("lambda-extension-identifier", "ext-1");
                                        String::from(
                                            r#"{"functionName":"register","functionVersion":"$LATEST","handler":"bootstrap"}"#,
                                        )
                                    } else {
                                        // The extension's next event: never, the test ends first.
                                        std::future::pending().await
                                    };
                                    Ok::<_, Infallible>(
                                        response.body(Full::new(Bytes::from(body))).unwrap(),
                                    )
                                }
                            },
                        );
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            Self {
                address,
                responses: tokio::sync::Mutex::new(receiver),
            }
        }

        /// The body the function posted for its invocation (or its init error).
        pub async fn response(&self) -> String {
            self.responses.lock().await.recv().await.unwrap()
        }
    }

    fn now_ms() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    }
}
