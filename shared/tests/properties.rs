//! Property tests on the parsers and validators: no input panics, and every refusal is one of
//! the API's errors (docs/api.md).

use std::sync::Arc;

use lambda_http::Body;
use proptest::prelude::*;
use shared::http::{RequestError, bearer_token, json_object};
use shared::model::TokenType;
use shared::tokens::{JwkSet, KeyRing, SigningKey, Tokens, jws};
use shared::validation::{PasswordPolicy, normalize_email};

fn tokens() -> Tokens {
    let key = SigningKey::generate("k").unwrap();
    Tokens::new(
        Arc::new(KeyRing::new(Some(key), &JwkSet::default()).unwrap()),
        "iss",
        "aud",
    )
}

/// Strings shaped like tokens: three base64url-ish parts, sometimes with noise.
fn token_like() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,200}",
        "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,120}\\.[A-Za-z0-9_-]{0,90}",
        "eyJ[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_=+/.-]{0,120}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn emails_are_normalised_or_refused(raw in ".{0,300}") {
        match normalize_email(&raw) {
            Ok(email) => {
                prop_assert_eq!(email.trim(), email.as_str());
                prop_assert!(!email.chars().any(char::is_control));
                let again = normalize_email(&email);
                prop_assert_eq!(again.ok(), Some(email.clone()), "normalising is idempotent");
            }
            Err(error) => {
                prop_assert_eq!(error.field, "email");
                prop_assert_eq!(error.code, "invalid_email");
            }
        }
    }

    #[test]
    fn address_shaped_emails_are_normalised_or_refused(local in "[a-zA-Z0-9._%+-]{0,70}", domain in "[a-zA-Z0-9.-]{0,70}") {
        if let Ok(email) = normalize_email(&format!("{local}@{domain}")) {
            prop_assert_eq!(normalize_email(&email).ok(), Some(email.clone()), "idempotent");
            prop_assert_eq!(email.to_lowercase(), email);
        }
    }

    #[test]
    fn passwords_are_accepted_or_refused_with_a_reason(password in ".{0,160}", email in "[a-z]{1,12}@[a-z]{1,12}\\.com") {
        if let Err(errors) = PasswordPolicy::new(3).check(&password, &email) {
            prop_assert!(!errors.is_empty());
            for error in errors {
                prop_assert_eq!(error.field, "password");
                prop_assert!(["too_short", "too_long", "too_weak", "invalid_characters"].contains(&error.code));
                prop_assert!(!error.message.is_empty());
            }
        }
    }

    #[test]
    fn token_parsing_never_panics(token in token_like()) {
        let _ = jws::parse(&token);
    }

    #[test]
    fn random_tokens_never_verify(token in token_like()) {
        let tokens = tokens();
        prop_assert!(tokens.verify(&token, TokenType::Access, 1_795_788_000).is_err());
        prop_assert!(tokens.verify(&token, TokenType::Refresh, 1_795_788_000).is_err());
    }

    #[test]
    fn bearer_parsing_never_panics(value in ".{0,120}") {
        if let Some(token) = bearer_token(&value) {
            prop_assert!(!token.is_empty());
            prop_assert!(!token.contains(' '));
        }
    }

    #[test]
    fn bodies_are_objects_or_contract_errors(
        body in proptest::collection::vec(any::<u8>(), 0..400),
        content_type in prop_oneof![Just("application/json".to_owned()), "[ -~]{0,40}"],
    ) {
        let request = lambda_http::http::Request::builder()
            .header("content-type", content_type)
            .body(Body::Binary(body))
            .unwrap();
        match json_object(&request) {
            Ok(_) => {}
            Err(RequestError::InvalidJson | RequestError::UnsupportedMediaType | RequestError::PayloadTooLarge) => {}
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }
}
