//! Two-factor pieces that need no store: TOTP codes (RFC 6238: SHA-1, 6 digits, 30 s steps, one
//! step either side, through `totp-rs`), the enrolment's `otpauth://` URI and QR code (SVG,
//! through `qrcode`), recovery codes, and the sealing of TOTP secrets with AES-256-GCM under
//! keys held apart from the table (`MFA_ENCRYPTION_KEY`).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hkdf, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use totp_rs::{Algorithm, Builder, Totp};
use uuid::Uuid;

use crate::model::SealedSecret;

/// Bytes of a TOTP secret: 160 bits, as RFC 4226 recommends for SHA-1.
pub const SECRET_BYTES: usize = 20;
/// Recovery codes per set.
pub const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code (base32, 5 bits each: 60 bits), shown in groups of four.
const RECOVERY_CODE_CHARS: usize = 12;
const STEP_SECS: u64 = 30;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MfaError {
    #[error("MFA_ENCRYPTION_KEY is invalid: {0}")]
    InvalidKey(String),
    #[error("no key {0:?} to open a sealed secret")]
    UnknownKey(String),
    #[error("a sealed secret does not open")]
    Unsealable,
    #[error("TOTP: {0}")]
    Totp(String),
    #[error("no randomness")]
    Randomness,
}

fn random<const N: usize>() -> Result<[u8; N], MfaError> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| MfaError::Randomness)?;
    Ok(bytes)
}

/// The keys TOTP secrets are sealed with: `KID:KEY[,KID:KEY...]`, each key 32 bytes in base64url.
/// The first seals; all open, so a new key goes first and the old ones stay until every secret
/// sealed with them has been sealed again (at the next enrolment) or removed.
pub struct MfaKeys {
    keys: Vec<(String, LessSafeKey)>,
    /// Per entry, the HMAC key recovery codes are hashed with, derived from the same key.
    recovery: Vec<(String, hmac::Key)>,
}

impl std::fmt::Debug for MfaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(kid, _)| kid.as_str()).collect();
        f.debug_struct("MfaKeys").field("kids", &ids).finish()
    }
}

impl MfaKeys {
    pub fn parse(value: &str) -> Result<Self, MfaError> {
        let (mut keys, mut recovery) = (Vec::new(), Vec::new());
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (kid, key) = entry
                .split_once(':')
                .ok_or_else(|| MfaError::InvalidKey("expected KID:KEY entries".into()))?;
            if kid.is_empty()
                || !kid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(MfaError::InvalidKey(format!("key id {kid:?}")));
            }
            let bytes = URL_SAFE_NO_PAD
                .decode(key)
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| {
                    MfaError::InvalidKey(format!("key {kid:?} is not 32 bytes of base64url"))
                })?;
            let key = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| MfaError::InvalidKey(format!("key {kid:?}")))?;
            if keys.iter().any(|(k, _)| k == kid) {
                return Err(MfaError::InvalidKey(format!("key id {kid:?} twice")));
            }
            keys.push((kid.to_owned(), LessSafeKey::new(key)));
            // HKDF with a label of its own: the recovery-code key is not the sealing key.
            let recovery_key: hmac::Key = hkdf::Salt::new(hkdf::HKDF_SHA256, &[])
                .extract(&bytes)
                .expand(&[b"recovery-codes".as_slice()], hmac::HMAC_SHA256)
                .map_err(|_| MfaError::InvalidKey(format!("key {kid:?}")))?
                .into();
            recovery.push((kid.to_owned(), recovery_key));
        }
        if keys.is_empty() {
            return Err(MfaError::InvalidKey("no key".into()));
        }
        Ok(Self { keys, recovery })
    }

    /// A new key entry, `KID:KEY`, for `MFA_ENCRYPTION_KEY`.
    pub fn generate_entry(kid: &str) -> Result<String, MfaError> {
        Ok(format!("{kid}:{}", URL_SAFE_NO_PAD.encode(random::<32>()?)))
    }

    /// Seals `secret` for `user`: the ciphertext opens only for that user, with a key of ours.
    pub fn seal(&self, user: Uuid, secret: &[u8]) -> Result<SealedSecret, MfaError> {
        let (kid, key) = &self.keys[0];
        let nonce = random::<NONCE_LEN>()?;
        let mut sealed = secret.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(user, kid)),
            &mut sealed,
        )
        .map_err(|_| MfaError::Unsealable)?;
        Ok(SealedSecret {
            kid: kid.clone(),
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            ciphertext: URL_SAFE_NO_PAD.encode(sealed),
        })
    }

    pub fn open(&self, user: Uuid, sealed: &SealedSecret) -> Result<Vec<u8>, MfaError> {
        let (kid, key) = self
            .keys
            .iter()
            .find(|(kid, _)| *kid == sealed.kid)
            .ok_or_else(|| MfaError::UnknownKey(sealed.kid.clone()))?;
        let nonce: [u8; NONCE_LEN] = URL_SAFE_NO_PAD
            .decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(MfaError::Unsealable)?;
        let mut data = URL_SAFE_NO_PAD
            .decode(&sealed.ciphertext)
            .map_err(|_| MfaError::Unsealable)?;
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(user, kid)),
                &mut data,
            )
            .map_err(|_| MfaError::Unsealable)?;
        Ok(plain.to_vec())
    }
}

