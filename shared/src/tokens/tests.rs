use super::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use uuid::Uuid;

const ISS: &str = "https://auth.example.com";
const AUD: &str = "https://api.example.com";
const NOW: UnixTime = 1_795_788_000;

fn setup() -> (Tokens, Arc<KeyRing>) {
    let key = SigningKey::generate("current").unwrap();
    let ring = Arc::new(KeyRing::new(Some(key), &JwkSet::default()).unwrap());
    (Tokens::new(ring.clone(), ISS, AUD), ring)
}

fn claims(token_type: TokenType) -> Claims {
    let user = Uuid::new_v4();
    Claims {
        iss: ISS.into(),
        sub: user,
        aud: AUD.into(),
        exp: NOW + 900,
        nbf: NOW,
        iat: NOW,
        jti: Uuid::new_v4(),
        user_id: user,
        user_email: "a@example.com".into(),
        token_type,
        sid: Uuid::new_v4(),
        email_verified: Some(true),
        amr: Some(vec![crate::model::Amr::Pwd]),
        idp: None,
        roles: Vec::new(),
    }
}

/// Signs any header and payload with `key`, to build tokens the minting code never would.
fn sign_raw(key: &SigningKey, header: &Value, payload: &Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(serde_json::to_vec(header).unwrap()),
        B64.encode(serde_json::to_vec(payload).unwrap())
    );
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature))
}

fn access_header() -> Value {
    json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "current"})
}

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
}

#[test]
fn access_token_has_the_contract_header_and_claims() {
    let (tokens, _) = setup();
    let c = claims(TokenType::Access);
    let token = tokens.mint(&c, "current").unwrap();

    let header = decode_part(&token, 0);
    assert_eq!(
        header,
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "current"})
    );
    let payload = decode_part(&token, 1);
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
        assert!(payload.get(claim).is_some(), "missing {claim}");
    }
    assert_eq!(payload["token_type"], "access");
    assert_eq!(payload["sub"], payload["user_id"]);
    assert_eq!(tokens.verify(&token, TokenType::Access, NOW).unwrap(), c);
}

#[test]
fn refresh_token_has_its_own_typ() {
    let (tokens, _) = setup();
    let token = tokens.mint(&claims(TokenType::Refresh), "current").unwrap();
    assert_eq!(decode_part(&token, 0)["typ"], "rt+jwt");
    assert_eq!(decode_part(&token, 1)["token_type"], "refresh");
    assert!(tokens.verify(&token, TokenType::Refresh, NOW).is_ok());
}

#[test]
fn minting_is_deterministic() {
    let (tokens, _) = setup();
    let c = claims(TokenType::Refresh);
    assert_eq!(
        tokens.mint(&c, "current").unwrap(),
        tokens.mint(&c, "current").unwrap()
    );
}

#[test]
fn minting_with_a_retired_kid_fails() {
    let (tokens, _) = setup();
    let err = tokens.mint(&claims(TokenType::Access), "old").unwrap_err();
    assert_eq!(err, TokenError::KeyRetired("old".into()));
}

#[test]
fn verify_only_instances_cannot_mint() {
    let key = SigningKey::generate("current").unwrap();
    let ring = KeyRing::verify_only(&JwkSet {
        keys: vec![key.public_jwk()],
    })
    .unwrap();
    let tokens = Tokens::new(Arc::new(ring), ISS, AUD);
    assert_eq!(
        tokens.mint(&claims(TokenType::Access), "current"),
        Err(TokenError::NoSigningKey)
    );
}

