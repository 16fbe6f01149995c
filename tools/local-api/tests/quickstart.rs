//! README's quickstart, run as written against the `local-api` binary: the commands a newcomer
//! pastes must work.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// A running `local-api` and everything it has printed so far.
struct Server {
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn quickstart_block() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("<!-- quickstart:start -->")
        .expect("quickstart start marker");
    let end = readme
        .find("<!-- quickstart:end -->")
        .expect("quickstart end marker");
    let block = &readme[start..end];
    let code = block.split("```sh\n").nth(1).expect("a sh code block");
    code.split("```").next().unwrap().to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the server and waits for its banner.
fn start(port: u16, data_dir: &std::path::Path, log_level: &str) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_local-api"));
    command
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
        .env("RUST_LOG", log_level);
    start_command(command, port, data_dir)
}

fn start_command(mut command: Command, port: u16, data_dir: &std::path::Path) -> Server {
    let mut child = command
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(data_dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start local-api");
    let stdout = child.stdout.take().unwrap();
    let output = Arc::new(Mutex::new(Vec::new()));
    let (banner, banner_seen) = mpsc::channel();
    let lines = output.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let is_banner = line.contains("Local API on");
            lines.lock().unwrap().push(line.clone());
            if is_banner {
                let _ = banner.send(line);
            }
        }
    });
    let line = banner_seen
        .recv_timeout(Duration::from_secs(30))
        .expect("the banner");
    assert!(line.contains(&format!("http://127.0.0.1:{port}")), "{line}");
    Server { child, output }
}

impl Server {
    fn banner(&self) -> String {
        let output = self.output.lock().unwrap();
        output
            .iter()
            .find(|l| l.contains("Local API on"))
            .cloned()
            .unwrap_or_default()
    }
}

