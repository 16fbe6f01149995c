//! The token attack battery, against the authorizer and the refresh endpoint on both stores:
//! every forged, tampered, misused or stale token is refused, and no refusal writes anything.
//! All of it twice: as is, and with a trusted external issuer configured, where routing by the
//! not yet verified `iss` adds its own attacks (each issuer's name with the other's key, names
//! that differ from a trusted one by case, a slash or whitespace).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use integration_tests::jwks_server::JwksServer;
use integration_tests::{Backend, Harness, on_both_stores, test_config};
use lambda_http::Body;
use serde_json::{Value, json};
use shared::authorizer;
use shared::config::TrustedIssuer;
use shared::http::body_bytes;
use shared::{Clock, Password, SignedIn, SigningKey};

/// One attack: a name and the token it presents.
struct Attack {
    name: &'static str,
    token: String,
}

fn encode(value: &Value) -> String {
    B64.encode(serde_json::to_vec(value).unwrap())
}

/// A token with any header and claims, signed by `key`.
fn forge(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", encode(header), encode(claims));
    format!("{input}.{}", B64.encode(key.sign(input.as_bytes())))
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn with(mut value: Value, key: &str, replacement: Value) -> Value {
    if replacement.is_null() {
        value.as_object_mut().unwrap().remove(key);
    } else {
        value[key] = replacement;
    }
    value
}

/// Attacks that need no store state beyond a signed-in user: refused on their face.
fn stateless_attacks(h: &Harness, signed_in: &SignedIn, typ: &str, jku: &str) -> Vec<Attack> {
    let key = h.keys.signing().unwrap();
    let kid = key.kid().to_owned();
    // The genuine token of the kind under attack, and its claims.
    let real = if typ == "rt+jwt" {
        &signed_in.refresh_token
    } else {
        &signed_in.access_token
    };
    let base = claims_of(real);
    let header = json!({"alg": "EdDSA", "typ": typ, "kid": kid});
    let sign = |header: &Value, claims: &Value| forge(key, header, claims);
    let now = h.clock.now();
    let attacker = SigningKey::generate("attacker").unwrap();
    let public_x = h.keys.jwks().keys[0].x.clone().unwrap();

    let mut attacks = vec![
        Attack {
            name: "alg none, unsigned",
            token: format!(
                "{}.{}.",
                encode(&json!({"alg": "none", "typ": typ, "kid": kid})),
                encode(&base)
            ),
        },
        Attack {
            name: "alg none, junk signature",
            token: format!(
                "{}.{}.AAAA",
                encode(&json!({"alg": "none", "typ": typ})),
                encode(&base)
            ),
        },
        Attack {
            name: "alg None",
            token: format!(
                "{}.{}.AAAA",
                encode(&json!({"alg": "None", "typ": typ, "kid": kid})),
                encode(&base)
            ),
        },
        Attack {
            name: "key not in the JWK Set",
            token: forge(
                &attacker,
                &json!({"alg": "EdDSA", "typ": typ, "kid": "attacker"}),
                &base,
            ),
        },
        Attack {
            name: "another key under our kid",
            token: forge(&attacker, &header, &base),
        },
        Attack {
            name: "jwk header with the attacker's key",
            token: forge(
                &attacker,
                &json!({"alg": "EdDSA", "typ": typ, "kid": "attacker", "jwk": attacker.public_jwk()}),
                &base,
            ),
        },
        Attack {
            name: "jku header pointing elsewhere",
            token: forge(
                &attacker,
                &json!({"alg": "EdDSA", "typ": typ, "kid": "attacker", "jku": jku}),
                &base,
            ),
        },
        Attack {
            name: "x5u header pointing elsewhere",
            token: forge(
                &attacker,
                &json!({"alg": "EdDSA", "typ": typ, "kid": "attacker", "x5u": jku}),
                &base,
            ),
        },
        Attack {
            name: "crit null",
            token: sign(
                &json!({"alg": "EdDSA", "typ": typ, "kid": kid, "crit": null}),
                &base,
            ),
        },
        Attack {
            name: "crit b64 (true), what jsonwebtoken alone accepts",
            token: sign(
                &json!({"alg": "EdDSA", "typ": typ, "kid": kid, "crit": ["b64"], "b64": true}),
                &base,
            ),
        },
        Attack {
            name: "Ed25519 signature with S + L",
            token: s_plus_l(real),
        },
        Attack {
            name: "crit header",
            token: sign(
                &json!({"alg": "EdDSA", "typ": typ, "kid": kid, "crit": ["exp"]}),
                &base,
            ),
        },
        Attack {
            name: "crit b64=false",
            token: sign(
                &json!({"alg": "EdDSA", "typ": typ, "kid": kid, "crit": ["b64"], "b64": false}),
                &base,
            ),
        },
        Attack {
            name: "no kid",
            token: sign(&json!({"alg": "EdDSA", "typ": typ}), &base),
        },
        Attack {
            name: "wrong typ",
            token: sign(&json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}), &base),
        },
        Attack {
            name: "no typ",
            token: sign(&json!({"alg": "EdDSA", "kid": kid}), &base),
        },
        Attack {
            name: "wrong iss",
            token: sign(
                &header,
                &with(base.clone(), "iss", json!("https://evil.example")),
            ),
        },
        Attack {
            name: "wrong aud",
            token: sign(
                &header,
                &with(base.clone(), "aud", json!("https://other.example")),
            ),
        },
        Attack {
            name: "aud as a list",
            token: sign(
                &header,
                &with(base.clone(), "aud", json!([h.config.audience])),
            ),
        },
        Attack {
            name: "expired",
            token: sign(&header, &with(base.clone(), "exp", json!(now - 3600))),
        },
        Attack {
            name: "not yet valid",
            token: sign(&header, &with(base.clone(), "nbf", json!(now + 3600))),
        },
        Attack {
            name: "issued in the future",
            token: sign(&header, &with(base.clone(), "iat", json!(now + 3600))),
        },
        Attack {
            name: "sub differs from user_id",
            token: sign(
                &header,
                &with(base.clone(), "sub", json!(uuid::Uuid::new_v4())),
            ),
        },
        Attack {
            name: "tampered payload",
            token: {
                let parts: Vec<&str> = real.split('.').collect();
                let changed = with(base.clone(), "user_email", json!("admin@example.com"));
                format!("{}.{}.{}", parts[0], encode(&changed), parts[2])
            },
        },
        Attack {
            name: "tampered header",
            token: {
                let parts: Vec<&str> = real.split('.').collect();
                format!(
                    "{}.{}.{}",
                    encode(&json!({"alg": "EdDSA", "typ": typ, "kid": kid, "x": 1})),
                    parts[1],
                    parts[2]
                )
            },
        },
        Attack {
            name: "truncated signature",
            token: { real[..real.len() - 4].to_owned() },
        },
        Attack {
            name: "oversized (over 8 KiB)",
            token: sign(&header, &with(base.clone(), "pad", json!("x".repeat(9000)))),
        },
        Attack {
            name: "broken base64",
            token: signed_in.access_token.replacen('.', ".!!", 1),
        },
        Attack {
            name: "padded base64",
            token: {
                let parts: Vec<&str> = signed_in.access_token.split('.').collect();
                format!("{}=.{}.{}", parts[0], parts[1], parts[2])
            },
        },
        Attack {
            name: "JWS JSON serialisation",
            token: json!({
                "payload": encode(&base),
                "signatures": [{"protected": encode(&header), "signature": "AAAA"}]
            })
            .to_string(),
        },
        Attack {
            name: "two parts",
            token: signed_in
                .access_token
                .rsplit_once('.')
                .unwrap()
                .0
                .to_owned(),
        },
        Attack {
            name: "four parts",
            token: format!("{}.AAAA", signed_in.access_token),
        },
        Attack {
            name: "empty",
            token: String::new(),
        },
        Attack {
            name: "NUL and control characters",
            token: format!("{}\u{0}\u{7}", signed_in.access_token),
        },
    ];
    for kid in [
        "../../../etc/passwd",
        "' OR '1'='1",
        "kid\u{0}",
        "https://evil.example/key",
        &"k".repeat(300),
        "*",
    ] {
        attacks.push(Attack {
            name: "kid with path or injection characters",
            token: sign(&json!({"alg": "EdDSA", "typ": typ, "kid": kid}), &base),
        });
    }
    for (alg, secret) in [
        ("HS256", B64.decode(&public_x).unwrap()),
        ("HS256", serde_json::to_vec(&h.keys.jwks()).unwrap()),
        ("HS512", b"secret".to_vec()),
    ] {
        use aws_lc_rs::hmac;
        let algorithm = if alg == "HS256" {
            hmac::HMAC_SHA256
        } else {
            hmac::HMAC_SHA512
        };
        let input = format!(
            "{}.{}",
            encode(&json!({"alg": alg, "typ": typ, "kid": kid})),
            encode(&base)
        );
        let tag = hmac::sign(&hmac::Key::new(algorithm, &secret), input.as_bytes());
        attacks.push(Attack {
            name: "HMAC signed with the public key or a guess",
            token: format!("{input}.{}", B64.encode(tag.as_ref())),
        });
    }
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "jti",
        "user_id",
        "user_email",
        "token_type",
        "sid",
    ] {
        attacks.push(Attack {
            name: "missing claim",
            token: sign(&header, &with(base.clone(), claim, Value::Null)),
        });
        let wrong = if base[claim].is_string() {
            json!(42)
        } else {
            json!("42")
        };
        attacks.push(Attack {
            name: "wrong-typed claim",
            token: sign(&header, &with(base.clone(), claim, wrong)),
        });
    }
    let spare_bits = sign(&padded_to_spare_bits(&header), &padded_to_spare_bits(&base));
    // Each of the three parts (the signature, 64 bytes, always has spare bits).
    assert_eq!(trailing_bits_set(&spare_bits).len(), 3);
    for (index, token) in trailing_bits_set(&spare_bits) {
        attacks.push(Attack {
            name: [
                "trailing bits in the header",
                "trailing bits in the payload",
                "trailing bits in the signature",
            ][index],
            token,
        });
    }
    attacks
}

