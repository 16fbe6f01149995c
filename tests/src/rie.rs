//! The Lambda functions as AWS runs them: each function's real binary under AWS's Runtime
//! Interface Emulator (the program `sam local` runs inside its container, shipped in the
//! aws-sam-cli package that `scripts/python-tools` installs), with the environment the SAM CLI
//! itself resolves from `template.yaml` and `env.json` (`scripts/sam-local-env`).
//!
//! Nothing here skips: without the emulator, the SAM CLI or DynamoDB Local a test fails and
//! says how to get them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The emulator binary for this machine, from the SAM CLI in `.venv/`.
pub fn emulator() -> PathBuf {
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    };
    let lib = repository().join(".venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries.flatten().find_map(|python| {
            let path = python.path().join(format!(
                "site-packages/samcli/local/rapid/aws-lambda-rie-{arch}"
            ));
            path.is_file().then_some(path)
        })
    });
    found.unwrap_or_else(|| {
        panic!(
            "AWS's Runtime Interface Emulator is missing: no .venv/lib/python*/site-packages/\
             samcli/local/rapid/aws-lambda-rie-{arch}. Run scripts/python-tools (scripts/test does)."
        )
    })
}

/// Where this test build's binaries are (`target/debug`), built first if needed: the functions'
/// binaries and the example's, in the profile and features of the test build itself, so that
/// this is a no-op after `scripts/test`'s build.
pub fn binaries() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--workspace", "--bins", "--locked", "--quiet"])
            .current_dir(repository())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --workspace --bins failed");
        // This test is target/<profile>/deps/<name>; the binaries are in target/<profile>.
        let exe = std::env::current_exe().expect("the test's path");
        exe.parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_owned()
    })
    .clone()
}

/// One function as `sam local` would run it.
#[derive(Debug, Clone)]
pub struct SamFunction {
    pub logical_id: String,
    pub binary: String,
    pub environment: BTreeMap<String, String>,
}

/// Every function of `template.yaml` with the environment the SAM CLI's own code gives it for
/// `--env-vars env.json` (`scripts/sam-local-env`), by binary.
pub fn sam_local_functions() -> BTreeMap<String, SamFunction> {
    let output = std::process::Command::new(repository().join("scripts/sam-local-env"))
        .arg("env.json")
        .current_dir(repository())
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/sam-local-env");
    assert!(
        output.status.success(),
        "scripts/sam-local-env failed (it needs the SAM CLI: scripts/python-tools)"
    );
    let resolved: BTreeMap<String, Value> =
        serde_json::from_slice(&output.stdout).expect("scripts/sam-local-env prints JSON");
    resolved
        .into_iter()
        .map(|(logical_id, function)| {
            let binary = function["binary"]
                .as_str()
                .unwrap_or_else(|| panic!("template.yaml: {logical_id} has no Binary"))
                .to_owned();
            let environment = serde_json::from_value(function["environment"].clone())
                .expect("an environment of strings");
            (
                binary.clone(),
                SamFunction {
                    logical_id,
                    binary,
                    environment,
                },
            )
        })
        .collect()
}

/// The DynamoDB Local that the test command started.
pub fn dynamodb_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| {
        panic!(
            "DynamoDB Local is not running: AWS_ENDPOINT_URL_DYNAMODB is unset. \
             Run the tests with scripts/test, which installs and starts it."
        )
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// A function's binary running under the emulator, on loopback ports of its own.
pub struct RieFunction {
    pub name: String,
    addr: SocketAddr,
    output: Arc<Mutex<Vec<String>>>,
    _child: tokio::process::Child,
}

impl RieFunction {
    /// Starts `binary` under the emulator with exactly `environment` (nothing inherited).
    pub async fn start(name: &str, binary: &Path, environment: &BTreeMap<String, String>) -> Self {
        assert!(
            binary.is_file(),
            "{} is missing: build it with cargo build --workspace --bins",
            binary.display()
        );
        let port = free_port();
        let runtime_port = free_port();
        let mut child = tokio::process::Command::new(emulator())
            .args([
                "--log-level",
                "error",
                "--runtime-interface-emulator-address",
                &format!("127.0.0.1:{port}"),
                "--runtime-api-address",
                &format!("127.0.0.1:{runtime_port}"),
            ])
            .arg(binary)
            .env_clear()
            .envs(environment)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the Runtime Interface Emulator");
        let output = Arc::new(Mutex::new(Vec::new()));
        let lines = output.clone();
        let stdout = child.stdout.take().expect("stdout");
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines.lock().unwrap().push(line);
            }
        });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..200 {
            if TcpStream::connect(addr).await.is_ok() {
                return Self {
                    name: name.to_owned(),
                    addr,
                    output,
                    _child: child,
                };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the emulator for {name} did not listen on {addr}");
    }

    /// Invokes the function with `event`, as `sam local invoke -e` does, and returns its
    /// answer (an error the function reported is `{"errorType", "errorMessage"}`).
    pub async fn invoke(&self, event: &Value) -> Value {
        let stream = TcpStream::connect(self.addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let request = hyper::Request::post("/2015-03-31/functions/function/invocations")
            .header("host", self.addr.to_string())
            .body(Full::new(Bytes::from(event.to_string())))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), sender.send_request(request))
            .await
            .unwrap_or_else(|_| panic!("{} did not answer within 30 s", self.name))
            .expect("an answer");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!(
                "{} answered no JSON: {}\n{}",
                self.name,
                String::from_utf8_lossy(&body),
                self.output().join("\n")
            )
        })
    }

    /// Everything the function and the emulator printed so far.
    pub fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// Forgets what was printed so far (e.g. the cold start's lines).
    pub fn clear_output(&self) {
        self.output.lock().unwrap().clear();
    }
}