#[test]
fn a_token_signed_by_another_key_is_refused() {
    let (tokens, _) = setup();
    // Same kid, different key: the signature check fails.
    let (other, _) = setup();
    let token = other.mint(&claims(TokenType::Access), "current").unwrap();
    assert_eq!(
        tokens.verify(&token, TokenType::Access, NOW),
        Err(TokenError::BadSignature)
    );
    // A kid the ring does not hold.
    let stranger = SigningKey::generate("stranger").unwrap();
    let token = sign_raw(
        &stranger,
        &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "stranger"}),
        &serde_json::to_value(claims(TokenType::Access)).unwrap(),
    );
    assert_eq!(
        tokens.verify(&token, TokenType::Access, NOW),
        Err(TokenError::UnknownKey)
    );
}

#[test]
fn a_token_without_kid_is_refused() {
    let (tokens, ring) = setup();
    let token = sign_raw(
        ring.signing().unwrap(),
        &json!({"alg": "EdDSA", "typ": "at+jwt"}),
        &serde_json::to_value(claims(TokenType::Access)).unwrap(),
    );
    assert_eq!(
        tokens.verify(&token, TokenType::Access, NOW),
        Err(TokenError::UnknownKey)
    );
}

#[test]
fn alg_none_is_refused() {
    let (tokens, _) = setup();
    let payload = serde_json::to_vec(&claims(TokenType::Access)).unwrap();
    for header in [
        json!({"alg": "none", "typ": "at+jwt", "kid": "current"}),
        json!({"alg": "None", "typ": "at+jwt", "kid": "current"}),
    ] {
        let unsigned = format!(
            "{}.{}.",
            B64.encode(serde_json::to_vec(&header).unwrap()),
            B64.encode(&payload)
        );
        assert!(tokens.verify(&unsigned, TokenType::Access, NOW).is_err());
        let with_junk = format!("{unsigned}AAAA");
        assert_eq!(
            tokens.verify(&with_junk, TokenType::Access, NOW),
            Err(TokenError::Jws(JwsError::AlgorithmNotAllowed))
        );
    }
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    use aws_lc_rs::hmac;
    let (tokens, ring) = setup();
    let public = ring.jwks().keys[0].clone();
    let x = B64.decode(public.x.as_ref().unwrap()).unwrap();
    let input = format!(
        "{}.{}",
        B64.encode(br#"{"alg":"HS256","typ":"at+jwt","kid":"current"}"#),
        B64.encode(serde_json::to_vec(&claims(TokenType::Access)).unwrap())
    );
    // Both classic confusions: the raw key bytes and the JWK JSON as the HMAC secret.
    for secret in [x, serde_json::to_vec(&public).unwrap()] {
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        let token = format!("{input}.{}", B64.encode(tag.as_ref()));
        assert_eq!(
            tokens.verify(&token, TokenType::Access, NOW),
            Err(TokenError::Jws(JwsError::AlgorithmNotAllowed))
        );
    }
}

#[test]
fn other_asymmetric_algorithms_are_refused_for_own_tokens() {
    let (tokens, ring) = setup();
    let token = sign_raw(
        ring.signing().unwrap(),
        &json!({"alg": "ES256", "typ": "at+jwt", "kid": "current"}),
        &serde_json::to_value(claims(TokenType::Access)).unwrap(),
    );
    assert_eq!(
        tokens.verify(&token, TokenType::Access, NOW),
        Err(TokenError::Jws(JwsError::AlgorithmNotAllowed))
    );
}

#[test]
fn expiry_is_checked_against_the_given_clock_with_30_seconds_leeway() {
    let (tokens, _) = setup();
    let c = claims(TokenType::Access);
    let token = tokens.mint(&c, "current").unwrap();
    assert!(tokens.verify(&token, TokenType::Access, c.exp - 1).is_ok());
    assert!(
        tokens
            .verify(&token, TokenType::Access, c.exp + LEEWAY_SECS - 1)
            .is_ok()
    );
    assert_eq!(
        tokens.verify(&token, TokenType::Access, c.exp + LEEWAY_SECS),
        Err(TokenError::Expired)
    );
    assert_eq!(
        tokens.verify(&token, TokenType::Access, c.exp + 3600),
        Err(TokenError::Expired)
    );
}

#[test]
fn not_yet_valid_tokens_are_refused() {
    let (tokens, _) = setup();
    let mut c = claims(TokenType::Access);
    c.nbf = NOW + 120;
    c.iat = NOW;
    let token = tokens.mint(&c, "current").unwrap();
    assert_eq!(
        tokens.verify(&token, TokenType::Access, NOW),
        Err(TokenError::NotYetValid)
    );
    assert!(
        tokens
            .verify(&token, TokenType::Access, NOW + 120 - LEEWAY_SECS)
            .is_ok()
    );

    let mut c = claims(TokenType::Access);
    c.iat = NOW + 600;
    let token = tokens.mint(&c, "current").unwrap();
    assert_eq!(
        tokens.verify(&token, TokenType::Access, NOW),
        Err(TokenError::NotYetValid)
    );
}

#[test]
fn wrong_issuer_or_audience_is_refused() {
    let (tokens, _) = setup();
    let mut c = claims(TokenType::Access);
    c.iss = "https://evil.example.com".into();
    let token = tokens.mint(&c, "current").unwrap();
    assert_eq!(
        tokens.verify(&token, TokenType::Access, NOW),
        Err(TokenError::WrongIssuer)
    );

    let mut c = claims(TokenType::Access);
    c.aud = "https://other-api.example.com".into();
    let token = tokens.mint(&c, "current").unwrap();
    assert_eq!(
        tokens.verify(&token, TokenType::Access, NOW),
        Err(TokenError::WrongAudience)
    );
}

#[test]
fn audience_as_an_array_is_refused() {
    let (tokens, ring) = setup();
    let mut payload = serde_json::to_value(claims(TokenType::Access)).unwrap();
    payload["aud"] = json!([AUD]);
    let token = sign_raw(ring.signing().unwrap(), &access_header(), &payload);
    assert_eq!(
        tokens.verify(&token, TokenType::Access, NOW),
        Err(TokenError::InvalidClaims)
    );
}

#[test]
fn token_type_and_typ_must_both_match() {
    let (tokens, ring) = setup();
    let refresh = tokens.mint(&claims(TokenType::Refresh), "current").unwrap();
    let access = tokens.mint(&claims(TokenType::Access), "current").unwrap();
    assert_eq!(
        tokens.verify(&refresh, TokenType::Access, NOW),
        Err(TokenError::WrongTyp("at+jwt"))
    );
    assert_eq!(
        tokens.verify(&access, TokenType::Refresh, NOW),
        Err(TokenError::WrongTyp("rt+jwt"))
    );

    // A refresh-typed claim set under an access typ header: the claim check catches it.
    let token = sign_raw(
        ring.signing().unwrap(),
        &access_header(),
        &serde_json::to_value(claims(TokenType::Refresh)).unwrap(),
    );
    assert_eq!(
        tokens.verify(&token, TokenType::Access, NOW),
        Err(TokenError::WrongTokenType("access"))
    );

    // typ missing, or the generic JWT.
    for header in [
        json!({"alg": "EdDSA", "kid": "current"}),
        json!({"alg": "EdDSA", "typ": "JWT", "kid": "current"}),
    ] {
        let token = sign_raw(
            ring.signing().unwrap(),
            &header,
            &serde_json::to_value(claims(TokenType::Access)).unwrap(),
        );
        assert_eq!(
            tokens.verify(&token, TokenType::Access, NOW),
            Err(TokenError::WrongTyp("at+jwt"))
        );
    }
}

#[test]
fn every_claim_is_required_and_typed() {
    let (tokens, ring) = setup();
    let full = serde_json::to_value(claims(TokenType::Access)).unwrap();
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
        let mut missing = full.clone();
        missing.as_object_mut().unwrap().remove(claim);
        let token = sign_raw(ring.signing().unwrap(), &access_header(), &missing);
        assert_eq!(
            tokens.verify(&token, TokenType::Access, NOW),
            Err(TokenError::InvalidClaims),
            "without {claim}"
        );

        let mut wrong = full.clone();
        wrong[claim] = match full[claim] {
            Value::String(_) => json!(12345),
            _ => json!("12345"),
        };
        let token = sign_raw(ring.signing().unwrap(), &access_header(), &wrong);
        assert_eq!(
            tokens.verify(&token, TokenType::Access, NOW),
            Err(TokenError::InvalidClaims),
            "{claim} of the wrong type"
        );
    }
    // Fractional times and non-UUID ids are wrong types too.
    for (claim, value) in [
        ("exp", json!(1.5e9)),
        ("jti", json!("not-a-uuid")),
        ("token_type", json!("id")),
    ] {
        let mut wrong = full.clone();
        wrong[claim] = value;
        let token = sign_raw(ring.signing().unwrap(), &access_header(), &wrong);
        assert_eq!(
            tokens.verify(&token, TokenType::Access, NOW),
            Err(TokenError::InvalidClaims),
            "{claim}"
        );
    }
}

