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

/// Everything logged in this process so far.
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

fn token(reply: &Reply, field: &str) -> String {
    reply.json()[field].as_str().unwrap().to_owned()
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
    let access = token(&registered, "access_token");
    assert_eq!(api.get("/auth/me", Some(&access)).await.status, 200);

    let login = api.post_json("/auth/login", &creds(password), None).await;
    secrets.tokens_of(&login);
    let refresh = token(&login, "refresh_token");
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
    let again_access = token(&again, "access_token");
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
