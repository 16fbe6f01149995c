//! A loopback stand-in for the Lambda Runtime API (`/2018-06-01/runtime/...`), the interface a
//! custom runtime such as `lambda_runtime` polls for its next event: enough to run any Lambda
//! binary as a child process, as Lambda would, without Docker. The local server runs a team's
//! own function behind the authorizer with it (`--extra-route`), and `scripts/cold-start` times
//! each function's start to its first poll with it.
//!
//! One invocation runs at a time, as in one Lambda execution environment; others queue.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};

/// How long a function may run before its invocation fails, as its `Timeout` would.
pub const INVOCATION_TIMEOUT: Duration = Duration::from_secs(30);

/// What a function answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `POST /runtime/invocation/{id}/response`: the function's result.
    Response(Bytes),
    /// `POST /runtime/invocation/{id}/error`: an error the function reported.
    Error(Bytes),
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function failed to start: {0}")]
    InitFailed(String),
    #[error("the function did not answer within {INVOCATION_TIMEOUT:?}")]
    Timeout,
    #[error("the Runtime API stopped")]
    Stopped,
}

struct Pending {
    id: String,
    event: Bytes,
    answer: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct State {
    in_flight: HashMap<String, oneshot::Sender<Outcome>>,
    first_poll: Option<Instant>,
    init_error: Option<String>,
}

/// A Runtime API on `127.0.0.1`, on a port of its own.
pub struct RuntimeApi {
    addr: SocketAddr,
    queue: mpsc::UnboundedSender<Pending>,
    state: Arc<Mutex<State>>,
    first_poll: Arc<tokio::sync::Notify>,
    function_arn: String,
}

impl RuntimeApi {
    /// Starts serving; the server runs until the process ends.
    pub async fn start(function_name: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (queue, waiting) = mpsc::unbounded_channel();
        let state = Arc::new(Mutex::new(State::default()));
        let first_poll = Arc::new(tokio::sync::Notify::new());
        let function_arn =
            format!("arn:aws:lambda:us-east-1:000000000000:function:{function_name}");
        let server = Server {
            waiting: Arc::new(AsyncMutex::new(waiting)),
            state: state.clone(),
            first_poll: first_poll.clone(),
            function_arn: function_arn.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let server = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.handle(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            queue,
            state,
            first_poll,
            function_arn,
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` for the function.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// When the function first asked for an event: the end of its init phase.
    pub async fn first_poll(&self) -> Instant {
        loop {
            let notified = self.first_poll.notified();
            if let Some(at) = self.state.lock().unwrap().first_poll {
                return at;
            }
            notified.await;
        }
    }

    /// The error the function reported at start (`/runtime/init/error`), if any.
    pub fn init_error(&self) -> Option<String> {
        self.state.lock().unwrap().init_error.clone()
    }

    /// Hands `event` to the function and waits for its answer.
    pub async fn invoke(&self, event: Bytes) -> Result<Outcome, InvokeError> {
        let (answer, answered) = oneshot::channel();
        let id = uuid::Uuid::new_v4().to_string();
        self.queue
            .send(Pending { id, event, answer })
            .map_err(|_| InvokeError::Stopped)?;
        match tokio::time::timeout(INVOCATION_TIMEOUT, answered).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(InvokeError::Stopped),
            Err(_) => Err(match self.init_error() {
                Some(error) => InvokeError::InitFailed(error),
                None => InvokeError::Timeout,
            }),
        }
    }

    /// The ARN the function sees as its own.
    pub fn function_arn(&self) -> &str {
        &self.function_arn
    }
}

#[derive(Clone)]
struct Server {
    waiting: Arc<AsyncMutex<mpsc::UnboundedReceiver<Pending>>>,
    state: Arc<Mutex<State>>,
    first_poll: Arc<tokio::sync::Notify>,
    function_arn: String,
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

impl Server {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
            return reply(StatusCode::NOT_FOUND, "");
        };
        let method = request.method().clone();
        let body = match request.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return reply(StatusCode::BAD_REQUEST, ""),
        };
        match (method, rest.split('/').collect::<Vec<_>>().as_slice()) {
            (Method::GET, ["invocation", "next"]) => self.next().await,
            (Method::POST, ["invocation", id, "response"]) => {
                self.finish(id, Outcome::Response(body))
            }
            (Method::POST, ["invocation", id, "error"]) => self.finish(id, Outcome::Error(body)),
            (Method::POST, ["init", "error"]) => {
                self.state.lock().unwrap().init_error =
                    Some(String::from_utf8_lossy(&body).into_owned());
                reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
            }
            _ => reply(StatusCode::NOT_FOUND, ""),
        }
    }

    /// `GET /runtime/invocation/next`: blocks until an event is queued.
    async fn next(&self) -> Response<Full<Bytes>> {
        {
            let mut state = self.state.lock().unwrap();
            if state.first_poll.is_none() {
                state.first_poll = Some(Instant::now());
                self.first_poll.notify_waiters();
            }
        }
        let Some(pending) = self.waiting.lock().await.recv().await else {
            return reply(StatusCode::INTERNAL_SERVER_ERROR, "");
        };
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            + INVOCATION_TIMEOUT;
        self.state
            .lock()
            .unwrap()
            .in_flight
            .insert(pending.id.clone(), pending.answer);
        let mut response = reply(StatusCode::OK, pending.event);
        let headers = response.headers_mut();
        let pairs = [
            ("lambda-runtime-aws-request-id", pending.id),
            (
                "lambda-runtime-deadline-ms",
                deadline.as_millis().to_string(),
            ),
            (
                "lambda-runtime-invoked-function-arn",
                self.function_arn.clone(),
            ),
            ("content-type", "application/json".to_owned()),
        ];
        for (name, value) in pairs {
            if let Ok(value) = value.parse() {
                headers.insert(name, value);
            }
        }
        response
    }

    fn finish(&self, id: &str, outcome: Outcome) -> Response<Full<Bytes>> {
        match self.state.lock().unwrap().in_flight.remove(id) {
            Some(answer) => {
                let _ = answer.send(outcome);
                reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
            }
            None => reply(
                StatusCode::BAD_REQUEST,
                r#"{"errorType":"InvalidRequestID"}"#,
            ),
        }
    }
}

/// A Lambda binary running as a child process against its own [`RuntimeApi`].
pub struct LambdaProcess {
    pub api: RuntimeApi,
    pub child: tokio::process::Child,
    pub started: Instant,
    pub binary: PathBuf,
}

impl LambdaProcess {
    /// Starts `binary` with the variables Lambda sets for every function, then `env` (which
    /// wins), stdout and stderr inherited.
    pub async fn spawn(
        binary: &Path,
        function_name: &str,
        env: &[(String, String)],
    ) -> std::io::Result<Self> {
        Self::spawn_with(binary, function_name, env, Stdio::inherit()).await
    }

    pub async fn spawn_with(
        binary: &Path,
        function_name: &str,
        env: &[(String, String)],
        stdout: Stdio,
    ) -> std::io::Result<Self> {
        let api = RuntimeApi::start(function_name).await?;
        let mut command = tokio::process::Command::new(binary);
        command
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function_name}"),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(stdout)
            .kill_on_drop(true);
        let started = Instant::now();
        let child = command.spawn()?;
        Ok(Self {
            api,
            child,
            started,
            binary: binary.to_owned(),
        })
    }
}