#[test]
fn the_readme_quickstart_works_as_written() {
    let data_dir = tempfile::tempdir().unwrap();
    let work_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = start(port, data_dir.path(), "warn");

    let script = quickstart_block().replace(
        "API=http://127.0.0.1:3000",
        &format!("API=http://127.0.0.1:{port}"),
    );
    assert!(
        script.contains(&format!("127.0.0.1:{port}")),
        "the block sets API"
    );
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(work_dir.path())
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].starts_with(r#"{"user":{"id":"#)
            && lines[0].contains(r#""email":"ada@example.com""#),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(r#"{"sessions":["#) && lines[1].contains(r#""current":true"#),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], "204");
    assert_eq!(lines[3], r#"{"message":"Forbidden"}"#);
}

#[test]
fn data_survives_a_restart() {
    let data_dir = tempfile::tempdir().unwrap();
    let credentials = r#"{"email":"ada@example.com","password":"correct horse battery staple"}"#;
    let post = |port: u16, path: &str| {
        curl(&[
            "-H",
            "content-type: application/json",
            "-d",
            credentials,
            &format!("http://127.0.0.1:{port}{path}"),
        ])
    };
    let me = |port: u16, token: &str| {
        let authorization = format!("authorization: Bearer {token}");
        curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            &authorization,
            &format!("http://127.0.0.1:{port}/auth/me"),
        ])
    };

    // A user and a session, then a crash (SIGKILL) a little later: users are written durably at
    // once, sessions within a second.
    let port = free_port();
    let mut server = start(port, data_dir.path(), "warn");
    let registered: serde_json::Value =
        serde_json::from_str(&post(port, "/auth/register")).unwrap();
    let token = registered["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(port, &token), "200");
    std::thread::sleep(Duration::from_millis(1500));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let key = std::fs::read_to_string(data_dir.path().join("signing-key.json")).unwrap();

    // The same port: the issuer (and so the token's `iss`) is the server's own base URL.
    let _server = start(port, data_dir.path(), "warn");
    assert!(
        post(port, "/auth/register").contains("email_taken"),
        "the user is still there"
    );
    assert_eq!(me(port, &token), "200", "the session is still there");
    let key_now = std::fs::read_to_string(data_dir.path().join("signing-key.json")).unwrap();
    assert_eq!(key_now, key, "same signing key");
}

fn curl(args: &[&str]) -> String {
    let output = Command::new("curl")
        .arg("-s")
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn one_log_line_per_request_without_secrets_and_a_clean_stop_on_ctrl_c() {
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = start(port, data_dir.path(), "info");
    let api = format!("http://127.0.0.1:{port}");
    let password = "unlikely lantern orbit 9";
    let body = format!(r#"{{"email":"log@example.com","password":"{password}"}}"#);
    let registered = curl(&[
        "-H",
        "content-type: application/json",
        "-d",
        &body,
        &format!("{api}/auth/register"),
    ]);
    let json: serde_json::Value = serde_json::from_str(&registered).unwrap();
    let access = json["access_token"].as_str().unwrap().to_owned();
    let refresh = json["refresh_token"].as_str().unwrap().to_owned();
    curl(&[
        "-H",
        &format!("authorization: Bearer {access}"),
        &format!("{api}/auth/me"),
    ]);
    curl(&[
        "-H",
        "content-type: application/json",
        "-d",
        &format!(r#"{{"refresh_token":"{refresh}"}}"#),
        &format!("{api}/auth/refresh"),
    ]);

    // Ctrl-C.
    let status = Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    std::thread::sleep(Duration::from_millis(100));
    let output = server.output.lock().unwrap().join("\n");

    for (method, path, status) in [
        ("POST", "/auth/register", 201),
        ("GET", "/auth/me", 200),
        ("POST", "/auth/refresh", 200),
    ] {
        let line = output
            .lines()
            .find(|l| l.contains(&format!("{method} {path} {status} ")))
            .unwrap_or_else(|| panic!("no access line for {method} {path}:\n{output}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        let request_id = fields.last().unwrap();
        assert_eq!(request_id.len(), 16, "{line}");
        assert!(fields[fields.len() - 2].ends_with("ms"), "{line}");
    }
    for secret in [access.as_str(), refresh.as_str(), password, "argon2"] {
        assert!(
            !output.contains(secret),
            "the log shows a secret:\n{output}"
        );
    }
    assert!(output.contains("local-api: stopped"), "{output}");
}

#[test]
fn serves_from_dynamodb_and_creates_its_tables() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .expect("DynamoDB Local is not running: run the tests with scripts/test");
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let suffix = uuid_like();
    let mut command = Command::new(env!("CARGO_BIN_EXE_local-api"));
    command
        .args(["--dynamodb", &endpoint])
        .env("USERS_TABLE", format!("users-{suffix}"))
        .env("SESSIONS_TABLE", format!("sessions-{suffix}"))
        .env("RUST_LOG", "warn");
    let server = start_command(command, port, data_dir.path());
    assert!(
        server.banner().contains(&format!("DynamoDB at {endpoint}")),
        "{}",
        server.banner()
    );
    let status = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"email":"ddb@example.com","password":"correct horse battery staple"}"#,
        &format!("http://127.0.0.1:{port}/auth/register"),
    ]);
    assert_eq!(status, "201");
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}-{}", std::process::id())
}

/// The quickstart's first answer from a fresh clone comes after one build: README's command
/// uses the local server's own profile (no LTO, parallel codegen), which keeps the hashing
/// crates at opt-level 3, while the Lambda binaries keep the release profile.
#[test]
fn the_quickstart_builds_with_the_local_profile() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let quickstart = readme
        .split("## Quickstart")
        .nth(1)
        .and_then(|s| s.split("```sh\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("the quickstart's command");
    assert_eq!(quickstart.trim(), "cargo run --profile local -p local-api");

    let manifest = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
    let section = |name: &str| -> String {
        let header = format!("[{name}]\n");
        let start = manifest
            .find(&header)
            .unwrap_or_else(|| panic!("Cargo.toml: no [{name}]"));
        manifest[start + header.len()..]
            .split("\n[")
            .next()
            .unwrap()
            .to_owned()
    };
    let local = section("profile.local");
    assert!(local.contains("lto = false"), "[profile.local]: no LTO");
    assert!(
        !local.contains("codegen-units = 1\n"),
        "[profile.local]: parallel codegen"
    );
    for hashing in ["argon2", "blake2", "aws-lc-sys"] {
        assert!(
            section(&format!("profile.local.package.{hashing}")).contains("opt-level = 3"),
            "[profile.local.package.{hashing}] opt-level = 3"
        );
    }
    let release = section("profile.release");
    assert!(
        release.contains("lto = \"fat\""),
        "the Lambda binaries keep fat LTO"
    );
}