/// The token with its signature's S replaced by S + L (L the Ed25519 group order): the same
/// value modulo L, so a lax verifier would take it for a second spelling of the token.
fn s_plus_l(token: &str) -> String {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut signature = B64.decode(signature).unwrap();
    let mut carry = 0u16;
    for (s, l) in signature[32..].iter_mut().zip(L) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    format!("{input}.{}", B64.encode(&signature))
}

/// A header or claims padded so that its encoding ends with spare bits.
fn padded_to_spare_bits(claims: &Value) -> Value {
    let mut claims = claims.clone();
    while serde_json::to_vec(&claims).unwrap().len().is_multiple_of(3) {
        let pad = claims["pad"].as_str().unwrap_or("").to_owned() + "x";
        claims["pad"] = json!(pad);
    }
    claims
}

/// For each part whose last character carries spare bits, the token with one of them set: it
/// decodes, leniently, to the same bytes.
fn trailing_bits_set(token: &str) -> Vec<(usize, String)> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let parts: Vec<&str> = token.split('.').collect();
    (0..3)
        .filter(|&i| !parts[i].len().is_multiple_of(4))
        .map(|i| {
            let part = parts[i];
            let at = ALPHABET
                .iter()
                .position(|&c| c == part.as_bytes()[part.len() - 1])
                .unwrap();
            let altered = format!("{}{}", &part[..part.len() - 1], ALPHABET[at + 1] as char);
            let mut changed = parts.clone();
            changed[i] = &altered;
            (i, changed.join("."))
        })
        .collect()
}

