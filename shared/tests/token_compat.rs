//! Minting is pinned byte for byte: a pair minted from fixed inputs (key, ids, times) must be
//! exactly the pair the hand-written JWS code minted before `jsonwebtoken` took over the
//! signing. A refresh replayed within its grace window straddling a deploy must still come back
//! as the identical pair it first got.

use std::sync::Arc;

use shared::model::{Amr, Claims, TokenType};
use shared::tokens::{JwkSet, KeyRing, SigningKey, Tokens};
use uuid::Uuid;

/// A fixed Ed25519 key (RFC 8032 test vector 1's seed), as a private JWK.
const KEY: &str = r#"{"kty":"OKP","crv":"Ed25519","kid":"compat-2026","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
const ISS: &str = "https://auth.example.com";
const AUD: &str = "https://api.example.com";

fn claims(token_type: TokenType, jti: &str, exp: i64, amr: Option<Vec<Amr>>) -> Claims {
    let user = Uuid::parse_str("0b7d6c1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e").unwrap();
    Claims {
        iss: ISS.into(),
        sub: user,
        aud: AUD.into(),
        exp,
        nbf: 1_795_788_000,
        iat: 1_795_788_000,
        jti: Uuid::parse_str(jti).unwrap(),
        user_id: user,
        user_email: "pinned@example.com".into(),
        token_type,
        sid: Uuid::parse_str("5f4e3d2c-1b0a-4987-a654-3210fedcba98").unwrap(),
        email_verified: Some(true),
        amr,
        idp: None,
        roles: Vec::new(),
    }
}

fn tokens() -> Tokens {
    let key = SigningKey::from_private_jwk(KEY).unwrap();
    let ring = KeyRing::new(Some(key), &JwkSet::default()).unwrap();
    Tokens::new(Arc::new(ring), ISS, AUD)
}

/// Today's pair and one with the claims a rotation recorded before `amr` and `email_verified`
/// existed (absent, not null).
fn pairs() -> Vec<(Claims, Claims)> {
    let access = claims(
        TokenType::Access,
        "11111111-2222-4333-8444-555555555555",
        1_795_788_900,
        Some(vec![Amr::Pwd, Amr::Otp]),
    );
    let refresh = claims(
        TokenType::Refresh,
        "66666666-7777-4888-9999-aaaaaaaaaaaa",
        1_798_380_000,
        Some(vec![Amr::Pwd, Amr::Otp]),
    );
    let mut old_access = access.clone();
    old_access.amr = None;
    old_access.email_verified = None;
    let mut old_refresh = refresh.clone();
    old_refresh.amr = None;
    old_refresh.email_verified = None;
    vec![(access, refresh), (old_access, old_refresh)]
}