impl MfaKeys {
    /// How a recovery code of `user` is stored: `KID.HMAC` with the current key, HMAC-SHA256
    /// over the user id and the code's normal form, in hex. Bound to the user and keyed apart
    /// from the table, a leaked table offers nothing to attack offline.
    pub fn recovery_code_hash(&self, user: Uuid, normalized: &str) -> String {
        let (kid, key) = &self.recovery[0];
        recovery_hash_with(kid, key, user, normalized)
    }

    /// The forms a stored recovery code of `user` can have: one per key, so codes hashed
    /// under an older key keep working until the set is replaced.
    pub fn recovery_code_candidates(&self, user: Uuid, normalized: &str) -> Vec<String> {
        self.recovery
            .iter()
            .map(|(kid, key)| recovery_hash_with(kid, key, user, normalized))
            .collect()
    }
}

fn recovery_hash_with(kid: &str, key: &hmac::Key, user: Uuid, normalized: &str) -> String {
    let tag = hmac::sign(key, format!("recovery:{user}:{normalized}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{kid}.{hex}")
}

/// What a sealed secret is bound to: its user and its key, so a ciphertext copied to another
/// user's item does not open.
fn aad(user: Uuid, kid: &str) -> Vec<u8> {
    format!("totp:{user}:{kid}").into_bytes()
}

/// A fresh TOTP secret.
pub fn new_secret() -> Result<[u8; SECRET_BYTES], MfaError> {
    random()
}

/// A user's TOTP generator.
pub struct TotpCode {
    totp: Totp,
}

impl TotpCode {
    /// `issuer` names the service in authenticator apps; `account` is the user's address.
    pub fn new(secret: &[u8], issuer: &str, account: &str) -> Result<Self, MfaError> {
        // The otpauth URI separates issuer and account with ':': neither may contain one.
        let issuer = issuer.replace(':', " ");
        let totp = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_step_duration(STEP_SECS)
            .with_skew(1)
            .with_secret(secret.to_vec())
            .with_issuer(Some(issuer))
            .with_account_name(account.replace(':', " "))
            .build()
            .map_err(|e| MfaError::Totp(e.to_string()))?;
        Ok(Self { totp })
    }

    /// The step whose code `code` is at `now`, within one step either side.
    pub fn check(&self, code: &str, now: i64) -> Option<u64> {
        let now = u64::try_from(now).ok()?;
        self.totp.check(code, now)
    }

    /// The code of the step that contains `time`.
    pub fn generate(&self, time: u64) -> String {
        self.totp.generate(time).to_string()
    }

    /// `otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...`, for authenticator apps.
    pub fn otpauth_uri(&self) -> Result<String, MfaError> {
        self.totp
            .to_url()
            .map_err(|e| MfaError::Totp(e.to_string()))
    }

    /// The otpauth URI as a QR code, an SVG document.
    pub fn qr_svg(&self) -> Result<String, MfaError> {
        let code = qrcode::QrCode::new(self.otpauth_uri()?.as_bytes())
            .map_err(|e| MfaError::Totp(e.to_string()))?;
        Ok(code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build())
    }
}

/// The secret as authenticator apps take it typed in: base32 without padding.
pub fn secret_base32(secret: &[u8]) -> String {
    base32::encode(base32::Alphabet::Rfc4648 { padding: false }, secret)
}

/// Whether `code` is a TOTP code at all: six ASCII digits.
pub fn is_totp_code(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// A new set of recovery codes, `xxxx-xxxx-xxxx`, 60 random bits each.
pub fn new_recovery_codes() -> Result<Vec<String>, MfaError> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let bytes = random::<RECOVERY_CODE_CHARS>()?;
            let chars: Vec<char> = bytes
                .iter()
                .map(|b| RECOVERY_ALPHABET[usize::from(b % 32)] as char)
                .collect();
            Ok(chars
                .chunks(4)
                .map(|c| c.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-"))
        })
        .collect()
}

/// A recovery code as typed (any case, with or without dashes and spaces) in its one form, or
/// `None` when it cannot be one.
pub fn normalize_recovery_code(code: &str) -> Option<String> {
    let normalized: String = code
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (normalized.len() == RECOVERY_CODE_CHARS
        && normalized.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)))
    .then_some(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, secret "12345678901234567890": the 8-digit codes' last six
    /// digits are the 6-digit codes (truncation is modulo 10^digits).
    #[test]
    fn rfc_6238_test_vectors() {
        let totp = TotpCode::new(b"12345678901234567890", "Test", "a@example.com").unwrap();
        for (time, code) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(totp.generate(time), code[2..], "at {time}");
            // Accepted in its own step and the neighbours', not two steps off.
            let step = time / 30;
            for now in [time, time - 30, time + 30] {
                assert_eq!(
                    totp.check(&code[2..], now as i64),
                    Some(step),
                    "{time} at {now}"
                );
            }
            assert_eq!(totp.check(&code[2..], (time + 61) as i64), None);
        }
    }

    #[test]
    fn the_otpauth_uri_names_issuer_and_account() {
        let totp = TotpCode::new(&[7u8; 20], "auth.example.com:443", "ada@example.com").unwrap();
        let uri = totp.otpauth_uri().unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(
            uri.contains("ada%40example.com") || uri.contains("ada@example.com"),
            "{uri}"
        );
        assert!(
            uri.contains(&format!("secret={}", secret_base32(&[7u8; 20]))),
            "{uri}"
        );
        assert!(uri.contains("issuer=auth.example.com"), "{uri}");
        let svg = totp.qr_svg().unwrap();
        assert!(svg.contains("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn sealed_secrets_open_only_with_the_key_and_for_the_user() {
        let keys = MfaKeys::parse(&MfaKeys::generate_entry("k1").unwrap()).unwrap();
        let user = Uuid::new_v4();
        let sealed = keys.seal(user, b"0123456789abcdefghij").unwrap();
        assert_eq!(sealed.kid, "k1");
        assert!(
            !sealed.ciphertext.contains("MDEyMzQ1"),
            "not the plain secret in base64"
        );
        assert_eq!(keys.open(user, &sealed).unwrap(), b"0123456789abcdefghij");
        assert_eq!(
            keys.open(Uuid::new_v4(), &sealed),
            Err(MfaError::Unsealable)
        );
        let other = MfaKeys::parse(&MfaKeys::generate_entry("k1").unwrap()).unwrap();
        assert_eq!(other.open(user, &sealed), Err(MfaError::Unsealable));
        let mut tampered = sealed.clone();
        tampered.ciphertext.replace_range(
            0..1,
            if tampered.ciphertext.starts_with('A') {
                "B"
            } else {
                "A"
            },
        );
        assert_eq!(keys.open(user, &tampered), Err(MfaError::Unsealable));
    }

    #[test]
    fn keys_are_parsed_strictly() {
        let good = MfaKeys::generate_entry("k1").unwrap();
        let second = MfaKeys::generate_entry("k2").unwrap();
        let both = MfaKeys::parse(&format!("{second},{good}")).unwrap();
        let user = Uuid::new_v4();
        let old = MfaKeys::parse(&good)
            .unwrap()
            .seal(user, b"secret-secret-secret")
            .unwrap();
        assert_eq!(both.open(user, &old).unwrap(), b"secret-secret-secret");
        assert_eq!(both.seal(user, b"x").unwrap().kid, "k2");
        for bad in [
            "",
            "nokey",
            "k1:",
            "k1:c2hvcnQ",
            ":AAAA",
            &format!("{good},{good}"),
        ] {
            assert!(MfaKeys::parse(bad).is_err(), "{bad:?}");
        }
        assert!(!format!("{both:?}").contains(good.split(':').nth(1).unwrap()));
    }

    #[test]
    fn recovery_codes_are_keyed_and_bound_to_their_user() {
        let entry = MfaKeys::generate_entry("k1").unwrap();
        let keys = MfaKeys::parse(&entry).unwrap();
        let other_keys = MfaKeys::parse(&MfaKeys::generate_entry("k1").unwrap()).unwrap();
        let (ada, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let code = "abcd2345wxyz";
        let hash = keys.recovery_code_hash(ada, code);
        assert!(hash.starts_with("k1.") && hash.len() == 3 + 64, "{hash}");
        assert_eq!(keys.recovery_code_hash(ada, code), hash, "deterministic");
        assert_ne!(
            keys.recovery_code_hash(bob, code),
            hash,
            "bound to the user"
        );
        assert_ne!(other_keys.recovery_code_hash(ada, code), hash, "keyed");
        let plain: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, code.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!hash.contains(&plain), "not the bare SHA-256");
        // After a rotation the new key hashes, and a code hashed under the old one still matches.
        let rotated = MfaKeys::parse(&format!(
            "{},{entry}",
            MfaKeys::generate_entry("k2").unwrap()
        ))
        .unwrap();
        assert!(rotated.recovery_code_hash(ada, code).starts_with("k2."));
        assert!(rotated.recovery_code_candidates(ada, code).contains(&hash));
    }

    #[test]
    fn recovery_codes_are_random_and_normalized() {
        let codes = new_recovery_codes().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        for code in &codes {
            assert_eq!(code.len(), 14, "{code}");
            let normal = normalize_recovery_code(code).unwrap();
            assert_eq!(
                normalize_recovery_code(&code.to_uppercase()),
                Some(normal.clone())
            );
            assert_eq!(normalize_recovery_code(&normal), Some(normal.clone()));
        }
        for bad in [
            "",
            "123456",
            "abcd-efgh-ijk",
            "abcd-efgh-ijkl",
            "abcd-efgh-ijkm0",
        ] {
            assert_eq!(normalize_recovery_code(bad), None, "{bad}");
        }
        assert!(is_totp_code("012345"));
        for bad in ["01234", "0123456", "01234a", "٠١٢٣٤٥", " 12345"] {
            assert!(!is_totp_code(bad), "{bad}");
        }
    }
}
