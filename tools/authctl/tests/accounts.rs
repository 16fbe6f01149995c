//! `authctl deactivate` and `reactivate`, run as the binary against both stores.

use std::process::Command;
use std::sync::Arc;

use shared::store::Store;
use shared::tokens::JwkSet;
use shared::{
    AuthService, Config, Defaults, DynamoStore, EmbeddedStore, KeyRing, Password, Passwords,
    SigningKey, SystemClock,
};

fn config(users: &str, sessions: &str) -> Arc<Config> {
    let defaults = Defaults {
        users_table: Some(users.into()),
        sessions_table: Some(sessions.into()),
        issuer: Some("https://auth.test.example".into()),
        audience: Some("https://api.test.example".into()),
        ..Defaults::default()
    };
    Arc::new(Config::from_lookup(|_| None, &defaults).unwrap())
}

fn build_service(store: Arc<dyn Store>, config: Arc<Config>) -> AuthService {
    let key = SigningKey::generate("k").unwrap();
    let keys = Arc::new(KeyRing::new(Some(key), &JwkSet::default()).unwrap());
    AuthService::new(config, store, keys, Passwords::new(), Arc::new(SystemClock))
}

fn authctl(args: &[&str], envs: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_authctl"))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run authctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread")]
async fn deactivation_on_the_embedded_store_ends_every_session() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let config = config("users", "sessions");
    let token = {
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(dir.path().join("auth.redb")).unwrap());
        let service = build_service(store, config.clone());
        service
            .register("ops@example.com", &Password::new(PASSWORD), None)
            .await
            .unwrap()
            .access_token
        // The store closes here, as the local server would on stopping.
    };

    let (ok, output) = authctl(
        &["deactivate", "OPS@example.com", "--data-dir", &data_dir],
        &[],
    );
    assert!(ok, "{output}");
    assert!(output.contains("deactivated ops@example.com"), "{output}");

    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path().join("auth.redb")).unwrap());
    let service = build_service(store.clone(), config.clone());
    assert!(
        !store
            .user_by_email("ops@example.com")
            .await
            .unwrap()
            .unwrap()
            .is_active
    );
    assert!(service.authorize(&token).await.is_err(), "sessions ended");
    assert!(
        service
            .login("ops@example.com", &Password::new(PASSWORD), None)
            .await
            .is_err()
    );
    drop((service, store));

    let (ok, output) = authctl(
        &["reactivate", "ops@example.com", "--data-dir", &data_dir],
        &[],
    );
    assert!(ok, "{output}");
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path().join("auth.redb")).unwrap());
    let service = build_service(store, config);
    assert!(
        service
            .login("ops@example.com", &Password::new(PASSWORD), None)
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deactivation_on_dynamodb() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .expect("DynamoDB Local is not running: run the tests with scripts/test");
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (users, sessions) = (format!("users-{suffix}"), format!("sessions-{suffix}"));
    let config = config(&users, &sessions);
    let client = DynamoStore::client_for_endpoint(&endpoint).await;
    let store = DynamoStore::new(client, &users, &sessions);
    store.create_tables().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let service = build_service(store.clone(), config);
    let token = service
        .register("ddb.ops@example.com", &Password::new(PASSWORD), None)
        .await
        .unwrap()
        .access_token;

    let envs = [
        ("USERS_TABLE", users.as_str()),
        ("SESSIONS_TABLE", sessions.as_str()),
    ];
    let (ok, output) = authctl(&["deactivate", "ddb.ops@example.com"], &envs);
    assert!(ok, "{output}");
    assert!(
        !store
            .user_by_email("ddb.ops@example.com")
            .await
            .unwrap()
            .unwrap()
            .is_active
    );
    assert!(service.authorize(&token).await.is_err());

    let (ok, output) = authctl(&["deactivate", "nobody@example.com"], &envs);
    assert!(!ok);
    assert!(
        output.contains("no account for nobody@example.com"),
        "{output}"
    );
    let (ok, output) = authctl(&["deactivate"], &envs);
    assert!(!ok);
    assert!(output.contains("which email"), "{output}");
}
