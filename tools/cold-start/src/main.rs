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

mod environment;
mod process;
mod ses;

use environment::Environments;
use process::{Log, unless_exited};
use ses::ses_stand_in;

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
    if let (Some(users), Some(sessions), Some(history)) = (
        table("USERS_TABLE"),
        table("SESSIONS_TABLE"),
        table("HISTORY_TABLE"),
    ) {
        let client = shared::DynamoStore::client_for_endpoint(&dynamodb).await;
        shared::DynamoStore::new(client, &users, &sessions, &history)
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
