//! Cold-start wiring for the Lambda functions: configuration, the DynamoDB client and the keys,
//! each built once per execution environment and then borrowed by every invocation
//! ([`serve`] runs the invocations).
//!
//! Keys reach a function according to what it does ([`crate::routes::Function::keys`] lists
//! them, and a test holds each function's `main` and template entry to it):
//! - signing functions (register, login, refresh, mfa, passkeys, oidc) read the private key from AWS Secrets
//!   Manager (`JWT_SIGNING_KEY_SECRET_ARN`) and verify with the published keys;
//! - verifying functions (authorizer, web) get only the published public keys
//!   (`JWT_PUBLIC_KEYS`, a JWK Set);
//! - the others (logout, password, me, sessions, email, email-links) trust the authorizer's
//!   context or an emailed link's hash and hold no key at all.

mod keys;
mod outbox_layer;
mod serve;

use std::sync::Arc;

pub use keys::{
    KeyAccess, KeySource, MFA_KEY_SECRET_VAR, MFA_KEY_VAR, PUBLIC_KEYS_VAR, SIGNING_KEY_SECRET_VAR,
    SIGNING_KEY_VAR, key_ring, signing_key_ring,
};
pub use serve::{init_tracing, serve_authorizer, serve_http};

use self::keys::read_secret;
use crate::clock::SystemClock;
use crate::config::oidc::ClientSecret;
use crate::config::{Config, ConfigError};
use crate::events::eventbridge::EventBridgeSink;
use crate::http::edge::{EdgeTrust, ORIGIN_SECRET_ARN_VAR, ORIGIN_SECRET_VAR, OriginSecret};
use crate::mail::ses::SesMailer;
use crate::mfa::MfaKeys;
use crate::oidc::OidcProviders;
use crate::passkeys::RelyingParty;
use crate::passwords::Passwords;
use crate::service::AuthService;
use crate::store::dynamo::DynamoStore;
use crate::tokens::{KeyError, KeyRing};

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

pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The service on DynamoDB for a function that does not sign. A failure is logged, so the
/// reason for a failed cold start is in the function's log.
pub async fn service_from_env(access: KeyAccess) -> Result<AuthService, BootstrapError> {
    let keys = key_ring(access, &KeySource::from_env());
    logged(async { build_service(keys?).await }.await)
}

/// The service on DynamoDB for a signing function (register, login, refresh).
pub async fn signing_service_from_env() -> Result<AuthService, BootstrapError> {
    let keys = signing_key_ring(&KeySource::from_env()).await;
    logged(async { build_service(keys?).await }.await)
}

/// The same service, sealing TOTP secrets with the keys of `MFA_ENCRYPTION_KEY_SECRET_ARN`
/// (Secrets Manager) or, for development, `MFA_ENCRYPTION_KEY`.
pub async fn with_mfa_keys_from_env(service: AuthService) -> Result<AuthService, BootstrapError> {
    let keys = async {
        let (name, value) = match (env(MFA_KEY_SECRET_VAR), env(MFA_KEY_VAR)) {
            (Some(_), Some(_)) => {
                return Err(BootstrapError::Keys(format!(
                    "set either {MFA_KEY_SECRET_VAR} or {MFA_KEY_VAR}, not both"
                )));
            }
            (Some(arn), None) => (MFA_KEY_SECRET_VAR, read_secret(&arn).await?),
            (None, Some(value)) => (MFA_KEY_VAR, value),
            (None, None) => {
                return Err(ConfigError::Missing {
                    name: MFA_KEY_SECRET_VAR,
                }
                .into());
            }
        };
        MfaKeys::parse(value.trim()).map_err(|e| {
            BootstrapError::Config(ConfigError::Invalid {
                name,
                reason: e.to_string(),
            })
        })
    };
    let keys = logged(keys.await)?;
    Ok(service.with_mfa_keys(Arc::new(keys)))
}

/// The same service, sending mail through Amazon SES v2 from `MAIL_FROM`.
pub async fn with_ses_mail(service: AuthService) -> Result<AuthService, BootstrapError> {
    let from = service
        .config()
        .mail_from
        .clone()
        .ok_or(ConfigError::Missing { name: "MAIL_FROM" });
    let from = logged(from.map_err(BootstrapError::from))?;
    Ok(service.with_mailer(Arc::new(SesMailer::lambda(from))))
}

/// The same service, with passkeys for the relying party of `WEBAUTHN_RP_ID` and
/// `WEBAUTHN_ORIGINS` (or `APP_URL`). Without either, passkey routes answer 500 and the log
/// says why; the rest of the function works.
pub fn with_relying_party(service: AuthService) -> Result<AuthService, BootstrapError> {
    let Some(settings) = service.config().webauthn.clone() else {
        tracing::warn!("passkeys are off: set APP_URL, or WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS");
        return Ok(service);
    };
    let relying_party = RelyingParty::new(&settings.rp_id, &settings.origins, &settings.rp_id)
        .map_err(|e| {
            BootstrapError::Config(ConfigError::Invalid {
                name: "WEBAUTHN_RP_ID",
                reason: e.to_string(),
            })
        });
    Ok(service.with_relying_party(Arc::new(logged(relying_party)?)))
}

