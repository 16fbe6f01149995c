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
        history_table: Some(format!("{sessions}-history")),
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
    let store = DynamoStore::new(client, &users, &sessions, &config.history_table);
    store.create_tables().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let service = build_service(store.clone(), config.clone());
    let token = service
        .register("ddb.ops@example.com", &Password::new(PASSWORD), None)
        .await
        .unwrap()
        .access_token;

    let envs = [
        ("USERS_TABLE", users.as_str()),
        ("SESSIONS_TABLE", sessions.as_str()),
        ("HISTORY_TABLE", config.history_table.as_str()),
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

/// The roles an access token carries.
fn roles_of(service: &AuthService, access_token: &str) -> Vec<String> {
    service
        .verify_access_token(access_token, shared::Clock::now(&SystemClock))
        .unwrap()
        .roles
}

/// Grants `admin`, sees it at the next refresh (not before), revokes it, on `store`.
async fn roles_change_at_the_next_refresh(
    store: Arc<dyn Store>,
    service: AuthService,
    email: &str,
    run: impl Fn(&[&str]) -> (bool, String),
) {
    let signed_in = service
        .register(email, &Password::new(PASSWORD), None)
        .await
        .unwrap();
    assert!(roles_of(&service, &signed_in.access_token).is_empty());

    let (ok, output) = run(&["grant-role", email, "admin"]);
    assert!(ok, "{output}");
    assert!(output.contains("granted admin"), "{output}");
    let (ok, output) = run(&["grant-role", email, "support"]);
    assert!(ok, "{output}");
    let user = store.user_by_email(email).await.unwrap().unwrap();
    assert_eq!(user.roles, ["admin", "support"]);
    assert!(
        roles_of(&service, &signed_in.access_token).is_empty(),
        "a token minted before keeps what it carried"
    );
    let refreshed = service.refresh(&signed_in.refresh_token).await.unwrap();
    assert_eq!(
        roles_of(&service, &refreshed.access_token),
        ["admin", "support"]
    );
    let principal = service.authorize(&refreshed.access_token).await.unwrap();
    assert_eq!(principal.roles, ["admin", "support"]);

    let (ok, output) = run(&["revoke-role", email, "admin"]);
    assert!(ok, "{output}");
    let again = service.refresh(&refreshed.refresh_token).await.unwrap();
    assert_eq!(roles_of(&service, &again.access_token), ["support"]);
    let (ok, _) = run(&["revoke-role", email, "support"]);
    assert!(ok);
    let none = service.refresh(&again.refresh_token).await.unwrap();
    assert!(roles_of(&service, &none.access_token).is_empty());
    assert!(
        store
            .user_by_email(email)
            .await
            .unwrap()
            .unwrap()
            .roles
            .is_empty()
    );

    for bad in ["Admin", "1admin", "", "a b"] {
        let (ok, output) = run(&["grant-role", email, bad]);
        assert!(!ok, "{bad:?}: {output}");
    }
    let (ok, output) = run(&["grant-role", "nobody@example.com", "admin"]);
    assert!(!ok && output.contains("no account"), "{output}");
    let (ok, output) = run(&["grant-role", email]);
    assert!(!ok && output.contains("which email and role"), "{output}");
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_on_dynamodb() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .expect("DynamoDB Local is not running: run the tests with scripts/test");
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (users, sessions) = (format!("users-{suffix}"), format!("sessions-{suffix}"));
    let config = config(&users, &sessions);
    let client = DynamoStore::client_for_endpoint(&endpoint).await;
    let store = DynamoStore::new(client, &users, &sessions, &config.history_table);
    store.create_tables().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let service = build_service(store.clone(), config.clone());
    let envs = [
        ("USERS_TABLE", users.clone()),
        ("SESSIONS_TABLE", sessions.clone()),
        ("HISTORY_TABLE", config.history_table.clone()),
    ];
    let run = |args: &[&str]| {
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        authctl(args, &envs)
    };
    roles_change_at_the_next_refresh(store, service, "ddb.admin@example.com", run).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_on_the_embedded_store() {
    // The store file is locked while open: authctl runs against a second store, and the test
    // reads through a store it opens after each command.
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let path = dir.path().join("auth.redb");
    let config = config("users", "sessions");
    let email = "embedded.admin@example.com";
    let open = || -> Arc<dyn Store> { Arc::new(EmbeddedStore::open(&path).unwrap()) };
    // One key for both services: the second verifies what the first signed.
    let key = SigningKey::generate("k").unwrap();
    let keys = Arc::new(KeyRing::new(Some(key), &JwkSet::default()).unwrap());
    let build = |store: Arc<dyn Store>| {
        AuthService::new(
            config.clone(),
            store,
            keys.clone(),
            Passwords::new(),
            Arc::new(SystemClock),
        )
    };
    let signed_in = {
        let service = build(open());
        service
            .register(email, &Password::new(PASSWORD), None)
            .await
            .unwrap()
    };
    let (ok, output) = authctl(
        &["grant-role", email, "admin", "--data-dir", &data_dir],
        &[],
    );
    assert!(ok, "{output}");
    let store = open();
    let service = build(store.clone());
    assert_eq!(
        store.user_by_email(email).await.unwrap().unwrap().roles,
        ["admin"]
    );
    let refreshed = service.refresh(&signed_in.refresh_token).await.unwrap();
    assert_eq!(roles_of(&service, &refreshed.access_token), ["admin"]);
}
