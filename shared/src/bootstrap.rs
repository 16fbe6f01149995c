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
use crate::handlers::authorizer;
use crate::mail::ses::SesMailer;
use crate::mfa::MfaKeys;
use crate::passwords::Passwords;
use crate::routes::{FunctionRoutes, HandlerState};
use crate::service::AuthService;
use crate::store::dynamo::DynamoStore;
use crate::tokens::{JwkSet, KeyError, KeyRing, SigningKey};

pub const PUBLIC_KEYS_VAR: &str = "JWT_PUBLIC_KEYS";
pub const SIGNING_KEY_SECRET_VAR: &str = "JWT_SIGNING_KEY_SECRET_ARN";
/// Development only (cargo lambda watch): the private JWK itself instead of a secret ARN.
pub const SIGNING_KEY_VAR: &str = "JWT_SIGNING_KEY";
/// The keys that seal TOTP secrets (`KID:KEY[,KID:KEY...]`), or the Secrets Manager secret
/// that holds them.
pub const MFA_KEY_VAR: &str = "MFA_ENCRYPTION_KEY";
pub const MFA_KEY_SECRET_VAR: &str = "MFA_ENCRYPTION_KEY_SECRET_ARN";

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

/// Which keys a function that does not sign holds. Signing functions use
/// [`signing_service_from_env`], so only they link the Secrets Manager client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAccess {
    Verify,
    None,
}

/// Serves a function's routes until the runtime stops: each invocation goes to the handler of
/// the route it came in on. `routes` is `const { Function::X.routes() }`, so the binary links
/// only its own handlers.
///
/// A function that sends mail answers first and mails after: an internal extension holds the
/// execution environment until the mail of each invocation is out, since Lambda freezes it only
/// once every extension has asked for its next event.
/// Metrics leave as one Embedded Metric Format line after each invocation.
pub async fn serve_http(
    state: &impl HandlerState,
    routes: FunctionRoutes,
) -> Result<(), lambda_http::Error> {
    install_metrics();
    /// Runs one invocation's handler and sends its metrics.
    async fn invocation(
        state: &impl HandlerState,
        routes: FunctionRoutes,
        request: lambda_http::Request,
    ) -> lambda_http::Response<lambda_http::Body> {
        use lambda_http::RequestExt;
        let request_id = request
            .lambda_context_ref()
            .map(|context| context.request_id.clone())
            .unwrap_or_default();
        let response = routes.serve(state, request).await;
        crate::metrics::flush(&request_id);
        // The status alone: at debug, what an operator tracing one request wants to see.
        tracing::debug!(status = response.status().as_u16(), "answered");
        response
    }

    let Some(outbox) = state.service().and_then(AuthService::outbox) else {
        return lambda_http::run(lambda_http::service_fn(move |request| async move {
            Ok::<_, lambda_http::Error>(invocation(state, routes, request).await)
        }))
        .await;
    };

    let (done, handlers_done) = tokio::sync::mpsc::unbounded_channel();
    let handlers_done = Arc::new(tokio::sync::Mutex::new(handlers_done));
    let extension = lambda_extension::Extension::new()
        .with_extension_name("outbox")
        .with_events(&["INVOKE"])
        .with_events_processor(lambda_extension::service_fn(move |_| {
            let (handlers_done, outbox) = (handlers_done.clone(), outbox.clone());
            async move {
                handlers_done.lock().await.recv().await;
                outbox.idle().await;
                Ok::<_, lambda_http::Error>(())
            }
        }))
        .register()
        .await?;
    let handler = lambda_http::Adapter::from(lambda_http::service_fn(move |request| async move {
        Ok::<_, lambda_http::Error>(invocation(state, routes, request).await)
    }));
    // The outermost layer sees every invocation, also one whose event does not even parse,
    // and tells the extension once the answer has gone out.
    let runtime = lambda_runtime::Runtime::new(handler)
        .layer(lambda_runtime::layers::TracingLayer::new())
        .layer(lambda_runtime::tower::layer::layer_fn(move |inner| {
            SignalDone {
                inner,
                done: done.clone(),
            }
        }))
        .run();
    tokio::try_join!(extension.run(), runtime).map(|_| ())
}

/// Tells the outbox's extension that an invocation is over (answered, refused, or panicked):
/// all of its background work has been handed over by then.
struct Done(tokio::sync::mpsc::UnboundedSender<()>);

impl Drop for Done {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// A runtime layer that signals [`Done`] when each invocation's inner service has finished.
struct SignalDone<S> {
    inner: S,
    done: tokio::sync::mpsc::UnboundedSender<()>,
}

impl<S> lambda_runtime::Service<lambda_runtime::LambdaInvocation> for SignalDone<S>
where
    S: lambda_runtime::Service<
            lambda_runtime::LambdaInvocation,
            Response = (),
            Error = lambda_runtime::Error,
        >,
{
    type Response = ();
    type Error = lambda_runtime::Error;
    type Future = WithDone<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: lambda_runtime::LambdaInvocation) -> Self::Future {
        WithDone {
            inner: self.inner.call(invocation),
            done: Some(Done(self.done.clone())),
        }
    }
}

pin_project_lite::pin_project! {
    /// An invocation's future, sending [`Done`] when it completes or is dropped.
    struct WithDone<F> {
        #[pin]
        inner: F,
        done: Option<Done>,
    }
}

impl<F: std::future::Future> std::future::Future for WithDone<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        this.done.take();
        std::task::Poll::Ready(output)
    }
}

/// Serves the API Gateway authorizer until the runtime stops.
pub async fn serve_authorizer(service: &AuthService) -> Result<(), lambda_runtime::Error> {
    install_metrics();
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let answer = authorizer::handle(service, event.payload).await;
            crate::metrics::flush(&event.context.request_id);
            answer
        },
    ))
    .await
}

fn install_metrics() {
    let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    crate::metrics::install_emf(&name);
}

/// Initialises logging the way the Lambda runtime expects (text or JSON per the function's
/// log format, level from `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL`), with the runtime, the SDK and
/// hyper never below `info` (see [`crate::logging`]).
pub fn init_tracing() {
    crate::logging::init_lambda();
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
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
async fn read_secret(arn: &str) -> Result<String, BootstrapError> {
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

fn logged<T>(result: Result<T, BootstrapError>) -> Result<T, BootstrapError> {
    result.inspect_err(|e| tracing::error!(error = %e, "cold start failed"))
}

async fn build_service(keys: KeyRing) -> Result<AuthService, BootstrapError> {
    let config = Arc::new(Config::from_env()?);
    let store = Arc::new(DynamoStore::lazy(
        DynamoStore::lambda_client,
        &config.users_table,
        &config.sessions_table,
    ));
    Ok(AuthService::new(
        config,
        store,
        Arc::new(keys),
        Passwords::new(),
        Arc::new(SystemClock),
    ))
}

/// The discovery documents: the issuer and the published keys, no store.
pub fn discovery_from_env() -> Result<crate::handlers::discovery::Discovery, BootstrapError> {
    let build = || {
        let issuer = env("JWT_ISSUER").ok_or(ConfigError::Missing { name: "JWT_ISSUER" })?;
        let keys = key_ring(KeyAccess::Verify, &KeySource::from_env())?;
        Ok(crate::handlers::discovery::Discovery::new(issuer, &keys))
    };
    logged(build())
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
