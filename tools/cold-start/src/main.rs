//! `scripts/cold-start`'s driver. For each Lambda binary, many times over: start it against a
//! loopback Runtime API and Extensions API (`local_api::runtime_api`), and measure
//! - init: from the process's start to the end of its init phase, as Lambda counts it (the
//!   runtime and every extension it registered have asked for their next event);
//! - init CPU: the CPU time (user + system, all threads) the process used by then;
//! - the first invocation (its first store call included) and a warm one, each until the
//!   function answered (the mail a function sends after answering is waited for in between);
//! - peak RSS (`VmHWM`) after both, and after their extensions' work.
//!
//! Each function gets the environment `sam local --env-vars env.json` would give it: every
//! variable `template.yaml` declares for it (in `Globals` and its own), valued from `env.json`,
//! with only the loopback endpoints (DynamoDB Local, an SES v2 stand-in in this process) and
//! what Lambda itself sets (region, credentials, log format and level, memory size) put in.
//!
//! Medians are printed as a Markdown table, beside `hello-lambda`, the floor. A function that
//! fails to start or to answer is reported with its log and the driver exits non-zero.
//!
//! ```text
//! cold-start --bin-dir target/release --dynamodb http://127.0.0.1:PORT [--starts 21] [NAME...]
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use local_api::runtime_api::{LambdaProcess, Outcome, RuntimeApi};
use serde_json::{Value, json};
use serde_yaml_ng::Value as Yaml;
use shared::routes::{Function, ROUTES};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

const FLOOR: &str = "hello-lambda";
/// How long a function may take to start.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How many of a failed function's last log lines are shown.
const LOG_TAIL: usize = 40;

/// A function's environment variables.
type Env = Vec<(String, String)>;

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    init_ms: f64,
    init_cpu_ms: f64,
    first_ms: f64,
    warm_ms: f64,
    peak_rss_mb: f64,
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The CPU time a process has used so far, all its threads, exited ones included.
fn cpu_time(pid: u32) -> Option<Duration> {
    let mut clock: libc::clockid_t = 0;
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both pointers are to live locals of the right types.
    unsafe {
        if libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) != 0
            || libc::clock_gettime(clock, &mut now) != 0
        {
            return None;
        }
    }
    Some(Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// The sample event of a function, from `events/`: the authorizer's by shape, the others by
/// route.
fn sample_event(function: Function) -> Result<Value, String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(repository().join("events"))
        .map_err(|e| format!("events/: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    for path in names {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path:?}: {e}"))?;
        let event: Value = serde_json::from_str(&text).map_err(|e| format!("{path:?}: {e}"))?;
        let of = if event.get("methodArn").is_some() || event.get("identitySource").is_some() {
            Some(Function::Authorizer)
        } else {
            let key = event["routeKey"].as_str().unwrap_or_default();
            ROUTES.iter().find(|r| r.key() == key).map(|r| r.function)
        };
        if of == Some(function) {
            return Ok(event);
        }
    }
    Err(format!(
        "events/: no sample event for {}",
        function.binary()
    ))
}

/// A fresh email each time, so registrations do the same work on every start.
fn fresh(mut event: Value) -> Value {
    if let Some(body) = event["body"].as_str()
        && body.contains("@example.com")
    {
        let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
        let mut parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        if parsed.get("email").is_some() {
            parsed["email"] = json!(email);
            event["body"] = json!(parsed.to_string());
        }
    }
    // Throttling budgets per source address: one of its own per invocation.
    let id = uuid::Uuid::new_v4().into_bytes();
    let ip = format!("198.18.{}.{}", id[0], id[1]);
    if event["requestContext"]["http"].is_object() {
        event["requestContext"]["http"]["sourceIp"] = json!(ip);
    }
    event
}

// ------------------------------------------------------------------ the functions' environment

