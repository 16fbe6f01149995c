//! JWS compact serialisation (RFC 7515), strictly: three base64url parts without padding or
//! non-zero trailing bits, a size limit, a header whose `alg` comes from an explicit allowlist,
//! and no `crit` extensions.
//!
//! These are our checks, made before `jsonwebtoken` sees a token, where it is looser: it has no
//! size limit, accepts `crit: ["b64"]` with `b64: true` and reads `"crit": null` as no `crit`,
//! and knows more algorithms (HMAC, PS256, ES384, ...) than a key ring should ever be asked
//! about.
//!
//! Header parameters that point at keys (`jku`, `x5u`, `jwk`, `x5c`) are never read: keys come
//! only from the key ring or a configured JWK Set.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;

/// Larger tokens are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The signature algorithms this service can verify. `none` and HMAC are not among them, so a
/// token naming them fails to parse before any key is touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwsAlgorithm {
    EdDSA,
    ES256,
    RS256,
}

impl From<JwsAlgorithm> for jsonwebtoken::Algorithm {
    fn from(algorithm: JwsAlgorithm) -> Self {
        match algorithm {
            JwsAlgorithm::EdDSA => Self::EdDSA,
            JwsAlgorithm::ES256 => Self::ES256,
            JwsAlgorithm::RS256 => Self::RS256,
        }
    }
}

impl JwsAlgorithm {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Self::EdDSA),
            "ES256" => Some(Self::ES256),
            "RS256" => Some(Self::RS256),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("token is not a compact JWS: {0}")]
    Malformed(&'static str),
    #[error("algorithm is not allowed")]
    AlgorithmNotAllowed,
    #[error("critical header extensions are not supported")]
    CriticalHeader,
}

/// The header parameters this service reads. Duplicate or wrongly typed ones fail to parse.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub kid: Option<String>,
    /// Present at all, even as `null`, is refused: `Some(Value::Null)` for `"crit": null`.
    #[serde(default, deserialize_with = "present")]
    crit: Option<serde_json::Value>,
}

/// Tells a member that is `null` from one that is absent (serde reads both as `None`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

/// A parsed but not yet verified token.
#[derive(Debug)]
pub struct Compact<'a> {
    pub header: Header,
    pub algorithm: JwsAlgorithm,
    /// `base64url(header) || '.' || base64url(payload)`: the bytes the signature covers.
    pub signing_input: &'a [u8],
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Splits and decodes a compact JWS. Verifying its signature is the caller's next step; nothing
/// here is trusted yet.
pub fn parse(token: &str) -> Result<Compact<'_>, JwsError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwsError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed("expected three dot-separated parts"));
    };
    if header_b64.is_empty() || payload_b64.is_empty() || signature_b64.is_empty() {
        return Err(JwsError::Malformed("empty part"));
    }
    let decode = |part: &str, what| B64.decode(part).map_err(|_| JwsError::Malformed(what));
    let header: Header = serde_json::from_slice(&decode(header_b64, "header is not base64url")?)
        .map_err(|_| JwsError::Malformed("header is not a JSON object of the expected shape"))?;
    if header.crit.is_some() {
        return Err(JwsError::CriticalHeader);
    }
    let algorithm = JwsAlgorithm::parse(&header.alg).ok_or(JwsError::AlgorithmNotAllowed)?;
    let payload = decode(payload_b64, "payload is not base64url")?;
    let signature = decode(signature_b64, "signature is not base64url")?;
    let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
    Ok(Compact {
        header,
        algorithm,
        signing_input,
        payload,
        signature,
    })
}

