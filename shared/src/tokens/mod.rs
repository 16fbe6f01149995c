//! This service's tokens: EdDSA (Ed25519) JWTs with `kid`, `typ: at+jwt` on access tokens
//! (RFC 9068) and `typ: rt+jwt` on refresh tokens, so one can never pass for the other.
//!
//! Verification checks, in order of cost: size and shape, `crit`, the algorithm allowlist
//! (EdDSA only for our own tokens), `typ`, `kid`, the signature, then every claim against the
//! injected clock with a leeway of 30 seconds.
//!
//! `jsonwebtoken` makes and checks every signature. Ours, around it: the size, shape and header
//! checks of [`jws::parse`] before it, and after it every claim: `iss`, `aud` one string equal
//! to ours, the times against the injected clock (the crate's own time checks read the system
//! clock) with `nbf` required and `iat` not in the future, `token_type`, `sub` = `user_id`.

pub mod external;
pub mod jws;
pub mod keys;
pub mod remote_keys;

use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};
use jsonwebtoken::errors::ErrorKind;

use crate::clock::UnixTime;
use crate::model::{Claims, TokenType};
pub use jws::{JwsAlgorithm, JwsError, MAX_TOKEN_BYTES};
pub use keys::{Jwk, JwkSet, KeyError, KeyRing, SigningKey, VerifyingKey};

/// Tolerated clock skew for `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: i64 = 30;

pub const ACCESS_TYP: &str = "at+jwt";
pub const REFRESH_TYP: &str = "rt+jwt";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Jws(#[from] JwsError),
    #[error("token type (typ) is not {0}")]
    WrongTyp(&'static str),
    #[error("token type (typ) is not one this issuer's tokens carry")]
    TypNotAccepted,
    #[error("token lives longer than its issuer allows")]
    LivesTooLong,
    #[error("token_type is not {0}")]
    WrongTokenType(&'static str),
    #[error("no kid, or a kid not in the key ring")]
    UnknownKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("claims are missing or malformed")]
    InvalidClaims,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("this function holds no signing key")]
    NoSigningKey,
    #[error("signing key {0} is no longer the signing key")]
    KeyRetired(String),
}

fn typ_of(token_type: TokenType) -> &'static str {
    match token_type {
        TokenType::Access => ACCESS_TYP,
        TokenType::Refresh => REFRESH_TYP,
    }
}

/// Mints and verifies this service's tokens for one issuer and audience.
#[derive(Debug, Clone)]
pub struct Tokens {
    keys: Arc<KeyRing>,
    issuer: String,
    audience: String,
}

/// `jsonwebtoken`'s verdicts in our terms. Shape and header errors were ours to find first.
pub(crate) fn from_crate_error(error: &jsonwebtoken::errors::Error) -> TokenError {
    match error.kind() {
        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => {
            TokenError::BadSignature
        }
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::Base64(_) | ErrorKind::InvalidToken => {
            TokenError::Jws(JwsError::Malformed("not a compact JWS"))
        }
        _ => TokenError::InvalidClaims,
    }
}

impl Tokens {
    pub fn new(keys: Arc<KeyRing>, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            keys,
            issuer: issuer.into(),
            audience: audience.into(),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The kid new tokens are signed with, if this instance signs at all.
    pub fn signing_kid(&self) -> Option<&str> {
        self.keys.signing().map(SigningKey::kid)
    }

    /// Signs `claims` with the key `kid`, which must be the current signing key. Minting is
    /// deterministic: the same claims and key give the same bytes.
    pub fn mint(&self, claims: &Claims, kid: &str) -> Result<String, TokenError> {
        let key = self.keys.signing().ok_or(TokenError::NoSigningKey)?;
        if key.kid() != kid {
            return Err(TokenError::KeyRetired(kid.to_owned()));
        }
        let header = serde_json::json!({
            "alg": "EdDSA",
            "typ": typ_of(claims.token_type),
            "kid": key.kid(),
        });
        let header = serde_json::to_vec(&header).map_err(|_| TokenError::InvalidClaims)?;
        let payload = serde_json::to_vec(claims).map_err(|_| TokenError::InvalidClaims)?;
        // The header and payload bytes are ours (`jsonwebtoken::encode` would order the header
        // `typ, alg, kid`, and tokens must stay byte for byte those minted before); the
        // signature over them is `jsonwebtoken`'s.
        let mut token = jws::encode_part(&header);
        token.push('.');
        token.push_str(&jws::encode_part(&payload));
        let signature = key
            .sign_b64(token.as_bytes())
            .map_err(|_| TokenError::NoSigningKey)?;
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }

    /// Verifies a token of the `expected` type and returns its claims.
    pub fn verify(
        &self,
        token: &str,
        expected: TokenType,
        now: UnixTime,
    ) -> Result<Claims, TokenError> {
        // Ours, before the crate: size, shape, canonical base64url, `crit` (even null), the
        // EdDSA-only allowlist, `typ` exactly, `kid` syntax and in the ring.
        let compact = jws::parse(token)?;
        if compact.algorithm != JwsAlgorithm::EdDSA {
            return Err(JwsError::AlgorithmNotAllowed.into());
        }
        let typ = typ_of(expected);
        if compact.header.typ.as_deref() != Some(typ) {
            return Err(TokenError::WrongTyp(typ));
        }
        let key = compact
            .header
            .kid
            .as_deref()
            .filter(|kid| keys::is_valid_kid(kid))
            .and_then(|kid| self.keys.find(kid))
            .ok_or(TokenError::UnknownKey)?;
        // The crate: the signature over the exact signing input, with the key's one
        // algorithm. Its `decode` is not used for our own tokens: each of its claim checks is
        // one of ours below, stricter, and it would parse the header again and the claims
        // twice more on the authorizer's hot path, whose whole decision must stay within 1.2
        // times a bare Ed25519 verification (the benchmark).
        let signature = &token[compact.signing_input.len() + 1..];
        if key.algorithm() != compact.algorithm || !key.verify(compact.signing_input, signature) {
            return Err(TokenError::BadSignature);
        }
        let claims: Claims =
            serde_json::from_slice(&compact.payload).map_err(|_| TokenError::InvalidClaims)?;
        // Ours, after it: `iss` and `aud` exactly ours (one string), `token_type`, `sub` =
        // `user_id`, `exp` after `nbf`, and the times against the injected clock.
        self.check_claims(&claims, expected, now)?;
        Ok(claims)
    }

    fn check_claims(
        &self,
        claims: &Claims,
        expected: TokenType,
        now: UnixTime,
    ) -> Result<(), TokenError> {
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if claims.aud != self.audience {
            return Err(TokenError::WrongAudience);
        }
        if claims.token_type != expected {
            return Err(TokenError::WrongTokenType(expected.as_str()));
        }
        if claims.sub != claims.user_id || claims.exp <= claims.nbf {
            return Err(TokenError::InvalidClaims);
        }
        if now >= claims.exp + LEEWAY_SECS {
            return Err(TokenError::Expired);
        }
        if claims.nbf > now + LEEWAY_SECS || claims.iat > now + LEEWAY_SECS {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

/// Lower-case hex SHA-256 of a token: what the store keeps instead of the token.
pub fn token_hash(token: &str) -> String {
    let hash = digest(&SHA256, token.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in hash.as_ref() {
        hex.push(char::from_digit((byte >> 4) as u32, 16).unwrap_or('0'));
        hex.push(char::from_digit((byte & 0xf) as u32, 16).unwrap_or('0'));
    }
    hex
}

/// Compares two hashes in constant time.
pub fn hashes_match(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests;
