//! Building the DynamoDB client: once per cold start, with timeouts and retries that keep a
//! failing call inside a Lambda's time limit.

use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_dynamodb::Client;

use super::DynamoStore;

/// A DynamoDB client built at most once, when first used.
#[derive(Debug, Clone)]
pub(super) struct LazyClient {
    client: OnceLock<Client>,
    make: fn() -> Client,
}

impl LazyClient {
    pub(super) fn ready(client: Client) -> Self {
        Self {
            client: OnceLock::from(client),
            make: || unreachable!("the client was given"),
        }
    }

    pub(super) fn on_first_use(make: fn() -> Client) -> Self {
        Self {
            client: OnceLock::new(),
            make,
        }
    }
}

impl std::ops::Deref for LazyClient {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client.get_or_init(self.make)
    }
}

impl DynamoStore {
    /// The SDK settings every client shares: timeouts and retries that keep a failing call,
    /// retries included, well inside a Lambda's time limit, so the caller can still answer
    /// `503` instead of timing out.
    pub fn sdk_loader() -> aws_config::ConfigLoader {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(timeouts())
            .retry_config(retries())
    }

    /// The client of a Lambda function, built without `aws_config`'s default chains: Lambda
    /// gives every function its region and its role's credentials in environment variables,
    /// so probing profile files, web identity, ECS and IMDS at each cold start would only cost
    /// time (and their code would only grow the binary). `AWS_ENDPOINT_URL_DYNAMODB` (DynamoDB
    /// Local under `sam local`) applies when not empty; the template declares it empty.
    pub fn lambda_client() -> Client {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .credentials_provider(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            )
            .timeout_config(timeouts())
            .retry_config(retries());
        if let Some(region) = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")) {
            config = config.region(aws_sdk_dynamodb::config::Region::new(region));
        }
        if let Some(endpoint) = var("AWS_ENDPOINT_URL_DYNAMODB") {
            config = config.endpoint_url(endpoint);
        }
        Client::from_conf(config.build())
    }

    /// A client from the environment: region, credentials, and `AWS_ENDPOINT_URL_DYNAMODB`.
    pub async fn client_from_env() -> Client {
        Client::new(&Self::sdk_loader().load().await)
    }

    /// A client for a DynamoDB outside AWS (DynamoDB Local): region and credentials from the
    /// environment when set, placeholders otherwise, since such servers accept any.
    pub async fn client_for_endpoint(endpoint: &str) -> Client {
        let mut loader = Self::sdk_loader().endpoint_url(endpoint);
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            loader = loader.region("us-east-1");
        }
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.test_credentials();
        }
        Client::new(&loader.load().await)
    }
}

fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build()
}

fn retries() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard().with_max_attempts(3)
}