/// A scalar of the template as the text of an environment variable; `None` for an intrinsic
/// function (`!Ref`, `!GetAtt`, ...), except a `!Ref` to a parameter with a default.
fn template_scalar(value: &Yaml, parameters: Option<&Yaml>) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Tagged(tagged) if tagged.tag == "Ref" => {
            let name = tagged.value.as_str()?;
            template_scalar(parameters?.get(name)?.get("Default")?, None)
        }
        _ => None,
    }
}

/// Everything the driver needs from `template.yaml` and `env.json` to start each function as
/// `sam local` would.
struct Environments {
    /// By binary: each variable the function declares, with its value.
    functions: BTreeMap<String, Vec<(String, String)>>,
    /// By binary: the function's `MemorySize`.
    memory: BTreeMap<String, String>,
    /// What Lambda sets from `Globals.Function.LoggingConfig`.
    log_format: String,
    log_level: String,
}

impl Environments {
    fn load() -> Result<Self, String> {
        let path = repository().join("template.yaml");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("template.yaml: {e}"))?;
        let template: Yaml =
            serde_yaml_ng::from_str(&text).map_err(|e| format!("template.yaml: {e}"))?;
        let text = std::fs::read_to_string(repository().join("env.json"))
            .map_err(|e| format!("env.json: {e}"))?;
        let env_file: Value = serde_json::from_str(&text).map_err(|e| format!("env.json: {e}"))?;

        let parameters = template.get("Parameters");
        let globals = template.get("Globals").and_then(|g| g.get("Function"));
        let variables_of = |function: Option<&Yaml>| -> Vec<(String, Option<String>)> {
            function
                .and_then(|f| f.get("Environment"))
                .and_then(|e| e.get("Variables"))
                .and_then(Yaml::as_mapping)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), template_scalar(v, parameters))))
                .collect()
        };
        let global_variables = variables_of(globals);
        let scalar = |value: Option<&Yaml>| value.and_then(|v| template_scalar(v, parameters));
        let global_memory = scalar(globals.and_then(|g| g.get("MemorySize")));
        let logging = globals.and_then(|g| g.get("LoggingConfig"));
        let log_format =
            scalar(logging.and_then(|l| l.get("LogFormat"))).unwrap_or_else(|| "Text".to_owned());
        let log_level = scalar(logging.and_then(|l| l.get("ApplicationLogLevel")))
            .unwrap_or_else(|| "INFO".to_owned());

        let mut functions = BTreeMap::new();
        let mut memory = BTreeMap::new();
        let resources = template
            .get("Resources")
            .and_then(Yaml::as_mapping)
            .ok_or("template.yaml: no Resources")?;
        for (logical_id, resource) in resources {
            if resource.get("Type").and_then(Yaml::as_str) != Some("AWS::Serverless::Function") {
                continue;
            }
            let logical_id = logical_id.as_str().unwrap_or_default();
            let binary = resource
                .get("Metadata")
                .and_then(|m| m.get("BuildProperties"))
                .and_then(|b| b.get("Binary"))
                .and_then(Yaml::as_str)
                .ok_or_else(|| format!("template.yaml: {logical_id} has no Binary"))?;
            let properties = resource.get("Properties");
            // Declared variables: the function's own win over Globals'.
            let mut declared: BTreeMap<String, Option<String>> =
                global_variables.iter().cloned().collect();
            declared.extend(variables_of(properties));
            // As `sam local --env-vars`: the function's section of env.json, then Parameters,
            // then the template's own value; only for declared variables.
            let value = |name: &str, fallback: Option<String>| {
                [&env_file[logical_id], &env_file["Parameters"]]
                    .into_iter()
                    .find_map(|section| template_scalar_json(&section[name]))
                    .or(fallback)
                    .unwrap_or_default()
            };
            let env: Vec<(String, String)> = declared
                .into_iter()
                .map(|(name, fallback)| {
                    let v = value(&name, fallback);
                    (name, v)
                })
                .collect();
            functions.insert(binary.to_owned(), env);
            if let Some(size) =
                scalar(properties.and_then(|p| p.get("MemorySize"))).or(global_memory.clone())
            {
                memory.insert(binary.to_owned(), size);
            }
        }
        Ok(Self {
            functions,
            memory,
            log_format,
            log_level,
        })
    }

    /// The environment of `binary`: its declared variables, the loopback endpoints in place of
    /// env.json's (which point at Docker's host), and what Lambda sets itself.
    fn of(
        &self,
        binary: &str,
        endpoints: &[(&str, &str)],
    ) -> Result<Vec<(String, String)>, String> {
        let mut env = if binary == FLOOR {
            Vec::new()
        } else {
            self.functions.get(binary).cloned().ok_or_else(|| {
                format!("template.yaml declares no function with Binary: {binary}")
            })?
        };
        for (name, value) in endpoints {
            if let Some(entry) = env.iter_mut().find(|(n, _)| n == name) {
                entry.1 = (*value).to_owned();
            }
        }
        let memory = self.memory.get(binary).map_or("128", String::as_str);
        env.extend(
            AWS.into_iter()
                .chain([
                    ("AWS_LAMBDA_LOG_FORMAT", self.log_format.as_str()),
                    ("AWS_LAMBDA_LOG_LEVEL", self.log_level.as_str()),
                    ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory),
                ])
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        Ok(env)
    }
}

