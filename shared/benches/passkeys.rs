//! A passkey sign-in beside a password sign-in, in the same run, on the embedded store: wall
//! time (criterion) and the CPU time of the whole process per sign-in (Argon2id runs on a
//! blocking thread, which the process clock counts).
//!
//! A passkey sign-in here is what the server does: the options call (a stored ceremony) and the
//! answer's check (webauthn-rs-core's ES256 signature check, the counter's conditional write, a
//! new session). The soft authenticator's own signing runs between the two and is measured on
//! its own line, so that it can be taken out.
//!
//! `cargo bench -p shared --bench passkeys`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use shared::config::WebauthnSettings;
use shared::tokens::JwkSet;
use shared::{
    AuthService, Config, Defaults, EmbeddedStore, KeyRing, Password, Passwords, SigningKey,
    SystemClock,
};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_core::proto::{CreationChallengeResponse, RequestChallengeResponse};

const PASSWORD: &str = "correct horse battery staple";
const EMAIL: &str = "passkey@bench.example";
const ORIGIN: &str = "https://auth.bench.example";

fn service(dir: &tempfile::TempDir) -> (AuthService, Arc<EmbeddedStore>) {
    let defaults = Defaults {
        users_table: Some("users".into()),
        sessions_table: Some("sessions".into()),
        history_table: Some("history".into()),
        issuer: Some(ORIGIN.into()),
        audience: Some("https://api.bench.example".into()),
        ..Defaults::default()
    };
    let mut config = Config::from_lookup(|_| None, &defaults).unwrap();
    config.webauthn = Some(WebauthnSettings {
        rp_id: "auth.bench.example".into(),
        origins: vec![Url::parse(ORIGIN).unwrap()],
    });
    let store = Arc::new(EmbeddedStore::open(dir.path().join("bench.redb")).unwrap());
    let key = SigningKey::generate("bench").unwrap();
    let keys = Arc::new(KeyRing::new(Some(key), &JwkSet::default()).unwrap());
    let service = AuthService::new(
        Arc::new(config),
        store.clone(),
        keys,
        Passwords::new(),
        Arc::new(SystemClock),
    );
    (
        shared::bootstrap::with_relying_party(service).unwrap(),
        store,
    )
}

/// The soft key's answer to `public_key`, with user verification, as a browser gives it.
fn sign(key: &mut SoftPasskey, public_key: &Value, credential_id: &str) -> Value {
    let mut options = public_key.clone();
    options["userVerification"] = json!("required");
    options["allowCredentials"] = json!([{"type": "public-key", "id": credential_id}]);
    let options: RequestChallengeResponse =
        serde_json::from_value(json!({ "publicKey": options })).unwrap();
    let answer = key
        .do_authentication(Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    serde_json::to_value(answer).unwrap()
}

/// A user with a password and a passkey, its credential id, and the key.
async fn enrolled(service: &AuthService, store: &EmbeddedStore) -> (String, SoftPasskey) {
    let signed_in = service
        .register(EMAIL, &Password::new(PASSWORD), None)
        .await
        .unwrap();
    let user = signed_in.user.id;
    // The address verified, as following the mailed link does.
    let token = service
        .tokens()
        .verify(
            &signed_in.access_token,
            shared::model::TokenType::Access,
            shared::Clock::now(&SystemClock),
        )
        .unwrap();
    verify_address(store, user).await;
    let options = service
        .passkey_registration_options(user, token.sid, Some(&Password::new(PASSWORD)))
        .await
        .unwrap();
    let mut public_key = options.public_key.clone();
    public_key["authenticatorSelection"]["userVerification"] = json!("required");
    let options_json: CreationChallengeResponse =
        serde_json::from_value(json!({ "publicKey": public_key })).unwrap();
    let mut key = SoftPasskey::new(true);
    let credential = key
        .do_registration(Url::parse(ORIGIN).unwrap(), options_json)
        .unwrap();
    let credential = serde_json::to_value(credential).unwrap();
    let id = service
        .register_passkey(user, &options.ceremony_id, &credential, None)
        .await
        .unwrap()
        .id;
    (id, key)
}

/// The address verified through the store's own link path, as following the mailed link does.
async fn verify_address(store: &EmbeddedStore, user: uuid::Uuid) {
    use shared::store::{LinkStore, UserStore};
    let now = shared::Clock::now(&SystemClock);
    let email = store.user_by_id(user).await.unwrap().unwrap().email;
    let link = shared::model::EmailLink {
        token_hash: shared::tokens::token_hash("bench"),
        kind: shared::model::LinkKind::VerifyEmail,
        user_id: user,
        email,
        created_at: now,
        expires_at: now + 3600,
        epoch: 0,
        keep_chain: None,
    };
    assert!(store.issue_link(&link).await.unwrap());
    assert!(store.spend_verification(&link, now).await.unwrap());
}

fn process_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(result, 0, "CLOCK_PROCESS_CPUTIME_ID");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn sign_ins(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (service, store) = service(&dir);
    let (id, mut key) = runtime.block_on(enrolled(&service, &store));
    let password = Password::new(PASSWORD);

    let password_sign_in = || async {
        service
            .login(EMAIL, &password, None)
            .await
            .unwrap()
            .signed_in()
            .unwrap()
    };
    let passkey_options = || async { service.passkey_sign_in_options(None, None).await.unwrap() };

    let mut group = c.benchmark_group("sign-in (embedded store)");
    group.sample_size(20);
    group.bench_function("password", |b| b.to_async(&runtime).iter(password_sign_in));
    group.bench_function("passkey, server side", |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                let start = Instant::now();
                let options = runtime.block_on(passkey_options());
                spent += start.elapsed();
                let answer = sign(&mut key, &options.public_key, &id);
                let start = Instant::now();
                runtime
                    .block_on(service.passkey_sign_in(&options.ceremony_id, &answer))
                    .unwrap();
                spent += start.elapsed();
            }
            spent
        })
    });
    let options = runtime.block_on(passkey_options());
    group.bench_function("passkey, the soft key's signing alone", |b| {
        b.iter(|| sign(&mut key, &options.public_key, &id))
    });
    group.finish();

    // CPU per sign-in, every thread of the process.
    let rounds = 30;
    let start = process_cpu();
    for _ in 0..rounds {
        runtime.block_on(password_sign_in());
    }
    let password_cpu = (process_cpu() - start) / rounds;
    let mut signing = Duration::ZERO;
    let start = process_cpu();
    for _ in 0..rounds {
        let options = runtime.block_on(passkey_options());
        let before = process_cpu();
        let answer = sign(&mut key, &options.public_key, &id);
        signing += process_cpu() - before;
        runtime
            .block_on(service.passkey_sign_in(&options.ceremony_id, &answer))
            .unwrap();
    }
    let passkey_cpu = (process_cpu() - start - signing) / rounds;
    println!(
        "CPU per sign-in, all threads: password {:.2} ms, passkey (server side) {:.2} ms ({:.1}x less)",
        password_cpu.as_secs_f64() * 1e3,
        passkey_cpu.as_secs_f64() * 1e3,
        password_cpu.as_secs_f64() / passkey_cpu.as_secs_f64()
    );
}

criterion_group!(benches, sign_ins);
criterion_main!(benches);
