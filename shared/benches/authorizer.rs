//! The authorizer's decision for a valid access token, with the store call left out, beside a
//! bare Ed25519 verification of the same token's signature in the same run.
//!
//! `cargo bench -p shared --bench authorizer`

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use shared::clock::{Clock, ManualClock};
use shared::http::bearer_token;
use shared::model::{SessionChain, TokenType};
use shared::service::decide_access;
use shared::store::SessionSnapshot;
use shared::tokens::{JwkSet, token_hash};
use shared::{AuthService, Config, Defaults, EmbeddedStore, KeyRing, Passwords, SigningKey};

fn decision(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let defaults = Defaults {
        users_table: Some("users".into()),
        sessions_table: Some("sessions".into()),
        issuer: Some("https://auth.bench.example".into()),
        audience: Some("https://api.bench.example".into()),
    };
    let config = Arc::new(Config::from_lookup(|_| None, &defaults).unwrap());
    let store = Arc::new(EmbeddedStore::open(dir.path().join("bench.redb")).unwrap());
    let key = SigningKey::generate("bench").unwrap();
    let public = key.verifying_key();
    let keys = Arc::new(KeyRing::new(Some(key), &JwkSet::default()).unwrap());
    let clock = Arc::new(ManualClock::starting_now());
    let service = AuthService::new(config, store.clone(), keys, Passwords::new(), clock.clone());

    // A real session, and the snapshot the store returns for its access token.
    let signed_in = runtime
        .block_on(service.register(
            "bench@example.com",
            &shared::Password::new("correct horse battery staple"),
            None,
        ))
        .unwrap();
    let token = signed_in.access_token.clone();
    let header = format!("Bearer {token}");
    let now = clock.now();
    let claims = service
        .tokens()
        .verify(&token, TokenType::Access, now)
        .unwrap();
    let snapshot: SessionSnapshot = runtime
        .block_on(shared::store::SessionStore::snapshot(
            &*store,
            claims.user_id,
            claims.sid,
            claims.jti,
            now,
        ))
        .unwrap();
    assert!(
        snapshot
            .token
            .as_ref()
            .is_some_and(|t| t.token_hash == token_hash(&token))
    );
    let _: &SessionChain = snapshot.chain.as_ref().unwrap();
    assert!(decide_access(&claims, &token, snapshot.clone(), now).is_ok());

    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = B64.decode(signature).unwrap();
    assert!(public.verify(signing_input.as_bytes(), &signature));

    let mut group = c.benchmark_group("authorizer");
    group.bench_function("ed25519 verify (bare signature check)", |b| {
        b.iter(|| assert!(public.verify(signing_input.as_bytes(), &signature)))
    });
    group.bench_function("decision without the store", |b| {
        b.iter_batched(
            || snapshot.clone(),
            |snapshot| {
                let token = bearer_token(&header).unwrap();
                let claims = service.verify_access_token(token, now).unwrap();
                decide_access(&claims, token, snapshot, now).unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