/// A value of env.json as the text of an environment variable.
fn template_scalar_json(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

// ------------------------------------------------------------------ SES v2 stand-in

/// Answers every `SendEmail` (`POST /v2/email/outbound-emails`) as SES does, keeping nothing
/// but a count. Returns its URL and the count.
async fn ses_stand_in() -> (String, Arc<AtomicUsize>) {
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

/// The last lines a function wrote, stdout and stderr together.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<VecDeque<String>>>);

impl Log {
    fn follow(
        &self,
        stream: impl AsyncRead + Unpin + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let log = self.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut tail = log.0.lock().unwrap();
                if tail.len() == LOG_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        })
    }

    fn tail(&self) -> String {
        let tail = self.0.lock().unwrap();
        if tail.is_empty() {
            return "    (nothing)".to_owned();
        }
        tail.iter()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs `step` unless the process exits first, or `limit` passes.
async fn unless_exited<T>(
    child: &mut tokio::process::Child,
    what: &str,
    limit: Duration,
    step: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::select! {
        result = tokio::time::timeout(limit, step) => {
            result.unwrap_or_else(|_| Err(format!("{what}: nothing after {limit:?}")))
        }
        status = child.wait() => Err(match status {
            Ok(status) => format!("{what}: the process exited ({status})"),
            Err(e) => format!("{what}: {e}"),
        }),
    }
}

/// What the function answered, as the table shows it; an error when it could not handle the
/// event (a runtime error, or a 5xx).
fn answer(outcome: Outcome) -> Result<String, String> {
    match outcome {
        Outcome::Response(body) => {
            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Some(status) = value["statusCode"].as_u64() {
                if status >= 500 {
                    return Err(format!(
                        "answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    ));
                }
                Ok(status.to_string())
            } else if let Some(authorized) = value["isAuthorized"].as_bool() {
                Ok(format!("isAuthorized: {authorized}"))
            } else if let Some(effect) = value["policyDocument"]["Statement"][0]["Effect"].as_str()
            {
                Ok(effect.to_owned())
            } else {
                Ok("answered".to_owned())
            }
        }
        // An authorizer refuses a token with this error, which API Gateway answers with 401.
        Outcome::Error(body)
            if serde_json::from_slice::<Value>(&body)
                .is_ok_and(|e| e["errorType"] == "Unauthorized") =>
        {
            Ok("Unauthorized".to_owned())
        }
        Outcome::Error(body) => Err(format!(
            "reported an invocation error: {}",
            String::from_utf8_lossy(&body)
        )),
    }
}

async fn measure(
    binary: &Path,
    env: &[(String, String)],
    event: &Value,
) -> Result<(Sample, String), String> {
    let name = binary.file_name().unwrap().to_string_lossy().into_owned();
    let mut process =
        LambdaProcess::spawn_clean(binary, &name, env, Stdio::piped(), Stdio::piped())
            .await
            .map_err(|e| format!("could not start {}: {e}", binary.display()))?;
    let LambdaProcess {
        api,
        child,
        started,
        ..
    } = &mut process;
    let (api, started) = (&*api, *started);
    let log = Log::default();
    let readers: Vec<_> = [
        child.stdout.take().map(|out| log.follow(out)),
        child.stderr.take().map(|err| log.follow(err)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let pid = child.id().expect("a running process");
    let result = async {
        let init_done = unless_exited(child, "init", INIT_TIMEOUT, async {
            Ok(api.init_done().await)
        })
        .await?;
        let init_cpu = cpu_time(pid).unwrap_or_default();
        let init = init_done - started;
        let first = fresh(event.clone());
        let (first_ms, first_answer) = unless_exited(
            child,
            "the first invocation",
            INIT_TIMEOUT,
            invoke(api, &first),
        )
        .await?;
        // Whatever an extension does after the answer (the outbox's mail) ends before the next
        // invocation starts, as in Lambda; it is not part of the warm invocation's time.
        let extensions = "the first invocation's extensions";
        unless_exited(child, extensions, INIT_TIMEOUT, async {
            api.idle().await;
            Ok(())
        })
        .await?;
        let warm = fresh(event.clone());
        let (warm_ms, _) = unless_exited(
            child,
            "the warm invocation",
            INIT_TIMEOUT,
            invoke(api, &warm),
        )
        .await?;
        unless_exited(
            child,
            "the warm invocation's extensions",
            INIT_TIMEOUT,
            async {
                api.idle().await;
                Ok(())
            },
        )
        .await?;
        let sample = Sample {
            init_ms: init.as_secs_f64() * 1000.0,
            init_cpu_ms: init_cpu.as_secs_f64() * 1000.0,
            first_ms,
            warm_ms,
            peak_rss_mb: peak_rss_mb(pid),
        };
        Ok::<_, String>((sample, first_answer))
    }
    .await;
    let init_error = api.init_error();
    let _ = child.start_kill();
    let _ = child.wait().await;
    if result.is_err() {
        // The last lines, up to the end of the output.
        for reader in readers {
            let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
        }
    }
    result.map_err(|e| {
        let init_error = init_error
            .map(|e| format!("\n  init error: {e}"))
            .unwrap_or_default();
        format!("{e}{init_error}\n  its last lines:\n{}", log.tail())
    })
}

async fn invoke(api: &RuntimeApi, event: &Value) -> Result<(f64, String), String> {
    let started = Instant::now();
    let outcome = api
        .invoke(Bytes::from(event.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok((ms, answer(outcome)?))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every function of `functions/`, which must all be in [`Function::ALL`].
fn functions_dir() -> Result<Vec<Function>, String> {
    let mut names: Vec<String> = std::fs::read_dir(repository().join("functions"))
        .map_err(|e| format!("functions/: {e}"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| {
            Function::from_binary(n)
                .ok_or_else(|| format!("functions/{n} is not in shared::routes::Function::ALL"))
        })
        .collect()
}

/// The region and credentials every function gets, as Lambda gives its role's. The driver
/// takes them too: DynamoDB Local keeps tables per access key and region.
const AWS: [(&str, &str); 5] = [
    ("AWS_REGION", "us-east-1"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "bench"),
    ("AWS_SECRET_ACCESS_KEY", "bench"),
    ("AWS_SESSION_TOKEN", "bench"),
];

fn main() {
    for (name, value) in AWS {
        // SAFETY: no other thread runs yet (the runtime is built below).
        unsafe { std::env::set_var(name, value) };
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("cold-start: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut bin_dir = PathBuf::from("target/release");
    let mut dynamodb = None;
    let mut starts = 21usize;
    let mut only = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bin-dir" => bin_dir = args.next().ok_or("--bin-dir DIR")?.into(),
            "--dynamodb" => dynamodb = args.next(),
            "--starts" => {
                starts = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--starts N (1 or more)")?
            }
            name => only.push(name.to_owned()),
        }
    }
    let dynamodb = dynamodb.ok_or("--dynamodb URL (DynamoDB Local)")?;

    let environments = Environments::load()?;
    let (ses, mail_sent) = ses_stand_in().await;
    let endpoints = [
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb.as_str()),
        ("AWS_ENDPOINT_URL_SESV2", ses.as_str()),
    ];

    let mut targets: Vec<(String, Value, Env)> = vec![(
        FLOOR.to_owned(),
        json!({}),
        environments.of(FLOOR, &endpoints)?,
    )];
    for function in functions_dir()? {
        let name = function.binary();
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        targets.push((
            name.to_owned(),
            sample_event(function)?,
            environments.of(name, &endpoints)?,
        ));
    }
    if let Some(unknown) = only
        .iter()
        .find(|o| !targets.iter().any(|(name, ..)| name == *o))
    {
        return Err(format!("no function {unknown} in functions/"));
    }

    // The tables every function's environment names (env.json's), made once.
    let table = |name: &str| {
        targets
            .iter()
            .flat_map(|(_, _, env)| env)
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    if let (Some(users), Some(sessions)) = (table("USERS_TABLE"), table("SESSIONS_TABLE")) {
        let client = shared::DynamoStore::client_for_endpoint(&dynamodb).await;
        shared::DynamoStore::new(client, &users, &sessions)
            .create_tables()
            .await
            .map_err(|e| format!("create the tables {users} and {sessions}: {e}"))?;
    }

    println!(
        "{starts} starts each, interleaved; load average before: {}",
        load()
    );
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); targets.len()];
    let mut answers: Vec<Option<String>> = vec![None; targets.len()];
    let mut failures: Vec<Option<String>> = vec![None; targets.len()];
    // Round-robin, so a burst of load elsewhere hits every binary alike; a function that
    // failed once is not started again.
    for _ in 0..starts {
        for (i, (name, event, env)) in targets.iter().enumerate() {
            if failures[i].is_some() {
                continue;
            }
            match measure(&bin_dir.join(name), env, event).await {
                Ok((sample, answer)) => {
                    samples[i].push(sample);
                    answers[i].get_or_insert(answer);
                }
                Err(e) => {
                    eprintln!("cold-start: {name} failed: {e}");
                    failures[i] = Some(e);
                }
            }
        }
    }
    println!("load average after: {}", load());
    println!(
        "mail sent to the SES stand-in: {}\n",
        mail_sent.load(Ordering::Relaxed)
    );

    let floor_init = if samples[0].is_empty() {
        f64::NAN
    } else {
        median(samples[0].iter().map(|s| s.init_ms).collect())
    };
    println!(
        "| function | init (ms) | init over the floor (ms) | init CPU (ms) | first invocation (ms) | warm invocation (ms) | peak RSS (MB) | first answer |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (i, (name, ..)) in targets.iter().enumerate() {
        if failures[i].is_some() {
            println!("| `{name}` | FAILED | | | | | | |");
            continue;
        }
        let samples = &samples[i];
        let m = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
        let init = m(|s| s.init_ms);
        println!(
            "| `{name}` | {init:.2} | {:+.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
            init - floor_init,
            m(|s| s.init_cpu_ms),
            m(|s| s.first_ms),
            m(|s| s.warm_ms),
            m(|s| s.peak_rss_mb),
            answers[i].as_deref().unwrap_or(""),
        );
    }
    let failed: Vec<&str> = targets
        .iter()
        .zip(&failures)
        .filter(|(_, f)| f.is_some())
        .map(|((name, ..), _)| name.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} failed: {}",
            failed.len(),
            targets.len(),
            failed.join(", ")
        ))
    }
}