/// The same service, signing users in with the providers of `OIDC_PROVIDERS`, each client
/// secret read from Secrets Manager (`client_secret_arn`) or, locally, the configuration.
pub async fn with_oidc_from_env(service: AuthService) -> Result<AuthService, BootstrapError> {
    let secrets = async {
        let mut secrets = Vec::new();
        for provider in &service.config().oidc_providers {
            let secret = match (&provider.client_secret_arn, &provider.client_secret) {
                (Some(arn), _) => ClientSecret::new(read_secret(arn).await?.trim()),
                (None, Some(secret)) => secret.clone(),
                (None, None) => {
                    return Err(BootstrapError::Config(ConfigError::Invalid {
                        name: "OIDC_PROVIDERS",
                        reason: format!("provider {:?} has no client secret", provider.id),
                    }));
                }
            };
            secrets.push(secret);
        }
        Ok(secrets)
    };
    let secrets = logged(secrets.await)?;
    if secrets.is_empty() {
        tracing::warn!("OpenID Connect sign-in is off: OIDC_PROVIDERS is empty");
    }
    let providers = OidcProviders::new(&service.config().oidc_providers, secrets);
    Ok(service.with_oidc(Arc::new(providers)))
}

/// The same service with the providers of its configuration, their secrets inline
/// (`client_secret`): the local server and the tests, which read no Secrets Manager.
pub fn with_inline_oidc(service: AuthService) -> Result<AuthService, BootstrapError> {
    if service.config().oidc_providers.is_empty() {
        return Ok(service);
    }
    let providers =
        OidcProviders::from_inline_secrets(&service.config().oidc_providers).map_err(|reason| {
            BootstrapError::Config(ConfigError::Invalid {
                name: "OIDC_PROVIDERS",
                reason: format!("{reason} (locally, each provider needs client_secret)"),
            })
        })?;
    Ok(service.with_oidc(Arc::new(providers)))
}

fn logged<T>(result: Result<T, BootstrapError>) -> Result<T, BootstrapError> {
    result.inspect_err(|e| tracing::error!(error = %e, "cold start failed"))
}

async fn build_service(keys: KeyRing) -> Result<AuthService, BootstrapError> {
    let config = Arc::new(Config::from_env()?);
    let store = Arc::new(DynamoStore::lazy(
        DynamoStore::lambda_client,
        &config.users_table,
        &config.sessions_table,
        &config.history_table,
    ));
    let bus = config.event_bus_name.clone();
    let service = AuthService::new(
        config,
        store,
        Arc::new(keys),
        Passwords::new(),
        Arc::new(SystemClock),
    );
    // Lifecycle events, when the stack names a bus.
    Ok(match bus {
        Some(bus) => service.with_events(Arc::new(EventBridgeSink::lambda(bus))),
        None => service,
    })
}

/// Whom the function trusts to name the client's address: our CloudFront distribution when
/// the stack puts one in front (`EDGE_ORIGIN_SECRET_ARN`, or for development the secret itself
/// in `EDGE_ORIGIN_SECRET`), else nobody (see [`crate::http::edge`]).
pub async fn edge_trust_from_env() -> Result<EdgeTrust, BootstrapError> {
    let trust = async {
        let secret = match (env(ORIGIN_SECRET_ARN_VAR), env(ORIGIN_SECRET_VAR)) {
            (Some(_), Some(_)) => {
                return Err(BootstrapError::Keys(format!(
                    "set either {ORIGIN_SECRET_ARN_VAR} or {ORIGIN_SECRET_VAR}, not both"
                )));
            }
            (Some(arn), None) => (ORIGIN_SECRET_ARN_VAR, read_secret(&arn).await?),
            (None, Some(secret)) => (ORIGIN_SECRET_VAR, secret),
            (None, None) => return Ok(EdgeTrust::Direct),
        };
        let (name, secret) = secret;
        OriginSecret::new(&secret)
            .map(EdgeTrust::Distribution)
            .map_err(|e| {
                BootstrapError::Config(ConfigError::Invalid {
                    name,
                    reason: e.to_string(),
                })
            })
    };
    logged(trust.await)
}

/// The discovery documents: the issuer and the published keys, no store.
pub fn published_from_env() -> Result<crate::handlers::Published, BootstrapError> {
    let build = || {
        let issuer = env("JWT_ISSUER").ok_or(ConfigError::Missing { name: "JWT_ISSUER" })?;
        let keys = key_ring(KeyAccess::Verify, &KeySource::from_env())?;
        let providers = crate::config::oidc::parse(env("OIDC_PROVIDERS"))?;
        Ok(crate::handlers::Published::new(issuer, &keys).with_providers(&providers))
    };
    logged(build())
}
