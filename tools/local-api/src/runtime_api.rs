//! A loopback stand-in for the Lambda Runtime API (`/2018-06-01/runtime/...`), the interface a
//! custom runtime such as `lambda_runtime` polls for its next event, and for the Extensions API
//! (`/2020-01-01/extension/...`) that an internal extension (`lambda_extension`) registers with:
//! enough to run any Lambda binary as a child process, as Lambda would, without Docker. The
//! local server runs a team's own function behind the authorizer with it (`--extra-route`), and
//! `scripts/cold-start` times each function's init with it.
//!
//! One invocation runs at a time, as in one Lambda execution environment; others queue. As in
//! Lambda, the init phase ends once the runtime and every registered extension have asked for
//! their next event, each `INVOKE` event goes to the runtime and to every extension registered
//! for it, and the next invocation starts only once all of them have asked for their next event
//! again (an extension may keep working after the function has answered).

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

/// An extension registered through the Extensions API.
struct Extension {
    id: String,
    name: String,
    /// Registered for `INVOKE` events.
    invoke: bool,
    /// Has asked for its next event at least once: its init is over.
    polled: bool,
    /// Is waiting in `/extension/event/next`: done with the last event.
    waiting: bool,
    events: mpsc::UnboundedSender<Bytes>,
    incoming: Arc<AsyncMutex<mpsc::UnboundedReceiver<Bytes>>>,
}

#[derive(Default)]
struct State {
    in_flight: HashMap<String, oneshot::Sender<Outcome>>,
    /// The runtime has asked for an event at least once.
    runtime_polled: bool,
    /// The runtime is waiting in `/runtime/invocation/next`.
    runtime_waiting: bool,
    /// When the init phase ended: the runtime and every extension had asked for an event.
    init_done: Option<Instant>,
    init_error: Option<String>,
    extensions: Vec<Extension>,
}

impl State {
    fn settle(&mut self) {
        if self.init_done.is_none()
            && self.runtime_polled
            && self.extensions.iter().all(|e| e.polled)
        {
            self.init_done = Some(Instant::now());
        }
    }

    fn extensions_waiting(&self) -> bool {
        self.extensions.iter().all(|e| e.waiting)
    }
}

/// A Runtime API on `127.0.0.1`, on a port of its own.
pub struct RuntimeApi {
    addr: SocketAddr,
    queue: mpsc::UnboundedSender<Pending>,
    state: Arc<Mutex<State>>,
    changed: Arc<tokio::sync::Notify>,
    function_arn: String,
}

