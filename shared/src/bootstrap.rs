//! Cold-start wiring for the Lambda functions: configuration, the DynamoDB client and the keys,
//! each built once per execution environment and then borrowed by every invocation.
//!
//! Keys reach a function according to what it does:
//! - signing functions (register, login, refresh) read the private key from AWS Secrets Manager
//!   (`JWT_SIGNING_KEY_SECRET_ARN`) and verify with the published keys;
//! - verifying functions (authorizer, jwks) get only the published public keys
//!   (`JWT_PUBLIC_KEYS`, a JWK Set);
//! - the others (me, sessions, logout) trust the authorizer's context and hold no key at all.

use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::{Config, ConfigError};
use crate::passwords::Passwords;
use crate::service::AuthService;
use crate::store::dynamo::DynamoStore;
use crate::tokens::{JwkSet, KeyError, KeyRing, SigningKey};

pub const PUBLIC_KEYS_VAR: &str = "JWT_PUBLIC_KEYS";
pub const SIGNING_KEY_SECRET_VAR: &str = "JWT_SIGNING_KEY_SECRET_ARN";
/// Development only (cargo lambda watch): the private JWK itself instead of a secret ARN.
pub const SIGNING_KEY_VAR: &str = "JWT_SIGNING_KEY";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("configuration: {name} is invalid: {source}")]
    Key {
        name: &'static str,
        source: KeyError,
    },
    #[error("configuration: {0}")]
    Keys(String),
    #[error("could not read the signing key secret: {0}")]
    Secret(String),
}

/// Which keys a function holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAccess {
    Sign,
    Verify,
    None,
}

/// Initialises logging the way the Lambda runtime expects (text or JSON per the function's
/// log format, level from `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL`).
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The published JWK Set from `JWT_PUBLIC_KEYS`.
pub fn published_keys() -> Result<JwkSet, BootstrapError> {
    let raw = env(PUBLIC_KEYS_VAR).ok_or(ConfigError::Missing {
        name: PUBLIC_KEYS_VAR,
    })?;
    serde_json::from_str(&raw).map_err(|e| {
        BootstrapError::Config(ConfigError::Invalid {
            name: PUBLIC_KEYS_VAR,
            reason: format!("expected a JWK Set ({{\"keys\": [...]}}): {e}"),
        })
    })
}

/// A key ring for `access`, signing key included when asked for.
pub async fn key_ring(access: KeyAccess) -> Result<KeyRing, BootstrapError> {
    let ring = match access {
        KeyAccess::None => KeyRing::verify_only(&JwkSet::default()),
        KeyAccess::Verify => KeyRing::verify_only(&published_keys()?),
        KeyAccess::Sign => {
            let published = published_keys()?;
            let signing = signing_key().await?;
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
            KeyRing::new(Some(signing), &published)
        }
    };
    ring.map_err(|source| BootstrapError::Key {
        name: PUBLIC_KEYS_VAR,
        source,
    })
}

async fn signing_key() -> Result<SigningKey, BootstrapError> {
    let (name, jwk) = match (env(SIGNING_KEY_SECRET_VAR), env(SIGNING_KEY_VAR)) {
        (Some(_), Some(_)) => {
            return Err(BootstrapError::Keys(format!(
                "set either {SIGNING_KEY_SECRET_VAR} or {SIGNING_KEY_VAR}, not both"
            )));
        }
        (Some(arn), None) => (SIGNING_KEY_SECRET_VAR, read_secret(&arn).await?),
        (None, Some(jwk)) => {
            tracing::warn!("using {SIGNING_KEY_VAR} from the environment: for development only");
            (SIGNING_KEY_VAR, jwk)
        }
        (None, None) => {
            return Err(ConfigError::Missing {
                name: SIGNING_KEY_SECRET_VAR,
            }
            .into());
        }
    };
    SigningKey::from_private_jwk(jwk.trim()).map_err(|source| BootstrapError::Key { name, source })
}

async fn read_secret(arn: &str) -> Result<String, BootstrapError> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
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

/// The service on DynamoDB with the keys `access` asks for. A failure is logged, so the reason
/// for a failed cold start is in the function's log.
pub async fn service_from_env(access: KeyAccess) -> Result<Arc<AuthService>, BootstrapError> {
    build_service(access)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cold start failed"))
}

async fn build_service(access: KeyAccess) -> Result<Arc<AuthService>, BootstrapError> {
    let config = Arc::new(Config::from_env()?);
    let keys = Arc::new(key_ring(access).await?);
    let client = DynamoStore::client_from_env().await;
    let store = Arc::new(DynamoStore::new(
        client,
        &config.users_table,
        &config.sessions_table,
    ));
    Ok(Arc::new(AuthService::new(
        config,
        store,
        keys,
        Passwords::new(),
        Arc::new(SystemClock),
    )))
}

/// The discovery documents: the issuer and the published keys, no store.
pub fn discovery_from_env() -> Result<crate::handlers::discovery::Discovery, BootstrapError> {
    build_discovery().inspect_err(|e| tracing::error!(error = %e, "cold start failed"))
}

fn build_discovery() -> Result<crate::handlers::discovery::Discovery, BootstrapError> {
    let issuer = env("JWT_ISSUER").ok_or(ConfigError::Missing { name: "JWT_ISSUER" })?;
    let keys = KeyRing::verify_only(&published_keys()?).map_err(|source| BootstrapError::Key {
        name: PUBLIC_KEYS_VAR,
        source,
    })?;
    Ok(crate::handlers::discovery::Discovery::new(issuer, &keys))
}
