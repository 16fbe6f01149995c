//! `authctl keygen`: a new Ed25519 signing key.

use shared::SigningKey;
use shared::tokens::JwkSet;

use crate::USAGE;

/// A kid that sorts by creation date and is unique enough: `2026-11-27-3f9a`.
fn default_kid() -> String {
    let today = time::OffsetDateTime::now_utc().date();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..4];
    format!("{today}-{suffix}")
}

/// A new key: the secret value and the JWK Set to publish.
pub struct Generated {
    pub private_jwk: String,
    pub public_jwks: String,
}

pub fn keygen(args: &[String]) -> Result<Generated, String> {
    let mut kid = None;
    let mut published = JwkSet::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--kid" => kid = Some(args.next().ok_or("--kid needs a value")?.clone()),
            "--public-keys" => {
                let path = args.next().ok_or("--public-keys needs a file")?;
                let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
                published = serde_json::from_str(&text)
                    .map_err(|e| format!("{path}: not a JWK Set: {e}"))?;
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let kid = kid.unwrap_or_else(default_kid);
    if published
        .keys
        .iter()
        .any(|k| k.kid.as_deref() == Some(kid.as_str()))
    {
        return Err(format!("the set already has a key {kid:?}"));
    }
    let key = SigningKey::generate(&kid).map_err(|e| e.to_string())?;
    let private = key.private_jwk_json().map_err(|e| e.to_string())?;
    published.keys.push(key.public_jwk());
    let public_jwks = serde_json::to_string(&published).map_err(|e| e.to_string())?;
    Ok(Generated {
        private_jwk: private,
        public_jwks,
    })
}

/// `mfa-keygen`: a new key entry for `MFA_ENCRYPTION_KEY`, before the current ones if given.
pub fn mfa_keygen(args: &[String]) -> Result<String, String> {
    let mut kid = None;
    let mut current = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--kid" => kid = Some(args.next().ok_or("--kid needs a value")?.clone()),
            "--keys" => current = Some(args.next().ok_or("--keys needs the current keys")?.clone()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let entry = shared::mfa::MfaKeys::generate_entry(&kid.unwrap_or_else(default_kid))
        .map_err(|e| e.to_string())?;
    let keys = match current {
        Some(current) => format!("{entry},{}", current.trim()),
        None => entry,
    };
    shared::mfa::MfaKeys::parse(&keys).map_err(|e| e.to_string())?;
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::KeyRing;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn generated_keys_load_as_a_signing_function_would() {
        let generated = keygen(&args(&["--kid", "k1"])).unwrap();
        let signing = SigningKey::from_private_jwk(&generated.private_jwk).unwrap();
        assert_eq!(signing.kid(), "k1");
        let published: JwkSet = serde_json::from_str(&generated.public_jwks).unwrap();
        assert_eq!(published.keys.len(), 1);
        assert!(
            !generated.public_jwks.contains("\"d\""),
            "no private part in the public set"
        );
        assert!(KeyRing::new(Some(signing), &published).is_ok());
    }

    #[test]
    fn rotation_adds_the_new_key_to_the_published_set() {
        let first = keygen(&args(&["--kid", "old"])).unwrap();
        let dir = std::env::temp_dir().join(format!("authctl-{}", uuid::Uuid::new_v4()));
        std::fs::write(&dir, &first.public_jwks).unwrap();
        let second = keygen(&args(&[
            "--kid",
            "new",
            "--public-keys",
            dir.to_str().unwrap(),
        ]))
        .unwrap();
        let published: JwkSet = serde_json::from_str(&second.public_jwks).unwrap();
        let kids: Vec<_> = published
            .keys
            .iter()
            .filter_map(|k| k.kid.clone())
            .collect();
        assert_eq!(kids, ["old", "new"]);
        assert!(
            keygen(&args(&[
                "--kid",
                "old",
                "--public-keys",
                dir.to_str().unwrap()
            ]))
            .is_err()
        );
        std::fs::remove_file(dir).unwrap();
    }

    #[test]
    fn default_kids_are_valid_and_distinct() {
        let (a, b) = (default_kid(), default_kid());
        assert!(shared::tokens::keys::is_valid_kid(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn mfa_keys_are_new_and_put_the_new_one_first() {
        let first = mfa_keygen(&["--kid".into(), "one".into()]).unwrap();
        assert!(first.starts_with("one:"));
        let rotated =
            mfa_keygen(&["--kid".into(), "two".into(), "--keys".into(), first.clone()]).unwrap();
        assert!(
            rotated.starts_with("two:") && rotated.ends_with(&first),
            "{rotated}"
        );
        assert!(mfa_keygen(&["--keys".into(), "broken".into()]).is_err());
    }
}