impl RuntimeApi {
    /// Starts serving; the server runs until the process ends.
    pub async fn start(function_name: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (queue, waiting) = mpsc::unbounded_channel();
        let state = Arc::new(Mutex::new(State::default()));
        let changed = Arc::new(tokio::sync::Notify::new());
        let function_arn =
            format!("arn:aws:lambda:us-east-1:000000000000:function:{function_name}");
        let server = Server {
            waiting: Arc::new(AsyncMutex::new(waiting)),
            state: state.clone(),
            changed: changed.clone(),
            function_arn: function_arn.clone(),
            function_name: function_name.to_owned(),
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
            changed,
            function_arn,
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` for the function.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The end of the function's init phase, as Lambda counts it: when the runtime and every
    /// extension registered by then had asked for their next event.
    pub async fn init_done(&self) -> Instant {
        wait_for(&self.state, &self.changed, |s| s.init_done).await
    }

    /// Waits until the execution environment is idle: the runtime and every extension are
    /// waiting for their next event, so the last invocation is over for all of them.
    pub async fn idle(&self) {
        wait_for(&self.state, &self.changed, |s| {
            (s.runtime_waiting && s.extensions_waiting()).then_some(())
        })
        .await
    }

    /// The names of the extensions registered so far.
    pub fn extensions(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.extensions.iter().map(|e| e.name.clone()).collect()
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

/// Waits until `ready` gives a value, re-checking it whenever the state changes.
async fn wait_for<T>(
    state: &Mutex<State>,
    changed: &tokio::sync::Notify,
    ready: impl Fn(&State) -> Option<T>,
) -> T {
    loop {
        // Created before the check, so a change between the check and the wait still wakes it.
        let notified = changed.notified();
        if let Some(value) = ready(&state.lock().unwrap()) {
            return value;
        }
        notified.await;
    }
}

#[derive(Clone)]
struct Server {
    waiting: Arc<AsyncMutex<mpsc::UnboundedReceiver<Pending>>>,
    state: Arc<Mutex<State>>,
    changed: Arc<tokio::sync::Notify>,
    function_arn: String,
    function_name: String,
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

fn error_reply(status: StatusCode, error_type: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
    reply(status, body.to_string())
}

const EXTENSION_ID_HEADER: &str = "lambda-extension-identifier";

impl Server {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        if let Some(rest) = path.strip_prefix("/2020-01-01/extension/") {
            return self.extension_api(rest, request).await;
        }
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

    /// `GET /runtime/invocation/next`: blocks until an event is queued and every extension is
    /// done with the last one (waits for its next event), then hands the event to the runtime
    /// and an `INVOKE` event to each extension registered for it.
    async fn next(&self) -> Response<Full<Bytes>> {
        {
            let mut state = self.state.lock().unwrap();
            state.runtime_polled = true;
            state.runtime_waiting = true;
            state.settle();
        }
        self.changed.notify_waiters();
        let Some(pending) = self.waiting.lock().await.recv().await else {
            return reply(StatusCode::INTERNAL_SERVER_ERROR, "");
        };
        wait_for(&self.state, &self.changed, |s| {
            s.extensions_waiting().then_some(())
        })
        .await;
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            + INVOCATION_TIMEOUT;
        {
            let mut state = self.state.lock().unwrap();
            state.runtime_waiting = false;
            let event = serde_json::json!({
                "eventType": "INVOKE",
                "deadlineMs": deadline.as_millis() as u64,
                "requestId": pending.id,
                "invokedFunctionArn": self.function_arn,
                "tracing": { "type": "X-Amzn-Trace-Id", "value": "" },
            })
            .to_string();
            for extension in state.extensions.iter_mut().filter(|e| e.invoke) {
                extension.waiting = false;
                let _ = extension.events.send(Bytes::from(event.clone()));
            }
            state.in_flight.insert(pending.id.clone(), pending.answer);
        }
        self.changed.notify_waiters();
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

    /// The Extensions API: `POST register`, `GET event/next`, `POST init/error`,
    /// `POST exit/error`.
    async fn extension_api(&self, rest: &str, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let method = request.method().clone();
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (name, id) = (header("lambda-extension-name"), header(EXTENSION_ID_HEADER));
        let body = match request.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return reply(StatusCode::BAD_REQUEST, ""),
        };
        match (method, rest) {
            (Method::POST, "register") => self.register(name, &body),
            (Method::GET, "event/next") => self.extension_next(id).await,
            (Method::POST, "init/error" | "exit/error") => {
                let mut state = self.state.lock().unwrap();
                let Some(extension) = state.extensions.iter().find(|e| Some(&e.id) == id.as_ref())
                else {
                    return error_reply(
                        StatusCode::FORBIDDEN,
                        "Extension.UnknownExtensionIdentifier",
                        "unknown extension identifier",
                    );
                };
                let error = format!(
                    "extension {}: {}",
                    extension.name,
                    String::from_utf8_lossy(&body)
                );
                state.init_error.get_or_insert(error);
                reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
            }
            _ => reply(StatusCode::NOT_FOUND, ""),
        }
    }

    /// `POST /extension/register`: only during the init phase, as in Lambda.
    fn register(&self, name: Option<String>, body: &[u8]) -> Response<Full<Bytes>> {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "Lambda-Extension-Name is missing",
            );
        };
        let events: Vec<String> = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| serde_json::from_value(v["events"].clone()).ok())
            .unwrap_or_default();
        let mut state = self.state.lock().unwrap();
        if state.init_done.is_some() {
            return error_reply(
                StatusCode::FORBIDDEN,
                "InvalidState",
                "extensions register during the init phase only",
            );
        }
        let id = uuid::Uuid::new_v4().to_string();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        state.extensions.push(Extension {
            id: id.clone(),
            name,
            invoke: events.iter().any(|e| e == "INVOKE"),
            polled: false,
            waiting: false,
            events: events_tx,
            incoming: Arc::new(AsyncMutex::new(events_rx)),
        });
        let body = serde_json::json!({
            "functionName": self.function_name,
            "functionVersion": "$LATEST",
            "handler": "bootstrap",
            "accountId": "000000000000",
        });
        let mut response = reply(StatusCode::OK, body.to_string());
        if let Ok(value) = id.parse() {
            response.headers_mut().insert(EXTENSION_ID_HEADER, value);
        }
        response
    }

    /// `GET /extension/event/next`: the extension is done with its last event; blocks until
    /// the next `INVOKE`.
    async fn extension_next(&self, id: Option<String>) -> Response<Full<Bytes>> {
        let incoming = {
            let mut state = self.state.lock().unwrap();
            let Some(extension) = state
                .extensions
                .iter_mut()
                .find(|e| Some(&e.id) == id.as_ref())
            else {
                return error_reply(
                    StatusCode::FORBIDDEN,
                    "Extension.UnknownExtensionIdentifier",
                    "unknown extension identifier",
                );
            };
            extension.polled = true;
            extension.waiting = true;
            let incoming = extension.incoming.clone();
            state.settle();
            incoming
        };
        self.changed.notify_waiters();
        let Some(event) = incoming.lock().await.recv().await else {
            return reply(StatusCode::INTERNAL_SERVER_ERROR, "");
        };
        let mut response = reply(StatusCode::OK, event);
        let headers = response.headers_mut();
        if let Ok(value) = uuid::Uuid::new_v4().to_string().parse() {
            headers.insert("lambda-extension-event-identifier", value);
        }
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
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
        Self::spawn_with(
            binary,
            function_name,
            env,
            Stdio::inherit(),
            Stdio::inherit(),
        )
        .await
    }

    /// As [`LambdaProcess::spawn`], with the function's stdout and stderr going where given.
    pub async fn spawn_with(
        binary: &Path,
        function_name: &str,
        env: &[(String, String)],
        stdout: Stdio,
        stderr: Stdio,
    ) -> std::io::Result<Self> {
        let command = tokio::process::Command::new(binary);
        Self::spawn_command(command, binary, function_name, env, stdout, stderr).await
    }

    /// As [`LambdaProcess::spawn_with`], but in an environment as bare as Lambda's: nothing of
    /// this process's own environment, only the variables Lambda sets for every function
    /// (`PATH`, `LANG`, `TZ`, ...), then `env`.
    pub async fn spawn_clean(
        binary: &Path,
        function_name: &str,
        env: &[(String, String)],
        stdout: Stdio,
        stderr: Stdio,
    ) -> std::io::Result<Self> {
        let mut command = tokio::process::Command::new(binary);
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin")
            .env("LANG", "en_US.UTF-8")
            .env("TZ", ":UTC")
            .env("_HANDLER", "bootstrap")
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand");
        Self::spawn_command(command, binary, function_name, env, stdout, stderr).await
    }

    async fn spawn_command(
        mut command: tokio::process::Command,
        binary: &Path,
        function_name: &str,
        env: &[(String, String)],
        stdout: Stdio,
        stderr: Stdio,
    ) -> std::io::Result<Self> {
        let api = RuntimeApi::start(function_name).await?;
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
            .stderr(stderr)
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
