//! Tokens from a Better Auth server, accepted by the authorizer beside this service's own:
//! the real artefacts in `tests/fixtures/better-auth/` through the authorizer handler and
//! the local server, and the JWK Set cache (rotation, unknown-kid flood, outage, untrusted
//! issuer) against a JWKS endpoint on loopback.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use integration_tests::jwks_server::JwksServer;
use integration_tests::{Harness, test_config};
use serde_json::{Value, json};
use shared::authorizer;
use shared::config::{ExternalAlgorithm, TrustedIssuer};
use shared::tokens::external::{FETCH_TIMEOUT, KEYS_TTL_SECS, REFETCH_COOLDOWN_SECS};
use shared::{Clock, Password, SigningKey};

const BETTER_AUTH: &str = "http://127.0.0.1:3100";

fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/better-auth/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_owned()
}

/// A harness that trusts an external issuer whose keys are at `jwks`.
fn harness(issuer: &str, jwks: &JwksServer, algorithms: Vec<ExternalAlgorithm>) -> Harness {
    let mut config = test_config();
    config.trusted_issuers = vec![TrustedIssuer {
        algorithms,
        // The recorded Better Auth token lives until 2100.
        max_token_lifetime_seconds: 100 * 365 * 86_400,
        ..TrustedIssuer::new(issuer, jwks.url.clone(), issuer)
    }];
    Harness::embedded_with(config)
}

async fn decide(h: &Harness, token: &str) -> Value {
    let event = json!({
        "version": "2.0", "type": "REQUEST",
        "identitySource": [format!("Bearer {token}")],
        "routeKey": "GET /orders", "rawPath": "/orders", "headers": {},
        "requestContext": {"http": {"method": "GET", "path": "/orders"}, "routeKey": "GET /orders", "stage": "$default"}
    });
    authorizer::handle(&h.service, event)
        .await
        .expect("a decision")
}

fn allowed(answer: &Value) -> bool {
    answer["isAuthorized"] == true
}

/// A token of `issuer` signed by `key` under `kid`, with these claims added.
fn external_token(key: &SigningKey, kid: &str, issuer: &str, now: i64, extra: Value) -> String {
    let mut claims = json!({"sub": "user-42", "email": "ext@example.com", "iss": issuer, "aud": issuer, "iat": now, "exp": now + 900});
    for (name, value) in extra.as_object().unwrap() {
        claims[name] = value.clone();
    }
    let header = json!({"alg": "EdDSA", "kid": kid});
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    format!("{input}.{}", B64.encode(key.sign(input.as_bytes())))
}

fn jwks_of(keys: &[&SigningKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>()}).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn better_auth_fixtures_are_accepted_and_refused_as_the_reference_verifier_says() {
    let jwks = JwksServer::start(fixture("jwks.json")).await;
    let h = harness(BETTER_AUTH, &jwks, vec![ExternalAlgorithm::EdDSA]);

    let valid = decide(&h, &fixture("jwt-long-lived.txt")).await;
    assert!(allowed(&valid), "{valid}");
    assert_eq!(
        valid["context"],
        json!({"user_id": "454jGuzk83cBMHEpqDZPGVskGzVJ21s6", "user_email": "sample-user@example.com",
               "session_id": "", "issuer": BETTER_AUTH, "email_verified": "false", "mfa": "false",
               "roles": ""})
    );
    for refused in [
        "jwt-expired.txt",
        "jwt-tampered.txt",
        "jwt-wrong-audience.txt",
        "jwt-not-yet-valid.txt",
    ] {
        let answer = decide(&h, &fixture(refused)).await;
        assert_eq!(
            answer,
            json!({"isAuthorized": false, "context": {}}),
            "{refused}"
        );
    }
    assert_eq!(
        jwks.requests(),
        1,
        "one fetch serves every token of the issuer"
    );

    // A token of an issuer that is not trusted: refused, and nothing fetched for it.
    let answer = decide(&h, &fixture("jwt-wrong-issuer.txt")).await;
    assert!(!allowed(&answer));
    assert_eq!(jwks.requests(), 1);

    // This service's own tokens keep working beside them, with the same context keys.
    let own = h
        .service
        .register(
            "own@example.com",
            &Password::new("correct horse battery staple"),
            None,
        )
        .await
        .unwrap();
    let answer = decide(&h, &own.access_token).await;
    assert!(allowed(&answer));
    let mut keys: Vec<_> = answer["context"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "email_verified",
            "issuer",
            "mfa",
            "roles",
            "session_id",
            "user_email",
            "user_id"
        ]
    );
    assert_eq!(answer["context"]["issuer"], json!(h.config.issuer));
}

