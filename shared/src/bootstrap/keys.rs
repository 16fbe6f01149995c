//! Where a function's keys come from: the published JWK Set from the environment, the private
//! signing key from Secrets Manager (or, in development, the environment).

use super::{BootstrapError, env};
use crate::config::ConfigError;
use crate::tokens::{JwkSet, KeyRing, SigningKey};

pub const PUBLIC_KEYS_VAR: &str = "JWT_PUBLIC_KEYS";
pub const SIGNING_KEY_SECRET_VAR: &str = "JWT_SIGNING_KEY_SECRET_ARN";
/// Development only (cargo lambda watch): the private JWK itself instead of a secret ARN.
pub const SIGNING_KEY_VAR: &str = "JWT_SIGNING_KEY";
/// The keys that seal TOTP secrets (`KID:KEY[,KID:KEY...]`), or the Secrets Manager secret
/// that holds them.
pub const MFA_KEY_VAR: &str = "MFA_ENCRYPTION_KEY";
pub const MFA_KEY_SECRET_VAR: &str = "MFA_ENCRYPTION_KEY_SECRET_ARN";

/// Which keys a function that does not sign holds. Signing functions use
/// [`signing_service_from_env`], so only they link the Secrets Manager client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAccess {
    Verify,
    None,
}

/// Where a function's keys come from: the environment in Lambda, given values in tests.
#[derive(Debug, Clone, Default)]
pub struct KeySource {
    /// `JWT_PUBLIC_KEYS`: the published JWK Set.
    pub published: Option<String>,
    /// `JWT_SIGNING_KEY_SECRET_ARN`: where the private signing JWK is kept.
    pub signing_secret_arn: Option<String>,
    /// `JWT_SIGNING_KEY`: the private signing JWK itself (development only).
    pub signing_jwk: Option<String>,
}

impl KeySource {
    pub fn from_env() -> Self {
        Self {
            published: env(PUBLIC_KEYS_VAR),
            signing_secret_arn: env(SIGNING_KEY_SECRET_VAR),
            signing_jwk: env(SIGNING_KEY_VAR),
        }
    }

    fn published_keys(&self) -> Result<JwkSet, BootstrapError> {
        let raw = self.published.as_deref().ok_or(ConfigError::Missing {
            name: PUBLIC_KEYS_VAR,
        })?;
        serde_json::from_str(raw).map_err(|e| {
            BootstrapError::Config(ConfigError::Invalid {
                name: PUBLIC_KEYS_VAR,
                reason: format!("expected a JWK Set ({{\"keys\": [...]}}): {e}"),
            })
        })
    }

    async fn signing_key(&self) -> Result<SigningKey, BootstrapError> {
        let (name, jwk) = match (&self.signing_secret_arn, &self.signing_jwk) {
            (Some(_), Some(_)) => {
                return Err(BootstrapError::Keys(format!(
                    "set either {SIGNING_KEY_SECRET_VAR} or {SIGNING_KEY_VAR}, not both"
                )));
            }
            (Some(arn), None) => (SIGNING_KEY_SECRET_VAR, read_secret(arn).await?),
            (None, Some(jwk)) => {
                tracing::warn!(
                    "using {SIGNING_KEY_VAR} from the environment: for development only"
                );
                (SIGNING_KEY_VAR, jwk.clone())
            }
            (None, None) => {
                return Err(ConfigError::Missing {
                    name: SIGNING_KEY_SECRET_VAR,
                }
                .into());
            }
        };
        SigningKey::from_private_jwk(jwk.trim())
            .map_err(|source| BootstrapError::Key { name, source })
    }
}

/// The key ring of a function that does not sign.
pub fn key_ring(access: KeyAccess, source: &KeySource) -> Result<KeyRing, BootstrapError> {
    let published = match access {
        KeyAccess::None => JwkSet::default(),
        KeyAccess::Verify => source.published_keys()?,
    };
    KeyRing::verify_only(&published).map_err(|source| BootstrapError::Key {
        name: PUBLIC_KEYS_VAR,
        source,
    })
}

/// The key ring of a signing function: its private key and every published key.
pub async fn signing_key_ring(source: &KeySource) -> Result<KeyRing, BootstrapError> {
    let published = source.published_keys()?;
    let signing = source.signing_key().await?;
    // Tokens signed with an unpublished key would be refused by every verifier.
    if published
        .keys
        .iter()
        .all(|k| k.kid.as_deref() != Some(signing.kid()))
    {
        return Err(BootstrapError::Keys(format!(
            "the signing key {:?} is not in {PUBLIC_KEYS_VAR}; publish it first",
            signing.kid()
        )));
    }
    KeyRing::new(Some(signing), &published).map_err(|source| BootstrapError::Key {
        name: PUBLIC_KEYS_VAR,
        source,
    })
}

