//! Keys: the Ed25519 signing key, the public keys that verify, and their JWK forms.
//!
//! The key ring holds at most one signing key and any number of verifying keys, so a new key
//! can be published in the JWK Set before it signs, and an old one kept until its tokens expire.
//!
//! Signatures are made and checked by `jsonwebtoken` (on its aws-lc-rs backend). What stays
//! here is reading keys, with checks `jsonwebtoken` does not make when it builds a key: it takes
//! any bytes as a public key and would only fail, or not, at the first verification. Ours, at
//! load time: `kty: oct` and every other unknown type refused; `use` and `alg` must not
//! contradict the key's purpose; RSA 2048 to 8192 bits; EC points really on P-256; `kid` syntax.

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, Ed25519KeyPair, KeyPair, ParsedPublicKey,
    RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};

use super::jws::JwsAlgorithm;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("key is not valid JSON: {0}")]
    Json(String),
    #[error("key id (kid) must be 1 to 64 characters of A-Z, a-z, 0-9, '-' or '_'")]
    BadKeyId,
    #[error("unsupported key: {0}")]
    Unsupported(String),
    #[error("key material is invalid: {0}")]
    Invalid(&'static str),
    #[error("key id {0:?} appears twice")]
    DuplicateKeyId(String),
    #[error("key generation failed")]
    Generation,
    #[error("signing failed")]
    Signing,
}

/// A JSON Web Key (RFC 7517), as far as this service reads and writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// The private part. Read, never written back out: a public set can't carry it by mistake.
    #[serde(default, skip_serializing)]
    pub d: Option<String>,
}

/// A JWK Set (RFC 7517 §5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// Key ids are echoed into headers and looked up from untrusted tokens: keep them plain.
pub fn is_valid_kid(kid: &str) -> bool {
    (1..=64).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn b64(field: &Option<String>, name: &'static str) -> Result<Vec<u8>, KeyError> {
    let value = field.as_deref().ok_or(KeyError::Invalid(name))?;
    B64.decode(value).map_err(|_| KeyError::Invalid(name))
}

/// The private Ed25519 key that signs this service's tokens.
pub struct SigningKey {
    kid: String,
    /// For the public half and the private JWK; never used to sign.
    pair: Ed25519KeyPair,
    /// What `jsonwebtoken` signs with: the same key as PKCS#8.
    encoding: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate(kid: impl Into<String>) -> Result<Self, KeyError> {
        let kid = kid.into();
        if !is_valid_kid(&kid) {
            return Err(KeyError::BadKeyId);
        }
        let pair = Ed25519KeyPair::generate().map_err(|_| KeyError::Generation)?;
        Self::from_pair(kid, pair)
    }

    fn from_pair(kid: String, pair: Ed25519KeyPair) -> Result<Self, KeyError> {
        let pkcs8 = pair.to_pkcs8v1().map_err(|_| KeyError::Generation)?;
        let encoding = EncodingKey::from_ed_der(pkcs8.as_ref());
        Ok(Self {
            kid,
            pair,
            encoding,
        })
    }

    /// Reads a private OKP JWK (RFC 8037): `{"kty":"OKP","crv":"Ed25519","kid":..,"x":..,"d":..}`.
    pub fn from_private_jwk(json: &str) -> Result<Self, KeyError> {
        let jwk: Jwk = serde_json::from_str(json).map_err(|e| KeyError::Json(e.to_string()))?;
        if jwk.kty != "OKP" || jwk.crv.as_deref() != Some("Ed25519") {
            return Err(KeyError::Unsupported(
                "the signing key must be an Ed25519 OKP key".into(),
            ));
        }
        let kid = jwk
            .kid
            .clone()
            .filter(|k| is_valid_kid(k))
            .ok_or(KeyError::BadKeyId)?;
        let seed = b64(&jwk.d, "d")?;
        let public = b64(&jwk.x, "x")?;
        // Checks that `x` really is the public half of `d`.
        let pair = Ed25519KeyPair::from_seed_and_public_key(&seed, &public)
            .map_err(|_| KeyError::Invalid("d and x do not form an Ed25519 key pair"))?;
        Self::from_pair(kid, pair)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The base64url signature of `message` (a JWS signing input), made by `jsonwebtoken`.
    pub fn sign_b64(&self, message: &[u8]) -> Result<String, KeyError> {
        jsonwebtoken::crypto::sign(message, &self.encoding, Algorithm::EdDSA)
            .map_err(|_| KeyError::Signing)
    }

    /// The raw signature of `message`, for tests that build tokens by hand.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.sign_b64(message)
            .ok()
            .and_then(|s| B64.decode(s).ok())
            .expect("an Ed25519 key signs any message")
    }

    pub fn public_jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            kid: Some(self.kid.clone()),
            alg: Some("EdDSA".into()),
            use_: Some("sig".into()),
            x: Some(B64.encode(self.pair.public_key().as_ref())),
            ..Jwk::default()
        }
    }

    /// The private JWK, for the key-generation command to print once. Nothing else calls it.
    pub fn private_jwk_json(&self) -> Result<String, KeyError> {
        let seed = self.pair.seed().map_err(|_| KeyError::Generation)?;
        let seed = seed.as_be_bytes().map_err(|_| KeyError::Generation)?;
        let mut value =
            serde_json::to_value(self.public_jwk()).map_err(|e| KeyError::Json(e.to_string()))?;
        value["d"] = B64.encode(seed.as_ref()).into();
        Ok(value.to_string())
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey::from_jwk(&self.public_jwk()).expect("a signing key's public half is valid")
    }
}