#[tokio::test(flavor = "multi_thread")]
async fn better_auth_tokens_through_the_local_server() {
    let jwks = JwksServer::start(fixture("jwks.json")).await;
    let h = harness(BETTER_AUTH, &jwks, vec![ExternalAlgorithm::EdDSA]);
    let api = h.serve_local_api().await;

    let me = api
        .get("/auth/me", Some(&fixture("jwt-long-lived.txt")))
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(
        me.json(),
        json!({"user": {"id": "454jGuzk83cBMHEpqDZPGVskGzVJ21s6", "email": "sample-user@example.com"},
               "issuer": BETTER_AUTH, "external": true})
    );
    for refused in [
        "jwt-expired.txt",
        "jwt-tampered.txt",
        "jwt-wrong-audience.txt",
        "jwt-not-yet-valid.txt",
        "jwt-wrong-issuer.txt",
    ] {
        let reply = api.get("/auth/me", Some(&fixture(refused))).await;
        assert_eq!(reply.status, 403, "{refused}");
    }
    // The session routes manage this service's sessions only.
    let sessions = api
        .get("/auth/sessions", Some(&fixture("jwt-long-lived.txt")))
        .await;
    assert_eq!(sessions.status, 403);
    assert_eq!(sessions.json()["code"], "external_caller");
    let logout = api
        .send(
            "POST",
            "/auth/logout",
            &[(
                "authorization",
                &format!("Bearer {}", fixture("jwt-long-lived.txt")),
            )],
            "",
        )
        .await;
    assert_eq!(logout.json()["code"], "external_caller");
    // All of it as openapi.yaml documents.
    let spec = integration_tests::openapi::OpenApi::load();
    spec.check("GET", "/auth/me", &me).unwrap();
    spec.check("GET", "/auth/sessions", &sessions).unwrap();
    spec.check("POST", "/auth/logout", &logout).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_is_fetched_once_the_cooldown_allows() {
    let (old, new) = (
        SigningKey::generate("old").unwrap(),
        SigningKey::generate("new").unwrap(),
    );
    let jwks = JwksServer::start(jwks_of(&[&old])).await;
    let issuer = "https://app.example.com";
    let h = harness(issuer, &jwks, vec![ExternalAlgorithm::EdDSA]);
    let now = h.clock.now();

    assert!(allowed(
        &decide(&h, &external_token(&old, "old", issuer, now, json!({}))).await
    ));
    assert_eq!(jwks.requests(), 1);

    // The issuer rotates. Within the cooldown the new kid is not fetched for.
    jwks.serve(jwks_of(&[&old, &new]));
    let rotated = external_token(&new, "new", issuer, now, json!({"jti": "session-7"}));
    assert!(!allowed(&decide(&h, &rotated).await));
    assert_eq!(jwks.requests(), 1);

    h.clock.advance(REFETCH_COOLDOWN_SECS);
    let answer = decide(&h, &rotated).await;
    assert!(allowed(&answer), "{answer}");
    assert_eq!(
        answer["context"]["session_id"], "session-7",
        "jti becomes the session id"
    );
    assert_eq!(jwks.requests(), 2);
    // The old key still verifies.
    let now = h.clock.now();
    assert!(allowed(
        &decide(&h, &external_token(&old, "old", issuer, now, json!({}))).await
    ));
    assert_eq!(jwks.requests(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_unknown_kids_fetches_once() {
    let key = SigningKey::generate("real").unwrap();
    let jwks = JwksServer::start(jwks_of(&[&key])).await;
    let issuer = "https://app.example.com";
    let h = harness(issuer, &jwks, vec![ExternalAlgorithm::EdDSA]);
    let now = h.clock.now();
    let decisions = (0..100).map(|i| {
        let bogus = SigningKey::generate(format!("bogus{i}")).unwrap();
        let token = external_token(&bogus, &format!("bogus{i}"), issuer, now, json!({}));
        let service = h.service.clone();
        tokio::spawn(async move {
            let event = json!({"version": "2.0", "type": "REQUEST", "identitySource": [format!("Bearer {token}")],
                               "headers": {}, "requestContext": {"http": {"method": "GET", "path": "/x"}}});
            authorizer::handle(&service, event).await.unwrap()
        })
    });
    for decision in futures::future::join_all(decisions).await {
        assert!(!allowed(&decision.unwrap()));
    }
    assert_eq!(jwks.requests(), 1, "one fetch for a hundred unknown kids");
    assert!(allowed(
        &decide(&h, &external_token(&key, "real", issuer, now, json!({}))).await
    ));
    assert_eq!(jwks.requests(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_issuer_outage_keeps_the_cached_keys_working() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = JwksServer::start(jwks_of(&[&key])).await;
    let issuer = "https://app.example.com";
    let h = harness(issuer, &jwks, vec![ExternalAlgorithm::EdDSA]);
    assert!(allowed(
        &decide(
            &h,
            &external_token(&key, "k1", issuer, h.clock.now(), json!({}))
        )
        .await
    ));

    jwks.set_down(true);
    h.clock.advance(KEYS_TTL_SECS + 1);
    let answer = decide(
        &h,
        &external_token(&key, "k1", issuer, h.clock.now(), json!({})),
    )
    .await;
    assert!(
        allowed(&answer),
        "stale keys keep working during an outage: {answer}"
    );
    assert_eq!(jwks.requests(), 2, "a refresh was tried");

    // Back up: the next refresh (after the cooldown) succeeds.
    jwks.set_down(false);
    h.clock.advance(REFETCH_COOLDOWN_SECS);
    assert!(allowed(
        &decide(
            &h,
            &external_token(&key, "k1", issuer, h.clock.now(), json!({}))
        )
        .await
    ));
    assert_eq!(jwks.requests(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_issuers_and_key_location_headers_fetch_nothing() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = JwksServer::start(jwks_of(&[&key])).await;
    let h = harness(
        "https://app.example.com",
        &jwks,
        vec![ExternalAlgorithm::EdDSA],
    );
    let now = h.clock.now();
    // Same keys, another issuer: refused without a fetch, whatever the header points at.
    let evil = external_token(&key, "k1", "https://evil.example", now, json!({}));
    assert!(!allowed(&decide(&h, &evil).await));
    let header = json!({"alg": "EdDSA", "kid": "k1", "jku": jwks.url, "x5u": jwks.url});
    let claims = json!({"sub": "x", "iss": "https://evil.example", "aud": "https://evil.example", "exp": now + 60});
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let with_jku = format!("{input}.{}", B64.encode(key.sign(input.as_bytes())));
    assert!(!allowed(&decide(&h, &with_jku).await));
    assert_eq!(jwks.requests(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn algorithms_are_the_issuers_allowlist() {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = ec.public_key().as_ref();
    let ec_jwk = json!({"kty": "EC", "crv": "P-256", "kid": "ec1", "alg": "ES256",
                        "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])});
    let ed = SigningKey::generate("ed1").unwrap();
    let jwks = JwksServer::start(json!({"keys": [ec_jwk, ed.public_jwk()]}).to_string()).await;
    let issuer = "https://app.example.com";
    let now = test_config_now();
    let es256_token = {
        let header = json!({"alg": "ES256", "kid": "ec1"});
        let claims =
            json!({"sub": "user-ec", "iss": issuer, "aud": issuer, "iat": now, "exp": now + 900});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = ec.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", B64.encode(signature.as_ref()))
    };

    // Allowed when the issuer's configuration lists ES256...
    let h = harness(
        issuer,
        &jwks,
        vec![ExternalAlgorithm::ES256, ExternalAlgorithm::EdDSA],
    );
    let answer = decide(&h, &es256_token).await;
    assert!(allowed(&answer), "{answer}");
    assert_eq!(answer["context"]["user_id"], "user-ec");
    // ...refused when it does not, though the key is published and the signature good.
    let h = harness(issuer, &jwks, vec![ExternalAlgorithm::EdDSA]);
    assert!(!allowed(&decide(&h, &es256_token).await));
    assert!(allowed(
        &decide(&h, &external_token(&ed, "ed1", issuer, now, json!({}))).await
    ));
    // An HMAC token naming the EC key is refused on its algorithm.
    let hs = format!(
        "{}.{}.AAAA",
        B64.encode(r#"{"alg":"HS256","kid":"ec1"}"#),
        es256_token.split('.').nth(1).unwrap()
    );
    assert!(!allowed(&decide(&h, &hs).await));
}

fn test_config_now() -> i64 {
    shared::SystemClock.now()
}

/// A token of `issuer` with this header, signed by `key`.
fn token_with_header(key: &SigningKey, header: Value, claims: Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    format!("{input}.{}", B64.encode(key.sign(input.as_bytes())))
}

#[tokio::test(flavor = "multi_thread")]
async fn typ_lifetime_and_iat_are_the_issuers_to_bound() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = JwksServer::start(jwks_of(&[&key])).await;
    let issuer = "https://app.example.com";
    // This issuer with every default: a day's lifetime; absent, JWT or at+jwt.
    let mut config = test_config();
    config.trusted_issuers = vec![TrustedIssuer::new(issuer, jwks.url.clone(), issuer)];
    let h = Harness::embedded_with(config);
    let now = h.clock.now();
    let claims =
        json!({"sub": "user-42", "iss": issuer, "aud": issuer, "iat": now, "exp": now + 900});
    let with_typ = |typ: Option<&str>| {
        let mut header = json!({"alg": "EdDSA", "kid": "k1"});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        token_with_header(&key, header, claims.clone())
    };
    for typ in [None, Some("JWT"), Some("at+jwt")] {
        let answer = decide(&h, &with_typ(typ)).await;
        assert!(allowed(&answer), "{typ:?}: {answer}");
    }
    // An ID token of the same issuer is not an access token; nor is anything else.
    for typ in ["id+jwt", "rt+jwt", "jwt", "JOSE", ""] {
        assert!(!allowed(&decide(&h, &with_typ(Some(typ))).await), "{typ}");
    }

    let header = json!({"alg": "EdDSA", "kid": "k1"});
    let with_times = |iat: Option<i64>, exp: i64| {
        let mut claims = claims.clone();
        claims["exp"] = json!(exp);
        match iat {
            Some(iat) => claims["iat"] = json!(iat),
            None => drop(claims.as_object_mut().unwrap().remove("iat")),
        }
        token_with_header(&key, header.clone(), claims)
    };
    // Exactly the limit passes; a second more, or no iat at all, does not.
    assert!(allowed(
        &decide(&h, &with_times(Some(now - 3600), now - 3600 + 86_400)).await
    ));
    assert!(
        !allowed(&decide(&h, &with_times(Some(now - 3600), now - 3600 + 86_401)).await),
        "a token living a day and a second"
    );
    assert!(
        !allowed(&decide(&h, &with_times(Some(now - 2 * 86_400), now + 900)).await),
        "issued two days ago, good for another quarter hour: older than the limit"
    );
    assert!(
        !allowed(&decide(&h, &with_times(None, now + 900)).await),
        "no iat"
    );
    // And the recorded Better Auth token, living to 2100, is refused under the default.
    let ba = JwksServer::start(fixture("jwks.json")).await;
    let mut config = test_config();
    config.trusted_issuers = vec![TrustedIssuer::new(BETTER_AUTH, ba.url.clone(), BETTER_AUTH)];
    let strict = Harness::embedded_with(config);
    assert!(!allowed(
        &decide(&strict, &fixture("jwt-long-lived.txt")).await
    ));

    // An issuer's own typ list replaces the default.
    let mut config = test_config();
    config.trusted_issuers = vec![TrustedIssuer {
        typ: Some(vec![Some("at+jwt".into())]),
        max_token_lifetime_seconds: 600,
        ..TrustedIssuer::new(issuer, jwks.url.clone(), issuer)
    }];
    let custom = Harness::embedded_with(config);
    let short = |typ: Option<&str>| {
        let mut header = json!({"alg": "EdDSA", "kid": "k1"});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        let mut claims = claims.clone();
        claims["exp"] = json!(now + 600);
        token_with_header(&key, header, claims)
    };
    assert!(allowed(&decide(&custom, &short(Some("at+jwt"))).await));
    assert!(!allowed(&decide(&custom, &short(None)).await));
    assert!(!allowed(&decide(&custom, &short(Some("JWT"))).await));
    assert!(
        !allowed(&decide(&custom, &with_typ(Some("at+jwt"))).await),
        "900 s > 600 s"
    );
}

/// Random bytes for key material nobody holds the private half of.
fn random(len: usize) -> Vec<u8> {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = vec![0u8; len];
    SystemRandom::new().fill(&mut bytes).unwrap();
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_jwk_sets_are_refused_and_the_cached_keys_stay() {
    let good = SigningKey::generate("k1").unwrap();
    let evil = SigningKey::generate("k1").unwrap();
    let jwks = JwksServer::start(jwks_of(&[&good])).await;
    let elsewhere = JwksServer::start(jwks_of(&[&evil])).await;
    let issuer = "https://app.example.com";
    let mut config = test_config();
    config.trusted_issuers = vec![TrustedIssuer {
        algorithms: vec![
            ExternalAlgorithm::EdDSA,
            ExternalAlgorithm::ES256,
            ExternalAlgorithm::RS256,
        ],
        ..TrustedIssuer::new(issuer, jwks.url.clone(), issuer)
    }];
    let h = Harness::embedded_with(config);
    assert!(allowed(
        &decide(
            &h,
            &external_token(&good, "k1", issuer, h.clock.now(), json!({}))
        )
        .await
    ));
    assert_eq!(jwks.requests(), 1);

    let mut rsa_1024 = random(128);
    rsa_1024[0] |= 0x80;
    let mut sets = vec![
        (
            "RSA-1024",
            json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "n": B64.encode(&rsa_1024), "e": "AQAB"}]}).to_string(),
        ),
        (
            "an EC point off P-256",
            json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
                             "x": B64.encode([1u8; 32]), "y": B64.encode([1u8; 32])}]})
            .to_string(),
        ),
        (
            "kty oct",
            json!({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": B64.encode(random(32))}]}).to_string(),
        ),
        ("a kid twice", jwks_of(&[&good, &evil])),
        ("a kid twice, the other first", jwks_of(&[&evil, &good])),
        (
            "over 64 KiB",
            json!({"keys": [evil.public_jwk()], "padding": "x".repeat(64 * 1024)}).to_string(),
        ),
    ];
    // Served as the JWK Set itself, each would replace the cached key with the attacker's.
    for (what, body) in sets.drain(..) {
        jwks.serve(body);
        check_refused_fetch(&h, &jwks, &good, &evil, issuer, what).await;
    }
    jwks.serve(jwks_of(&[&evil]));

    jwks.set_redirect(Some(elsewhere.url.clone()));
    check_refused_fetch(&h, &jwks, &good, &evil, issuer, "a redirect").await;
    assert_eq!(elsewhere.requests(), 0, "a redirect is never followed");
    jwks.set_redirect(None);

    jwks.set_delay(FETCH_TIMEOUT + std::time::Duration::from_secs(1));
    check_refused_fetch(
        &h,
        &jwks,
        &good,
        &evil,
        issuer,
        "an answer after the timeout",
    )
    .await;
}

/// With a refetch due, the set now served is fetched and refused: the cached key keeps
/// verifying, the attacker's key `evil` (same kid) never does.
async fn check_refused_fetch(
    h: &Harness,
    jwks: &JwksServer,
    good: &SigningKey,
    evil: &SigningKey,
    issuer: &str,
    what: &str,
) {
    h.clock.advance(KEYS_TTL_SECS + REFETCH_COOLDOWN_SECS);
    let before = jwks.requests();
    let now = h.clock.now();
    let answer = decide(h, &external_token(good, "k1", issuer, now, json!({}))).await;
    assert!(allowed(&answer), "{what}: the cached key stays: {answer}");
    assert_eq!(jwks.requests(), before + 1, "{what}: a refresh was tried");
    assert!(
        !allowed(&decide(h, &external_token(evil, "k1", issuer, now, json!({}))).await),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_issuer_does_not_stall_tokens_whose_key_is_cached() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = JwksServer::start(jwks_of(&[&key])).await;
    let issuer = "https://app.example.com";
    let h = harness(issuer, &jwks, vec![ExternalAlgorithm::EdDSA]);
    assert!(allowed(
        &decide(
            &h,
            &external_token(&key, "k1", issuer, h.clock.now(), json!({}))
        )
        .await
    ));

    // The keys go stale and the issuer slows down (within the fetch timeout).
    h.clock.advance(KEYS_TTL_SECS + 1);
    jwks.set_delay(FETCH_TIMEOUT / 2);
    let token = external_token(&key, "k1", issuer, h.clock.now(), json!({}));
    let refreshing = {
        let (service, token) = (h.service.clone(), token.clone());
        tokio::spawn(async move { service.authorize_bearer(&token).await.is_ok() })
    };
    while jwks.requests() < 2 {
        tokio::task::yield_now().await;
    }
    // While that request waits for the issuer, another with the same cached key does not.
    assert!(allowed(&decide(&h, &token).await));
    assert!(
        !refreshing.is_finished(),
        "the refresh is still waiting for the slow issuer"
    );
    assert!(refreshing.await.unwrap(), "and succeeds when it answers");
    assert_eq!(jwks.requests(), 2);
}

/// A trusted external issuer's users hold no roles here: every admin route refuses them at the
/// authorizer, however valid their token.
#[tokio::test(flavor = "multi_thread")]
async fn an_external_issuers_token_is_refused_on_every_admin_route() {
    let jwks = JwksServer::start(fixture("jwks.json")).await;
    let h = harness(BETTER_AUTH, &jwks, vec![ExternalAlgorithm::EdDSA]);
    let token = fixture("jwt-long-lived.txt");
    assert!(allowed(&decide(&h, &token).await), "valid elsewhere");
    let admin_routes: Vec<_> = shared::routes::ROUTES
        .iter()
        .filter(|r| r.access == shared::routes::Access::Admin)
        .collect();
    assert!(!admin_routes.is_empty());
    for route in admin_routes {
        let event = json!({
            "version": "2.0", "type": "REQUEST",
            "identitySource": [format!("Bearer {token}")],
            "routeKey": route.key(), "rawPath": route.path, "headers": {},
            "requestContext": {"http": {"method": route.method, "path": route.path}, "routeKey": route.key(), "stage": "$default"}
        });
        let answer = authorizer::handle(&h.service, event).await.unwrap();
        assert!(!allowed(&answer), "{}: {answer}", route.key());
    }
}