/// Reads the signing key's secret, with the role's credentials and region from the environment
/// as Lambda gives them (no default-chain probing, as for the DynamoDB client).
pub(super) async fn read_secret(arn: &str) -> Result<String, BootstrapError> {
    use aws_sdk_secretsmanager::config;
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let mut builder = config::Builder::new()
        .behavior_version(config::BehaviorVersion::latest())
        .credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    if let Some(region) = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")) {
        builder = builder.region(config::Region::new(region));
    }
    // A local stand-in of Secrets Manager (benchmarks, sam local); unset in AWS.
    if let Some(endpoint) = var("AWS_ENDPOINT_URL_SECRETS_MANAGER") {
        builder = builder.endpoint_url(endpoint);
    }
    let client = aws_sdk_secretsmanager::Client::from_conf(builder.build());
    let output = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            BootstrapError::Secret(
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
            )
        })?;
    output
        .secret_string
        .ok_or_else(|| BootstrapError::Secret("the secret has no string value".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(signing: &SigningKey, published: &[&SigningKey]) -> KeySource {
        let set = JwkSet {
            keys: published.iter().map(|k| k.public_jwk()).collect(),
        };
        KeySource {
            published: Some(serde_json::to_string(&set).unwrap()),
            signing_secret_arn: None,
            signing_jwk: Some(signing.private_jwk_json().unwrap()),
        }
    }

    #[tokio::test]
    async fn signing_functions_hold_the_signing_key_and_every_published_key() {
        let current = SigningKey::generate("current").unwrap();
        let next = SigningKey::generate("next").unwrap();
        let ring = signing_key_ring(&source(&current, &[&current, &next]))
            .await
            .unwrap();
        assert_eq!(ring.signing().map(SigningKey::kid), Some("current"));
        assert!(
            ring.find("next").is_some(),
            "a published next key verifies before it signs"
        );
    }

    #[tokio::test]
    async fn a_signing_key_missing_from_the_published_set_stops_the_start() {
        let current = SigningKey::generate("current").unwrap();
        let other = SigningKey::generate("other").unwrap();
        let err = signing_key_ring(&source(&current, &[&other]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not in JWT_PUBLIC_KEYS"), "{err}");
    }

    #[test]
    fn verifying_functions_get_no_signing_key() {
        let current = SigningKey::generate("current").unwrap();
        let ring = key_ring(KeyAccess::Verify, &source(&current, &[&current])).unwrap();
        assert!(ring.signing().is_none());
        assert!(ring.find("current").is_some());
        let ring = key_ring(KeyAccess::None, &KeySource::default()).unwrap();
        assert!(ring.jwks().keys.is_empty());
    }

    #[tokio::test]
    async fn missing_or_malformed_key_configuration_names_the_variable() {
        let err = key_ring(KeyAccess::Verify, &KeySource::default()).unwrap_err();
        assert!(err.to_string().contains("JWT_PUBLIC_KEYS"), "{err}");
        let bad = KeySource {
            published: Some("[1,2]".into()),
            ..KeySource::default()
        };
        let err = key_ring(KeyAccess::Verify, &bad).unwrap_err();
        assert!(err.to_string().contains("JWT_PUBLIC_KEYS"), "{err}");

        let current = SigningKey::generate("current").unwrap();
        let mut no_signing = source(&current, &[&current]);
        no_signing.signing_jwk = None;
        let err = signing_key_ring(&no_signing).await.unwrap_err();
        assert!(
            err.to_string().contains("JWT_SIGNING_KEY_SECRET_ARN"),
            "{err}"
        );

        let mut both = source(&current, &[&current]);
        both.signing_secret_arn =
            Some("arn:aws:secretsmanager:eu-west-1:123456789012:secret:x".into());
        let err = signing_key_ring(&both).await.unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");

        let mut garbage = source(&current, &[&current]);
        garbage.signing_jwk = Some("{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}".into());
        let err = signing_key_ring(&garbage).await.unwrap_err();
        assert!(err.to_string().contains("JWT_SIGNING_KEY"), "{err}");
    }
}