/// `base64url(json)` of a value, for building tokens.
pub fn encode_part(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        B64.encode(s)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), B64.encode([1u8; 64]))
    }

    #[test]
    fn parses_a_well_formed_token() {
        let t = token(
            r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1"}"#,
            r#"{"sub":"x"}"#,
        );
        let c = parse(&t).unwrap();
        assert_eq!(c.algorithm, JwsAlgorithm::EdDSA);
        assert_eq!(c.header.kid.as_deref(), Some("k1"));
        assert_eq!(c.header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(c.payload, br#"{"sub":"x"}"#);
        assert_eq!(c.signing_input, t.rsplit_once('.').unwrap().0.as_bytes());
    }

    #[test]
    fn refuses_algorithms_outside_the_allowlist() {
        for alg in [
            "none", "None", "HS256", "HS512", "PS256", "ES384", "eddsa", "",
        ] {
            let t = token(&format!(r#"{{"alg":"{alg}","kid":"k1"}}"#), "{}");
            assert_eq!(
                parse(&t).unwrap_err(),
                JwsError::AlgorithmNotAllowed,
                "{alg}"
            );
        }
    }

    #[test]
    fn refuses_crit_headers() {
        let t = token(
            r#"{"alg":"EdDSA","kid":"k1","crit":["b64"],"b64":false}"#,
            "{}",
        );
        assert_eq!(parse(&t).unwrap_err(), JwsError::CriticalHeader);
    }

    #[test]
    fn refuses_crit_null_and_empty() {
        for crit in ["null", "[]", r#"["exp"]"#, "{}", "false"] {
            let t = token(
                &format!(r#"{{"alg":"EdDSA","kid":"k1","crit":{crit}}}"#),
                "{}",
            );
            assert_eq!(parse(&t).unwrap_err(), JwsError::CriticalHeader, "{crit}");
        }
    }

    #[test]
    fn refuses_non_zero_trailing_bits_in_each_part() {
        // The last character of each part carries bits past the data; a neighbour with one
        // of those bits set decodes to the same bytes and must not pass as the same token.
        let t = token(r#"{"alg":"EdDSA","kid":"k1"}"#, r#"{"sub":"x"}"#);
        assert!(parse(&t).is_ok());
        let parts: Vec<&str> = t.split('.').collect();
        for index in 0..3 {
            let part = parts[index];
            assert_ne!(
                part.len() % 4,
                0,
                "part {index} has trailing bits to play with"
            );
            let last = part.as_bytes()[part.len() - 1];
            // The next base64url character: same leading bits, a trailing bit set.
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let at = alphabet.iter().position(|&c| c == last).unwrap();
            let altered = format!("{}{}", &part[..part.len() - 1], alphabet[at + 1] as char);
            let mut changed = parts.clone();
            changed[index] = &altered;
            let t = changed.join(".");
            assert!(
                matches!(parse(&t), Err(JwsError::Malformed(_))),
                "part {index}: {t}"
            );
        }
    }

    #[test]
    fn refuses_malformed_shapes() {
        let good_header = b64(r#"{"alg":"EdDSA"}"#);
        let cases = [
            String::new(),
            "abc".into(),
            "a.b".into(),
            format!("{good_header}.e30.sig.extra"),
            format!("{good_header}..c2ln"),
            format!("{good_header}.e30."),
            format!("{good_header}.e30=.c2ln"),          // padding
            format!("{good_header}.e3+/.c2ln"),          // standard, not url-safe, alphabet
            format!("{}.e30.c2ln", b64("[1,2]")),        // header not an object
            format!("{}.e30.c2ln", b64(r#"{"alg":5}"#)), // wrong type
            format!("{}.e30.c2ln", b64(r#"{"alg":"EdDSA","alg":"none"}"#)), // duplicate
            format!("{}.e30.c2ln", b64(r#"{"typ":"JWT"}"#)), // missing alg
            format!("{}.e30.c2ln", b64(r#"{"alg":"EdDSA","kid":7}"#)),
            r#"{"payload":"e30","signatures":[]}"#.into(), // JWS JSON serialisation
        ];
        for t in cases {
            assert!(matches!(parse(&t), Err(JwsError::Malformed(_))), "{t}");
        }
    }

    #[test]
    fn refuses_oversized_tokens_before_decoding() {
        let t = token(
            r#"{"alg":"EdDSA"}"#,
            &format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_TOKEN_BYTES)),
        );
        assert_eq!(parse(&t).unwrap_err(), JwsError::TooLarge);
    }

    #[test]
    fn ignores_key_location_headers() {
        let t = token(
            r#"{"alg":"EdDSA","kid":"k1","jku":"https://evil.example/jwks","x5u":"https://evil.example/x","jwk":{"kty":"OKP"}}"#,
            "{}",
        );
        let c = parse(&t).unwrap();
        assert_eq!(c.header.kid.as_deref(), Some("k1"));
    }
}