async fn authorizer_allows(h: &Harness, token: &str) -> bool {
    let event = json!({
        "version": "2.0", "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/$default/GET/auth/me",
        "identitySource": [format!("Bearer {token}")],
        "routeKey": "GET /auth/me", "rawPath": "/auth/me", "rawQueryString": "",
        "headers": {"authorization": format!("Bearer {token}")},
        "requestContext": {"http": {"method": "GET", "path": "/auth/me", "sourceIp": "203.0.113.1"},
                           "requestId": "x", "routeKey": "GET /auth/me", "stage": "$default"}
    });
    match authorizer::handle(&h.service, event).await {
        Ok(answer) => answer["isAuthorized"] == true,
        Err(e) => panic!("the authorizer failed instead of deciding: {e}"),
    }
}

async fn refresh_status(h: &Harness, token: &str) -> (u16, Value) {
    let event = json!({
        "version": "2.0", "routeKey": "POST /auth/refresh", "rawPath": "/auth/refresh", "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/auth/refresh", "sourceIp": "203.0.113.1"},
                           "requestId": "x", "routeKey": "POST /auth/refresh", "stage": "$default"},
        "body": json!({"refresh_token": token}).to_string(),
        "isBase64Encoded": false
    });
    let response = integration_tests::invoke(&*h.service, &event).await;
    let body: Value = match response.body() {
        Body::Empty => Value::Null,
        body => serde_json::from_slice(body_bytes(body)).unwrap_or(Value::Null),
    };
    (response.status().as_u16(), body)
}

