//! A team tries its own function behind the real authorizer, locally: `local-api --extra-route
//! 'GET /orders=target/debug/orders'` runs `examples/orders` against a loopback Runtime API and
//! routes `GET /orders` to it after the authorizer, as API Gateway would.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use integration_tests::rie::binaries;
use serde_json::{Value, json};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl(args: &[&str]) -> (u16, Value) {
    let output = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("a status line");
    (
        status.trim().parse().expect("a status"),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[test]
fn the_local_server_runs_a_teams_function_behind_the_authorizer() {
    let dir = binaries();
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let route = format!("GET /orders={}", dir.join("orders").display());
    // A second route of the same function that only analysts may call (`ROUTE_ROLES`).
    let reports = format!("GET /reports={}", dir.join("orders").display());
    let mut child = Command::new(dir.join("local-api"))
        .args([
            "--port",
            &port.to_string(),
            "--extra-route",
            &route,
            "--extra-route",
            &reports,
            "--data-dir",
        ])
        .arg(data.path())
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
        .env("ROUTE_ROLES", r#"{"GET /reports": ["analyst"]}"#)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start local-api");
    let stdout = child.stdout.take().unwrap();
    let _server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut banner = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let done = line.contains("Ctrl-C");
        banner.push(line);
        if done {
            break;
        }
    }
    let banner = banner.join("\n");
    assert!(
        banner.contains("GET /orders ->"),
        "the banner lists the extra route:\n{banner}"
    );

    let api = format!("http://127.0.0.1:{port}");
    let (status, tokens) = curl(&[
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"email":"team@example.com","password":"correct horse battery staple"}"#,
        &format!("{api}/auth/register"),
    ]);
    assert_eq!(status, 201, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let bearer = format!("authorization: Bearer {access}");

    let (status, body) = curl(&["-H", &bearer, &format!("{api}/orders")]);
    assert_eq!(status, 200, "{body}");
    let caller = &body["caller"];
    assert_eq!(caller["user_email"], "team@example.com");
    assert_eq!(caller["issuer"], Value::String(api.clone()));
    for key in ["user_id", "session_id"] {
        assert!(
            caller[key].as_str().is_some_and(|v| v.len() == 36),
            "{key}: {body}"
        );
    }
    let (_, me) = curl(&["-H", &bearer, &format!("{api}/auth/me")]);
    assert_eq!(caller["user_id"], me["user"]["id"]);
    assert_eq!(caller["roles"], json!([]), "{body}");
    assert_eq!(caller["mfa"], false, "{body}");

    // Inside the function: every order is for the support role, which the caller lacks.
    let (status, body) = curl(&["-H", &bearer, &format!("{api}/orders?all=true")]);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["message"], "Every order is for the support role");

    // A route the authorizer's rules keep for a role the caller does not hold: no function.
    let (status, body) = curl(&["-H", &bearer, &format!("{api}/reports")]);
    assert_eq!(status, 403, "{body}");

    // The authorizer runs first: no token, no function.
    assert_eq!(curl(&[&format!("{api}/orders")]).0, 401);
    let (status, _) = curl(&["-X", "POST", "-H", &bearer, &format!("{api}/auth/logout")]);
    assert_eq!(status, 204);
    let (status, body) = curl(&["-H", &bearer, &format!("{api}/orders")]);
    assert_eq!(
        status, 403,
        "a logged-out token never reaches the function: {body}"
    );
}
