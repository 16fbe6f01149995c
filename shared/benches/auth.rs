//! What one register and one login cost (Argon2id dominates them), beside their parts.
//!
//! `cargo bench -p shared --bench auth`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use shared::tokens::JwkSet;
use shared::{
    AuthService, Config, Defaults, EmbeddedStore, KeyRing, Password, Passwords, SigningKey,
    SystemClock,
};

const PASSWORD: &str = "correct horse battery staple";

fn service(dir: &tempfile::TempDir) -> AuthService {
    let defaults = Defaults {
        users_table: Some("users".into()),
        sessions_table: Some("sessions".into()),
        history_table: Some("history".into()),
        issuer: Some("https://auth.bench.example".into()),
        audience: Some("https://api.bench.example".into()),
        ..Defaults::default()
    };
    let config = Arc::new(Config::from_lookup(|_| None, &defaults).unwrap());
    let store = Arc::new(EmbeddedStore::open(dir.path().join("bench.redb")).unwrap());
    let key = SigningKey::generate("bench").unwrap();
    let keys = Arc::new(KeyRing::new(Some(key), &JwkSet::default()).unwrap());
    AuthService::new(config, store, keys, Passwords::new(), Arc::new(SystemClock))
}

fn passwords(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let passwords = Passwords::new();
    let password = Password::new(PASSWORD);
    let hash = runtime.block_on(passwords.hash(&password)).unwrap();
    let mut group = c.benchmark_group("argon2id m=19456,t=2,p=1");
    group.sample_size(20);
    group.bench_function("hash", |b| {
        b.to_async(&runtime).iter(|| passwords.hash(&password))
    });
    group.bench_function("verify", |b| {
        b.to_async(&runtime)
            .iter(|| passwords.verify(&password, Some(&hash)))
    });
    group.finish();
}

fn register_and_login(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let service = service(&dir);
    let password = Password::new(PASSWORD);
    let counter = AtomicU64::new(0);
    runtime
        .block_on(service.register("login@bench.example", &password, None))
        .unwrap();

    let mut group = c.benchmark_group("service (embedded store)");
    group.sample_size(20);
    group.bench_function("register", |b| {
        b.to_async(&runtime).iter(|| {
            let email = format!(
                "user{}@bench.example",
                counter.fetch_add(1, Ordering::Relaxed)
            );
            let (service, password) = (&service, &password);
            async move { service.register(&email, password, None).await.unwrap() }
        })
    });
    group.bench_function("login", |b| {
        b.to_async(&runtime).iter(|| async {
            service
                .login("login@bench.example", &password, None)
                .await
                .unwrap()
                .signed_in()
                .unwrap()
        })
    });
    // A fresh unknown email every time: repeated failures for one email would be throttled and
    // answered without any Argon2 work.
    group.bench_function("login, unknown email", |b| {
        b.to_async(&runtime).iter(|| {
            let email = format!(
                "nobody{}@bench.example",
                counter.fetch_add(1, Ordering::Relaxed)
            );
            let (service, password) = (&service, &password);
            async move { service.login(&email, password, None).await.unwrap_err() }
        })
    });
    group.finish();
}

criterion_group!(benches, passwords, register_and_login);
criterion_main!(benches);