// Recorded from the hand-written JWS code (commit 4cc1936) before the change.
const EXPECTED: [[&str; 2]; 2] = [
    [
        "eyJhbGciOiJFZERTQSIsImtpZCI6ImNvbXBhdC0yMDI2IiwidHlwIjoiYXQrand0In0.eyJpc3MiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20iLCJzdWIiOiIwYjdkNmMxZS0yZjNhLTRiNWMtOGQ5ZS0wZjFhMmIzYzRkNWUiLCJhdWQiOiJodHRwczovL2FwaS5leGFtcGxlLmNvbSIsImV4cCI6MTc5NTc4ODkwMCwibmJmIjoxNzk1Nzg4MDAwLCJpYXQiOjE3OTU3ODgwMDAsImp0aSI6IjExMTExMTExLTIyMjItNDMzMy04NDQ0LTU1NTU1NTU1NTU1NSIsInVzZXJfaWQiOiIwYjdkNmMxZS0yZjNhLTRiNWMtOGQ5ZS0wZjFhMmIzYzRkNWUiLCJ1c2VyX2VtYWlsIjoicGlubmVkQGV4YW1wbGUuY29tIiwidG9rZW5fdHlwZSI6ImFjY2VzcyIsInNpZCI6IjVmNGUzZDJjLTFiMGEtNDk4Ny1hNjU0LTMyMTBmZWRjYmE5OCIsImVtYWlsX3ZlcmlmaWVkIjp0cnVlLCJhbXIiOlsicHdkIiwib3RwIl19.D1RsOAx0shp4DhMevdG1ohkAvVKPd4eMUnX776SY5HsV4EuMF1J27CXOw-YXbWsPXi_R1CSpi0ni7RY69sc1Dg",
        "eyJhbGciOiJFZERTQSIsImtpZCI6ImNvbXBhdC0yMDI2IiwidHlwIjoicnQrand0In0.eyJpc3MiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20iLCJzdWIiOiIwYjdkNmMxZS0yZjNhLTRiNWMtOGQ5ZS0wZjFhMmIzYzRkNWUiLCJhdWQiOiJodHRwczovL2FwaS5leGFtcGxlLmNvbSIsImV4cCI6MTc5ODM4MDAwMCwibmJmIjoxNzk1Nzg4MDAwLCJpYXQiOjE3OTU3ODgwMDAsImp0aSI6IjY2NjY2NjY2LTc3NzctNDg4OC05OTk5LWFhYWFhYWFhYWFhYSIsInVzZXJfaWQiOiIwYjdkNmMxZS0yZjNhLTRiNWMtOGQ5ZS0wZjFhMmIzYzRkNWUiLCJ1c2VyX2VtYWlsIjoicGlubmVkQGV4YW1wbGUuY29tIiwidG9rZW5fdHlwZSI6InJlZnJlc2giLCJzaWQiOiI1ZjRlM2QyYy0xYjBhLTQ5ODctYTY1NC0zMjEwZmVkY2JhOTgiLCJlbWFpbF92ZXJpZmllZCI6dHJ1ZSwiYW1yIjpbInB3ZCIsIm90cCJdfQ.Llfw7B9tzm75SLElYhmmrFMy1cXe5XPjClrmkS0hPBPcF0sm3tibOLuPu1uBeGxDjUwe6gNq-Q_bj0O7a7CVCA",
    ],
    [
        "eyJhbGciOiJFZERTQSIsImtpZCI6ImNvbXBhdC0yMDI2IiwidHlwIjoiYXQrand0In0.eyJpc3MiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20iLCJzdWIiOiIwYjdkNmMxZS0yZjNhLTRiNWMtOGQ5ZS0wZjFhMmIzYzRkNWUiLCJhdWQiOiJodHRwczovL2FwaS5leGFtcGxlLmNvbSIsImV4cCI6MTc5NTc4ODkwMCwibmJmIjoxNzk1Nzg4MDAwLCJpYXQiOjE3OTU3ODgwMDAsImp0aSI6IjExMTExMTExLTIyMjItNDMzMy04NDQ0LTU1NTU1NTU1NTU1NSIsInVzZXJfaWQiOiIwYjdkNmMxZS0yZjNhLTRiNWMtOGQ5ZS0wZjFhMmIzYzRkNWUiLCJ1c2VyX2VtYWlsIjoicGlubmVkQGV4YW1wbGUuY29tIiwidG9rZW5fdHlwZSI6ImFjY2VzcyIsInNpZCI6IjVmNGUzZDJjLTFiMGEtNDk4Ny1hNjU0LTMyMTBmZWRjYmE5OCJ9.hWrPS3z_UYSdWGSbUitg59rYd1nDhY1LTsZfQBSpOkWi6UltVBKkIFQBGg0gwlwddWr3fKs-C60SphngYdzoCg",
        "eyJhbGciOiJFZERTQSIsImtpZCI6ImNvbXBhdC0yMDI2IiwidHlwIjoicnQrand0In0.eyJpc3MiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20iLCJzdWIiOiIwYjdkNmMxZS0yZjNhLTRiNWMtOGQ5ZS0wZjFhMmIzYzRkNWUiLCJhdWQiOiJodHRwczovL2FwaS5leGFtcGxlLmNvbSIsImV4cCI6MTc5ODM4MDAwMCwibmJmIjoxNzk1Nzg4MDAwLCJpYXQiOjE3OTU3ODgwMDAsImp0aSI6IjY2NjY2NjY2LTc3NzctNDg4OC05OTk5LWFhYWFhYWFhYWFhYSIsInVzZXJfaWQiOiIwYjdkNmMxZS0yZjNhLTRiNWMtOGQ5ZS0wZjFhMmIzYzRkNWUiLCJ1c2VyX2VtYWlsIjoicGlubmVkQGV4YW1wbGUuY29tIiwidG9rZW5fdHlwZSI6InJlZnJlc2giLCJzaWQiOiI1ZjRlM2QyYy0xYjBhLTQ5ODctYTY1NC0zMjEwZmVkY2JhOTgifQ.tgxd4dnaiN82NOWRRG26HKcfXzEib_EVSGdSrdGe6nwgn_Z_Z2glqzjb_cglB9FGmWUven7MGIsvBKtETl5vCg",
    ],
];

#[test]
fn minted_pairs_are_byte_for_byte_those_of_the_previous_code() {
    let tokens = tokens();
    for ((access, refresh), expected) in pairs().iter().zip(EXPECTED) {
        let minted = [
            tokens.mint(access, "compat-2026").unwrap(),
            tokens.mint(refresh, "compat-2026").unwrap(),
        ];
        assert_eq!(minted, expected);
        // And they still verify.
        let now = 1_795_788_100;
        assert_eq!(
            tokens.verify(&minted[0], TokenType::Access, now).unwrap(),
            *access
        );
        assert_eq!(
            tokens.verify(&minted[1], TokenType::Refresh, now).unwrap(),
            *refresh
        );
    }
}
