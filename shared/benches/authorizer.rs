//! The authorizer's decision for a valid access token, with the store call left out, beside a
//! bare Ed25519 verification of the same token's signature in the same run; and the decision
//! for an external issuer's token with its keys cached.
//!
//! `cargo bench -p shared --bench authorizer`
//!
//! Measured in CPU time of the benchmarking thread (every step runs on it, the external
//! issuer's too, on a current-thread runtime): what the code costs, not what else the machine
//! runs. On a shared 2-core machine wall time swings by half from one run to the next.

use std::sync::Arc;

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use shared::clock::{Clock, ManualClock};
use shared::http::bearer_token;
use shared::model::{SessionChain, TokenType};
use shared::service::decide_access;
use shared::store::SessionSnapshot;
use shared::tokens::{JwkSet, token_hash};
use shared::{AuthService, Config, Defaults, EmbeddedStore, KeyRing, Passwords, SigningKey};

/// CPU time of the calling thread.
struct ThreadCpuTime;

fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(result, 0, "CLOCK_THREAD_CPUTIME_ID");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Formats like wall time: both are durations.
static DURATIONS: WallTime = WallTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu_time()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_time().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        DURATIONS.formatter()
    }
}

fn decision(c: &mut Criterion<ThreadCpuTime>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
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
    // The baseline is aws-lc-rs's Ed25519 with nothing around it, the crypto jsonwebtoken runs.
    let x = B64.decode(key.public_jwk().x.unwrap()).unwrap();
    let public = UnparsedPublicKey::new(&ED25519, x);
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
    assert!(public.verify(signing_input.as_bytes(), &signature).is_ok());

    let mut group = c.benchmark_group("authorizer");
    group.bench_function("ed25519 verify (bare signature check)", |b| {
        b.iter(|| assert!(public.verify(signing_input.as_bytes(), &signature).is_ok()))
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

/// Serves one JWK Set over plain HTTP on loopback, forever, for the external issuer's keys.
fn serve_jwks(body: String) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/auth/jwks", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    url
}

fn external_decision(c: &mut Criterion<ThreadCpuTime>) {
    use shared::config::{ExternalAlgorithm, TrustedIssuer};
    use shared::tokens::external::ExternalIssuers;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = SigningKey::generate("better-auth").unwrap();
    let issuer = "https://app.example.com";
    let jwks = serde_json::json!({"keys": [key.public_jwk()]}).to_string();
    let external = ExternalIssuers::new(&[TrustedIssuer {
        algorithms: vec![ExternalAlgorithm::EdDSA],
        ..TrustedIssuer::new(issuer, serve_jwks(jwks), issuer)
    }]);
    let now = shared::SystemClock.now();
    let claims = serde_json::json!({"sub": "454jGuzk83cBMHEpqDZPGVskGzVJ21s6", "email": "a@example.com",
        "iss": issuer, "aud": issuer, "iat": now, "exp": now + 3600});
    let header = serde_json::json!({"alg": "EdDSA", "kid": "better-auth"});
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let token = format!("{input}.{}", B64.encode(key.sign(input.as_bytes())));
    // The first verification fetches the keys; the benchmark measures the warm path after it.
    runtime.block_on(external.verify(&token, now)).unwrap();

    let mut group = c.benchmark_group("authorizer");
    group.bench_function("external token, keys cached", |b| {
        b.to_async(&runtime)
            .iter(|| async { external.verify(&token, now).await.unwrap() })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = decision, external_decision
}
criterion_main!(benches);