#[test]
fn sub_must_be_the_user_id() {
    let (tokens, _) = setup();
    let mut c = claims(TokenType::Access);
    c.sub = Uuid::new_v4();
    let token = tokens.mint(&c, "current").unwrap();
    assert_eq!(
        tokens.verify(&token, TokenType::Access, NOW),
        Err(TokenError::InvalidClaims)
    );
}

#[test]
fn a_tampered_payload_is_refused() {
    let (tokens, _) = setup();
    let token = tokens.mint(&claims(TokenType::Access), "current").unwrap();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut payload = decode_part(&token, 1);
    payload["user_id"] = json!(Uuid::new_v4());
    payload["sub"] = payload["user_id"].clone();
    parts[1] = B64.encode(serde_json::to_vec(&payload).unwrap());
    let tampered = parts.join(".");
    assert_eq!(
        tokens.verify(&tampered, TokenType::Access, NOW),
        Err(TokenError::BadSignature)
    );

    // A changed header is tampering too.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[0] = B64.encode(br#"{"alg":"EdDSA","typ":"at+jwt","kid":"current","x":1}"#);
    assert_eq!(
        tokens.verify(&parts.join("."), TokenType::Access, NOW),
        Err(TokenError::BadSignature)
    );

    // And a flipped signature bit.
    let mut bytes = token.into_bytes();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(bytes).unwrap();
    assert!(tokens.verify(&flipped, TokenType::Access, NOW).is_err());
}