on_both_stores!(
    forged_and_malformed_tokens_are_refused_before_any_store_call,
    stale_tokens_are_refused_without_writing,
);

async fn forged_and_malformed_tokens_are_refused_before_any_store_call(h: Harness) {
    let signed_in = h.register("victim@example.com").await;
    // Any request to this address would mean a key location header was followed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jku = format!("http://{}/jwks.json", listener.local_addr().unwrap());

    let calls = h.calls.total();
    let access_attacks = stateless_attacks(&h, &signed_in, "at+jwt", &jku);
    for attack in &access_attacks {
        assert!(
            !authorizer_allows(&h, &attack.token).await,
            "authorizer allowed: {}",
            attack.name
        );
    }
    let refresh_attacks = stateless_attacks(&h, &signed_in, "rt+jwt", &jku);
    for attack in &refresh_attacks {
        let (status, body) = refresh_status(&h, &attack.token).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("invalid_token")),
            "refresh: {}",
            attack.name
        );
    }
    assert_eq!(
        h.calls.total(),
        calls,
        "no store call for any of {} attacks",
        access_attacks.len() + refresh_attacks.len()
    );
    let fetched =
        tokio::time::timeout(std::time::Duration::from_millis(200), listener.accept()).await;
    assert!(fetched.is_err(), "a jku or x5u header was followed");

    // The real tokens still work: nothing above changed any state.
    assert!(authorizer_allows(&h, &signed_in.access_token).await);
    assert_eq!(refresh_status(&h, &signed_in.refresh_token).await.0, 200);
}

async fn stale_tokens_are_refused_without_writing(h: Harness) {
    let signed_in = h.register("stale@example.com").await;
    let spare = h
        .service
        .login(
            "stale@example.com",
            &Password::new("correct horse battery staple"),
            None,
        )
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let principal = h.service.authorize(&signed_in.access_token).await.unwrap();

    // A refresh token at the authorizer, an access token at refresh.
    let writes = h.calls.writes();
    assert!(
        !authorizer_allows(&h, &signed_in.refresh_token).await,
        "refresh token at the authorizer"
    );
    assert_eq!(
        refresh_status(&h, &signed_in.access_token).await.0,
        401,
        "access token at refresh"
    );

    // A revoked session.
    h.service
        .logout(principal.user_id, principal.chain_id, false)
        .await
        .unwrap();
    let writes_after_logout = h.calls.writes();
    assert!(writes_after_logout > writes);
    h.clock.advance(120);
    assert!(
        !authorizer_allows(&h, &signed_in.access_token).await,
        "revoked session"
    );
    assert_eq!(
        refresh_status(&h, &signed_in.refresh_token).await.0,
        401,
        "revoked session at refresh"
    );

    // A deactivated user.
    h.store
        .set_active(signed_in.user.id, false, h.clock.now())
        .await
        .unwrap();
    assert!(
        !authorizer_allows(&h, &spare.access_token).await,
        "deactivated user"
    );
    assert_eq!(
        refresh_status(&h, &spare.refresh_token).await.0,
        401,
        "deactivated user at refresh"
    );
    assert_eq!(
        h.calls.writes(),
        writes_after_logout,
        "refusals wrote nothing"
    );
}

/// The external issuer of the battery's second run, its key and its JWKS endpoint.
const EXTERNAL: &str = "https://app.test.example";

struct Trusted {
    key: SigningKey,
    jwks: JwksServer,
}

/// A harness that also trusts [`EXTERNAL`]: routing a token by its not yet verified `iss` is
/// then attack surface too.
async fn trusting(backend: Backend) -> (Harness, Trusted) {
    let key = SigningKey::generate("external-1").unwrap();
    let jwks = JwksServer::start(json!({"keys": [key.public_jwk()]}).to_string()).await;
    let mut config = test_config();
    config.trusted_issuers = vec![TrustedIssuer::new(EXTERNAL, jwks.url.clone(), EXTERNAL)];
    let h = match backend {
        Backend::Dynamo => Harness::dynamo_with(config).await,
        Backend::Embedded => Harness::embedded_with(config),
    };
    (h, Trusted { key, jwks })
}

