//! `scripts/cold-start`'s driver. For each Lambda binary, many times over: start it against a
//! loopback Runtime API (`local_api::runtime_api`), and measure
//! - init: from the process's start to its first poll of `/runtime/invocation/next`;
//! - init CPU: the CPU time (user + system, all threads) the process used by then;
//! - the first invocation (its first store call included) and a warm one;
//! - peak RSS (`VmHWM`) after both.
//!
//! Medians are printed as a Markdown table, beside `hello-lambda`, the floor.
//!
//! ```text
//! cold-start --bin-dir target/release --dynamodb http://127.0.0.1:PORT [--starts 21] [NAME...]
//! ```

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use local_api::runtime_api::{LambdaProcess, Outcome};
use serde_json::{Value, json};
use shared::routes::{Function, ROUTES};

const FLOOR: &str = "hello-lambda";

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
fn sample_event(function: Function) -> Value {
    let mut names: Vec<PathBuf> = std::fs::read_dir(repository().join("events"))
        .expect("events/")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for path in names {
        let event: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
        let of = if event.get("methodArn").is_some() || event.get("identitySource").is_some() {
            Some(Function::Authorizer)
        } else {
            let key = event["routeKey"].as_str().unwrap_or_default();
            ROUTES.iter().find(|r| r.key() == key).map(|r| r.function)
        };
        if of == Some(function) {
            return event;
        }
    }
    panic!("events/: no sample event for {}", function.binary());
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

async fn invoke(process: &LambdaProcess, event: &Value) -> f64 {
    let started = Instant::now();
    match process.api.invoke(Bytes::from(event.to_string())).await {
        Ok(Outcome::Response(_)) | Ok(Outcome::Error(_)) => {}
        Err(e) => panic!("{}: {e}", process.binary.display()),
    }
    started.elapsed().as_secs_f64() * 1000.0
}

async fn measure(binary: &Path, env: &[(String, String)], event: &Value) -> Sample {
    let name = binary.file_name().unwrap().to_string_lossy().into_owned();
    let mut process = LambdaProcess::spawn_with(binary, &name, env, Stdio::null())
        .await
        .expect("start the function");
    let pid = process.child.id().expect("a running process");
    let polled = tokio::time::timeout(Duration::from_secs(30), process.api.first_poll())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{name} never polled for an event: {:?}",
                process.api.init_error()
            )
        });
    let init_cpu = cpu_time(pid).unwrap_or_default();
    let init = polled - process.started;
    let first_ms = invoke(&process, &fresh(event.clone())).await;
    let warm_ms = invoke(&process, &fresh(event.clone())).await;
    let sample = Sample {
        init_ms: init.as_secs_f64() * 1000.0,
        init_cpu_ms: init_cpu.as_secs_f64() * 1000.0,
        first_ms,
        warm_ms,
        peak_rss_mb: peak_rss_mb(pid),
    };
    let _ = process.child.start_kill();
    let _ = process.child.wait().await;
    sample
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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut bin_dir = PathBuf::from("target/release");
    let mut dynamodb = None;
    let mut starts = 21usize;
    let mut only = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bin-dir" => bin_dir = args.next().expect("--bin-dir DIR").into(),
            "--dynamodb" => dynamodb = args.next(),
            "--starts" => {
                starts = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--starts N")
            }
            name => only.push(name.to_owned()),
        }
    }
    let dynamodb = dynamodb.expect("--dynamodb URL (DynamoDB Local)");

    let key = shared::SigningKey::generate("bench").expect("a key");
    let public = json!({ "keys": [key.public_jwk()] }).to_string();
    let env: Vec<(String, String)> = [
        ("USERS_TABLE", "bench-users"),
        ("SESSIONS_TABLE", "bench-sessions"),
        ("JWT_ISSUER", "https://auth.bench.example"),
        ("JWT_AUDIENCE", "https://api.bench.example"),
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
        ("JWT_PUBLIC_KEYS", public.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([(
        "JWT_SIGNING_KEY".to_owned(),
        key.private_jwk_json().expect("the private JWK"),
    )])
    .collect();
    let client = shared::DynamoStore::client_for_endpoint(&dynamodb).await;
    shared::DynamoStore::new(client, "bench-users", "bench-sessions")
        .create_tables()
        .await
        .expect("create the benchmark's tables");

    let mut targets: Vec<(String, Value)> = vec![(FLOOR.to_owned(), json!({}))];
    targets.extend(
        Function::ALL
            .iter()
            .map(|f| (f.binary().to_owned(), sample_event(*f))),
    );
    if !only.is_empty() {
        targets.retain(|(name, _)| name == FLOOR || only.contains(name));
    }

    println!(
        "{starts} starts each, interleaved; load average before: {}",
        load()
    );
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); targets.len()];
    // Round-robin, so a burst of load elsewhere hits every binary alike.
    for _ in 0..starts {
        for (i, (name, event)) in targets.iter().enumerate() {
            samples[i].push(measure(&bin_dir.join(name), &env, event).await);
        }
    }
    println!("load average after: {}\n", load());

    let floor_init = median(samples[0].iter().map(|s| s.init_ms).collect());
    println!(
        "| function | init (ms) | init over the floor (ms) | init CPU (ms) | first invocation (ms) | warm invocation (ms) | peak RSS (MB) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for ((name, _), samples) in targets.iter().zip(&samples) {
        let m = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
        let init = m(|s| s.init_ms);
        println!(
            "| `{name}` | {init:.2} | {:+.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            init - floor_init,
            m(|s| s.init_cpu_ms),
            m(|s| s.first_ms),
            m(|s| s.warm_ms),
            m(|s| s.peak_rss_mb),
        );
    }
}