/// A public key that verifies signatures of one algorithm.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    algorithm: JwsAlgorithm,
    /// What `jsonwebtoken` verifies with.
    decoding: DecodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl VerifyingKey {
    /// Reads a public JWK: OKP Ed25519 (EdDSA), EC P-256 (ES256) or RSA (RS256, 2048 bits or
    /// more). The algorithm is fixed by the key, never taken from a token.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        let kid = jwk
            .kid
            .clone()
            .filter(|k| is_valid_kid(k))
            .ok_or(KeyError::BadKeyId)?;
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(KeyError::Unsupported(format!(
                "key {kid} is not for signatures"
            )));
        }
        // Each key is parsed by aws-lc-rs once here only to validate it (ours: jsonwebtoken
        // builds keys from any bytes); jsonwebtoken verifies with the same bytes.
        let valid = |algorithm, bytes: &[u8], what| {
            ParsedPublicKey::new(algorithm, bytes)
                .map(drop)
                .map_err(|_| KeyError::Invalid(what))
        };
        let (algorithm, decoding) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("OKP", Some("Ed25519")) => {
                let x = b64(&jwk.x, "x")?;
                valid(&ED25519, &x, "x")?;
                (JwsAlgorithm::EdDSA, DecodingKey::from_ed_der(&x))
            }
            ("EC", Some("P-256")) => {
                let (x, y) = (b64(&jwk.x, "x")?, b64(&jwk.y, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(KeyError::Invalid("P-256 coordinates are 32 bytes"));
                }
                // Refuses points off the curve (ours: jsonwebtoken takes any x and y).
                let point = [&[0x04][..], &x, &y].concat();
                valid(&ECDSA_P256_SHA256_FIXED, &point, "x, y")?;
                (JwsAlgorithm::ES256, DecodingKey::from_ec_der(&point))
            }
            ("RSA", _) => {
                let (n, e) = (b64(&jwk.n, "n")?, b64(&jwk.e, "e")?);
                // Ours: 2048 to 8192 bits, leading zero bytes aside.
                let bits = n.iter().skip_while(|&&b| b == 0).count() * 8;
                if !(2048..=8192).contains(&bits) {
                    return Err(KeyError::Invalid("RSA keys must have 2048 to 8192 bits"));
                }
                RsaPublicKeyComponents { n: &n, e: &e }
                    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                    .map_err(|_| KeyError::Invalid("n, e"))?;
                (
                    JwsAlgorithm::RS256,
                    DecodingKey::from_rsa_raw_components(&n, &e),
                )
            }
            // `oct` (a shared secret: HMAC) among them: a public JWK Set must never make a
            // secret of anything.
            (kty, crv) => {
                return Err(KeyError::Unsupported(format!("kty {kty} with crv {crv:?}")));
            }
        };
        if let Some(alg) = jwk.alg.as_deref()
            && alg != algorithm.as_str()
        {
            return Err(KeyError::Unsupported(format!(
                "key {kid} declares alg {alg}"
            )));
        }
        let public = Jwk {
            kty: jwk.kty.clone(),
            crv: jwk.crv.clone(),
            kid: Some(kid.clone()),
            alg: Some(algorithm.as_str().into()),
            use_: Some("sig".into()),
            x: jwk.x.clone(),
            y: jwk.y.clone(),
            n: jwk.n.clone(),
            e: jwk.e.clone(),
            d: None,
        };
        Ok(Self {
            kid,
            algorithm,
            decoding,
            jwk: public,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> JwsAlgorithm {
        self.algorithm
    }

    /// The public JWK, without any private part.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The key as `jsonwebtoken` verifies with it.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Whether `signature` (base64url, as in a token) is this key's signature of `message`,
    /// checked by `jsonwebtoken`.
    pub fn verify(&self, message: &[u8], signature: &str) -> bool {
        jsonwebtoken::crypto::verify(signature, message, &self.decoding, self.algorithm.into())
            .unwrap_or(false)
    }
}

/// One signing key (absent in functions that only verify) and every key that verifies.
#[derive(Debug)]
pub struct KeyRing {
    signing: Option<SigningKey>,
    verifying: Vec<VerifyingKey>,
}

impl KeyRing {
    /// The signing key's public half always verifies; `published` adds the next and previous
    /// keys. Key ids must be unique.
    pub fn new(signing: Option<SigningKey>, published: &JwkSet) -> Result<Self, KeyError> {
        let mut verifying: Vec<VerifyingKey> = Vec::new();
        for key in signing.iter().map(SigningKey::verifying_key).chain(
            published
                .keys
                .iter()
                .map(VerifyingKey::from_jwk)
                .collect::<Result<Vec<_>, _>>()?,
        ) {
            match verifying.iter().find(|k| k.kid == key.kid) {
                // The signing key may also be listed among the published keys.
                Some(existing) if existing.jwk == key.jwk => continue,
                Some(_) => return Err(KeyError::DuplicateKeyId(key.kid)),
                None => verifying.push(key),
            }
        }
        if verifying.iter().any(|k| k.algorithm != JwsAlgorithm::EdDSA) {
            return Err(KeyError::Unsupported(
                "this service's own keys are Ed25519".into(),
            ));
        }
        Ok(Self { signing, verifying })
    }

    /// A ring that only verifies.
    pub fn verify_only(published: &JwkSet) -> Result<Self, KeyError> {
        Self::new(None, published)
    }

    pub fn signing(&self) -> Option<&SigningKey> {
        self.signing.as_ref()
    }

    pub fn find(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.iter().find(|k| k.kid == kid)
    }

    /// The public JWK Set, as `/.well-known/jwks.json` serves it.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.verifying.iter().map(|k| k.jwk.clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_jwk_round_trips_and_signs_the_same() {
        let key = SigningKey::generate("k1").unwrap();
        let json = key.private_jwk_json().unwrap();
        let again = SigningKey::from_private_jwk(&json).unwrap();
        assert_eq!(again.kid(), "k1");
        // Ed25519 is deterministic: the same key signs the same message identically.
        assert_eq!(key.sign(b"message"), again.sign(b"message"));
        let signature = again.sign_b64(b"message").unwrap();
        assert!(key.verifying_key().verify(b"message", &signature));
        assert!(!key.verifying_key().verify(b"messagE", &signature));
    }

    #[test]
    fn public_jwk_has_no_private_part() {
        let key = SigningKey::generate("k1").unwrap();
        let public = serde_json::to_value(key.public_jwk()).unwrap();
        assert!(public.get("d").is_none());
        assert_eq!(public["kty"], "OKP");
        assert_eq!(public["crv"], "Ed25519");
        assert_eq!(public["alg"], "EdDSA");
        assert_eq!(public["use"], "sig");
        assert_eq!(public["kid"], "k1");
        // Even a JWK read with a private part serialises without it.
        let private: Jwk = serde_json::from_str(&key.private_jwk_json().unwrap()).unwrap();
        assert!(private.d.is_some());
        assert!(serde_json::to_value(&private).unwrap().get("d").is_none());
    }

    #[test]
    fn mismatched_private_and_public_halves_are_refused() {
        let a = SigningKey::generate("a").unwrap();
        let b = SigningKey::generate("a").unwrap();
        let mut mixed: serde_json::Value =
            serde_json::from_str(&a.private_jwk_json().unwrap()).unwrap();
        mixed["x"] = serde_json::to_value(b.public_jwk()).unwrap()["x"].clone();
        assert!(SigningKey::from_private_jwk(&mixed.to_string()).is_err());
    }

    #[test]
    fn bad_key_ids_are_refused() {
        for kid in ["", "../etc/passwd", "a b", "k\"1", &"k".repeat(65)] {
            assert_eq!(
                SigningKey::generate(kid).unwrap_err(),
                KeyError::BadKeyId,
                "{kid}"
            );
        }
    }

    #[test]
    fn ring_publishes_signing_and_extra_keys_and_refuses_duplicates() {
        let current = SigningKey::generate("current").unwrap();
        let next = SigningKey::generate("next").unwrap();
        let published = JwkSet {
            keys: vec![next.public_jwk(), current.public_jwk()],
        };
        let ring = KeyRing::new(Some(current), &published).unwrap();
        let kids: Vec<_> = ring.jwks().keys.into_iter().filter_map(|k| k.kid).collect();
        assert_eq!(kids, ["current", "next"]);

        let clash = SigningKey::generate("current").unwrap();
        let published = JwkSet {
            keys: vec![clash.public_jwk()],
        };
        let current = SigningKey::generate("current").unwrap();
        assert_eq!(
            KeyRing::new(Some(current), &published).unwrap_err(),
            KeyError::DuplicateKeyId("current".into())
        );
    }

    #[test]
    fn hostile_public_keys_are_refused_at_load() {
        let ed = SigningKey::generate("k1").unwrap().public_jwk();
        let modulus = |bytes: usize| {
            let mut n = vec![0xc5u8; bytes];
            n[bytes - 1] |= 1;
            B64.encode(n)
        };
        let rsa = |n: String| Jwk {
            kty: "RSA".into(),
            kid: Some("r1".into()),
            n: Some(n),
            e: Some(B64.encode([1, 0, 1])),
            ..Jwk::default()
        };
        let cases = [
            ("RSA-1024", rsa(modulus(128))),
            ("RSA-2040", rsa(modulus(255))),
            ("RSA over 8192 bits", rsa(modulus(1025))),
            (
                "an EC point off P-256",
                Jwk {
                    kty: "EC".into(),
                    crv: Some("P-256".into()),
                    kid: Some("e1".into()),
                    x: Some(B64.encode([1u8; 32])),
                    y: Some(B64.encode([1u8; 32])),
                    ..Jwk::default()
                },
            ),
            (
                "kty oct",
                Jwk {
                    kty: "oct".into(),
                    kid: Some("o1".into()),
                    alg: Some("HS256".into()),
                    ..Jwk::default()
                },
            ),
            (
                "use enc",
                Jwk {
                    use_: Some("enc".into()),
                    ..ed.clone()
                },
            ),
            (
                "alg contradicting the key",
                Jwk {
                    alg: Some("RS256".into()),
                    ..ed.clone()
                },
            ),
            (
                "a kid that is not plain",
                Jwk {
                    kid: Some("../k1".into()),
                    ..ed.clone()
                },
            ),
        ];
        for (what, jwk) in cases {
            assert!(VerifyingKey::from_jwk(&jwk).is_err(), "{what}");
        }
        // What is within the limits loads: an Ed25519 key, and RSA at 2048 bits.
        assert!(VerifyingKey::from_jwk(&ed).is_ok());
        let pair =
            aws_lc_rs::signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let key = VerifyingKey::from_jwk(&rsa(B64.encode(&public.n))).map(|k| k.algorithm());
        assert_eq!(key, Ok(JwsAlgorithm::RS256));
    }

    #[test]
    fn verify_only_ring_has_no_signing_key() {
        let key = SigningKey::generate("k1").unwrap();
        let ring = KeyRing::verify_only(&JwkSet {
            keys: vec![key.public_jwk()],
        })
        .unwrap();
        assert!(ring.signing().is_none());
        assert!(ring.find("k1").is_some());
        assert!(ring.find("k2").is_none());
    }
}