/// The battery again with a trusted issuer configured, and the attacks on routing by `iss`.
macro_rules! with_a_trusted_issuer {
    ($($backend:ident),*) => {
        mod with_a_trusted_issuer {
            use super::*;
            $(
                mod $backend {
                    use super::*;
                    fn backend() -> Backend {
                        match stringify!($backend) {
                            "dynamodb" => Backend::Dynamo,
                            _ => Backend::Embedded,
                        }
                    }
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn forged_and_malformed_tokens_are_refused_before_any_store_call() {
                        let (h, _trusted) = trusting(backend()).await;
                        super::super::forged_and_malformed_tokens_are_refused_before_any_store_call(h).await;
                    }
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn stale_tokens_are_refused_without_writing() {
                        let (h, _trusted) = trusting(backend()).await;
                        super::super::stale_tokens_are_refused_without_writing(h).await;
                    }
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn tokens_routed_by_a_forged_iss_are_refused() {
                        let (h, trusted) = trusting(backend()).await;
                        super::super::tokens_routed_by_a_forged_iss_are_refused(h, trusted).await;
                    }
                }
            )*
        }
    };
}
with_a_trusted_issuer!(dynamodb, embedded);

async fn tokens_routed_by_a_forged_iss_are_refused(h: Harness, trusted: Trusted) {
    let signed_in = h.register("routed@example.com").await;
    let ours = h.keys.signing().unwrap();
    let own_claims = claims_of(&signed_in.access_token);
    let own_header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": ours.kid()});
    let now = h.clock.now();
    let external_claims = json!({"sub": "user-7", "email": "ext@example.com", "iss": EXTERNAL,
                                 "aud": EXTERNAL, "iat": now, "exp": now + 900});
    let external_header = json!({"alg": "EdDSA", "kid": trusted.key.kid()});

    // Both kinds are accepted as they are.
    assert!(authorizer_allows(&h, &signed_in.access_token).await);
    assert!(authorizer_allows(&h, &forge(&trusted.key, &external_header, &external_claims)).await);
    assert_eq!(trusted.jwks.requests(), 1);

    let mut attacks = vec![
        // The external issuer's name, our key: its JWK Set does not hold our key.
        (
            "external iss signed with our key",
            forge(
                ours,
                &own_header,
                &with(own_claims.clone(), "iss", json!(EXTERNAL)),
            ),
        ),
        (
            "external claims signed with our key",
            forge(ours, &own_header, &external_claims),
        ),
        (
            "external claims signed with our key under the external kid",
            forge(ours, &external_header, &external_claims),
        ),
        // Our name, the external key: our key ring does not hold it.
        (
            "our iss signed with the external key",
            forge(&trusted.key, &own_header, &own_claims),
        ),
        (
            "our claims signed with the external key under its kid",
            forge(
                &trusted.key,
                &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": trusted.key.kid()}),
                &own_claims,
            ),
        ),
        (
            "external claims with our iss signed with the external key",
            forge(
                &trusted.key,
                &external_header,
                &with(external_claims.clone(), "iss", json!(h.config.issuer)),
            ),
        ),
    ];
    // Near misses of either issuer, validly signed by the key that issuer would use.
    for (issuer, key, header, claims) in [
        (
            EXTERNAL.to_owned(),
            &trusted.key,
            &external_header,
            &external_claims,
        ),
        (h.config.issuer.clone(), ours, &own_header, &own_claims),
    ] {
        for near in [
            issuer.to_uppercase(),
            issuer.replace("https://", "HTTPS://"),
            format!("{issuer}/"),
            format!(" {issuer}"),
            format!("{issuer} "),
            format!("{issuer}\n"),
            format!("{issuer}\u{200b}"),
        ] {
            attacks.push((
                "an iss that differs by case, a slash or whitespace",
                forge(key, header, &with(claims.clone(), "iss", json!(near))),
            ));
        }
    }
    // An iss of the wrong type, or twice: the parser takes neither for a trusted one.
    attacks.push((
        "iss as a list",
        forge(
            &trusted.key,
            &external_header,
            &with(external_claims.clone(), "iss", json!([EXTERNAL])),
        ),
    ));
    let calls = h.calls.total();
    for (name, token) in &attacks {
        assert!(
            !authorizer_allows(&h, token).await,
            "authorizer allowed: {name}"
        );
    }
    assert_eq!(h.calls.total(), calls, "no store call for any of them");
    // Unknown kids of the external issuer may ask its JWK Set once (the cooldown), no more.
    assert!(trusted.jwks.requests() <= 2, "{}", trusted.jwks.requests());
}