#[test]
fn previous_keys_still_verify_after_rotation() {
    let old = SigningKey::generate("old").unwrap();
    let old_ring = Arc::new(KeyRing::new(Some(old), &JwkSet::default()).unwrap());
    let old_tokens = Tokens::new(old_ring.clone(), ISS, AUD);
    let token = old_tokens.mint(&claims(TokenType::Access), "old").unwrap();

    let new = SigningKey::generate("new").unwrap();
    let ring = KeyRing::new(Some(new), &old_ring.jwks()).unwrap();
    let tokens = Tokens::new(Arc::new(ring), ISS, AUD);
    assert!(tokens.verify(&token, TokenType::Access, NOW).is_ok());
    assert_eq!(tokens.signing_kid(), Some("new"));
}

#[test]
fn token_hash_is_hex_sha256() {
    // SHA-256("abc") from FIPS 180-2.
    assert_eq!(
        token_hash("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert!(hashes_match(&token_hash("abc"), &token_hash("abc")));
    assert!(!hashes_match(&token_hash("abc"), &token_hash("abd")));
    assert!(!hashes_match("ab", "abc"));
}

#[test]
fn the_crates_crypto_backend_is_built_in_and_signs_and_verifies() {
    // A build without jsonwebtoken's aws_lc_rs feature has no provider, and would panic at the
    // first token: this fails CI instead of a cold start.
    assert!(jsonwebtoken::crypto::CryptoProvider::try_get_default().is_some());
    let key = SigningKey::generate("backend").unwrap();
    let signature = key.sign_b64(b"header.payload").unwrap();
    assert!(key.verifying_key().verify(b"header.payload", &signature));
    // Its signatures are plain Ed25519: aws-lc-rs itself agrees.
    let x = B64.decode(key.public_jwk().x.unwrap()).unwrap();
    let raw = B64.decode(&signature).unwrap();
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &x)
        .verify(b"header.payload", &raw)
        .unwrap();
}

#[test]
fn crit_null_is_refused_like_any_crit() {
    let (tokens, ring) = setup();
    let payload = serde_json::to_value(claims(TokenType::Access)).unwrap();
    for crit in [json!(null), json!([]), json!(["b64"]), json!(["exp"])] {
        let mut header = access_header();
        header["crit"] = crit.clone();
        if crit == json!(["b64"]) {
            // What jsonwebtoken itself would let through.
            header["b64"] = json!(true);
        }
        let token = sign_raw(ring.signing().unwrap(), &header, &payload);
        assert_eq!(
            tokens.verify(&token, TokenType::Access, NOW),
            Err(TokenError::Jws(JwsError::CriticalHeader)),
            "{crit}"
        );
    }
}

#[test]
fn an_ed25519_signature_with_s_plus_l_is_refused() {
    // L, the order of the Ed25519 group, little-endian (RFC 8032 §5.1).
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let (tokens, _) = setup();
    let token = tokens.mint(&claims(TokenType::Access), "current").unwrap();
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut signature = B64.decode(signature).unwrap();
    // S + L: the same S modulo L, so a verifier that does not insist on S < L accepts it,
    // and the token would have a second spelling.
    let mut carry = 0u16;
    for (s, l) in signature[32..].iter_mut().zip(L) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 32 bytes for any canonical S");
    let malleated = format!("{input}.{}", B64.encode(&signature));
    assert_eq!(
        tokens.verify(&malleated, TokenType::Access, NOW),
        Err(TokenError::BadSignature)
    );
    assert!(tokens.verify(&token, TokenType::Access, NOW).is_ok());
}

#[test]
fn base64url_with_non_zero_trailing_bits_is_refused_in_each_part() {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (tokens, ring) = setup();
    let mut payload = serde_json::to_value(claims(TokenType::Access)).unwrap();
    // Lengths whose encodings end in a character with spare bits (not a multiple of 3).
    let mut header = access_header();
    while serde_json::to_vec(&header).unwrap().len().is_multiple_of(3) {
        header["x"] = json!(header["x"].as_str().unwrap_or("").to_owned() + "x");
    }
    while serde_json::to_vec(&payload)
        .unwrap()
        .len()
        .is_multiple_of(3)
    {
        payload["x"] = json!(payload["x"].as_str().unwrap_or("").to_owned() + "x");
    }
    let token = sign_raw(ring.signing().unwrap(), &header, &payload);
    assert!(tokens.verify(&token, TokenType::Access, NOW).is_ok());
    let parts: Vec<&str> = token.split('.').collect();
    for index in 0..3 {
        let part = parts[index];
        let last = part.as_bytes()[part.len() - 1];
        let at = ALPHABET.iter().position(|&c| c == last).unwrap();
        // The same data bits with the lowest spare bit set: decodes, leniently, to the same
        // bytes, so the signature would still cover it.
        let altered = format!("{}{}", &part[..part.len() - 1], ALPHABET[at + 1] as char);
        let mut changed = parts.clone();
        changed[index] = &altered;
        let result = tokens.verify(&changed.join("."), TokenType::Access, NOW);
        assert!(
            matches!(result, Err(TokenError::Jws(JwsError::Malformed(_)))),
            "part {index}: {result:?}"
        );
    }
}
