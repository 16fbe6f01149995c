//! The DynamoDB store.
//!
//! Two tables, each with a string partition key `pk`:
//! - users: `USER#<id>` holds the user; `EMAIL#<email>` is the email guard holding the user id.
//!   A user and its guard are written in one transaction conditioned on the guard not existing,
//!   so email uniqueness holds under any concurrency.
//! - sessions: `TOKEN#<jti>` per issued token and `CHAIN#<sid>` per sign-in chain, both with
//!   `expires_at` (epoch seconds) as the TTL attribute. Chains carry `chain_user_id`, the key of
//!   the sparse GSI `by_user` that lists a user's sessions. `THROTTLE#<key>` items hold the
//!   throttling counters, with the same TTL attribute.
//!
//! Every read that decides security is strongly consistent; TTL deletes lazily, so reads also
//! compare `expires_at` with the clock.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put,
    ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{
    AlongWithCode, ChallengePassed, DeviceStore, EmailChange, FailureCounter, LinkStore, MfaStore,
    RotateOutcome, RotationRequest, SessionSnapshot, SessionStore, SpentCode, StoreError,
    StoredFailures, ThrottleStore, UserStore,
};
use crate::clock::UnixTime;
use crate::model::{
    EmailLink, LinkKind, MfaChallenge, SealedSecret, Session, SessionChain, TrustedDevice, User,
};

type Item = HashMap<String, AttributeValue>;

use super::schema::{self, PARTITION_KEY, TTL_ATTRIBUTE, TableSchema, USER_INDEX, USER_INDEX_KEY};

/// A DynamoDB client built at most once, when first used.
#[derive(Debug, Clone)]
struct LazyClient {
    client: std::sync::OnceLock<Client>,
    make: fn() -> Client,
}

impl LazyClient {
    fn ready(client: Client) -> Self {
        Self {
            client: std::sync::OnceLock::from(client),
            make: || unreachable!("the client was given"),
        }
    }
}

impl std::ops::Deref for LazyClient {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client.get_or_init(self.make)
    }
}

/// Attempts for transactions that DynamoDB cancels because another one held an item.
const CONFLICT_ATTEMPTS: u32 = 8;

fn user_key(id: Uuid) -> AttributeValue {
    AttributeValue::S(format!("USER#{id}"))
}
fn email_key(email: &str) -> AttributeValue {
    AttributeValue::S(format!("EMAIL#{email}"))
}
fn token_key(id: Uuid) -> AttributeValue {
    AttributeValue::S(format!("TOKEN#{id}"))
}
fn chain_key(sid: Uuid) -> AttributeValue {
    AttributeValue::S(format!("CHAIN#{sid}"))
}
fn link_key(token_hash: &str) -> AttributeValue {
    AttributeValue::S(format!("LINK#{token_hash}"))
}
fn throttle_key(key: &str) -> AttributeValue {
    AttributeValue::S(format!("THROTTLE#{key}"))
}
fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}
fn s(value: impl ToString) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

fn to_item<T: Serialize>(value: &T, key: AttributeValue) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(value).map_err(internal)?;
    item.insert(PARTITION_KEY.into(), key);
    Ok(item)
}

fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(internal)
}

fn key(value: AttributeValue) -> Item {
    HashMap::from([(PARTITION_KEY.to_owned(), value)])
}

/// Sorts SDK failures into "try again later" (network, timeouts, throttling, server errors)
/// and everything else.
fn classify<E>(err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(detail)
        }
        SdkError::ServiceError(service) => match service.err().code() {
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionInProgressException",
            ) => StoreError::Unavailable(detail),
            _ if service.raw().status().is_server_error() => StoreError::Unavailable(detail),
            _ => StoreError::Internal(detail),
        },
        _ => StoreError::Internal(detail),
    }
}

/// The items of one `TransactWriteItems` call, each under a name of its own, so that a
/// cancellation reason is read by the item it belongs to, never by its position.
struct Transaction<Part> {
    parts: Vec<Part>,
    items: Vec<TransactWriteItem>,
}

impl<Part: Copy> Transaction<Part> {
    fn new() -> Self {
        Self {
            parts: Vec::new(),
            items: Vec::new(),
        }
    }

    fn with(mut self, part: Part, item: TransactWriteItem) -> Self {
        self.parts.push(part);
        self.items.push(item);
        self
    }

    /// Why DynamoDB cancelled it, item by item; `None` for any other failure.
    fn cancellation(&self, err: &SdkError<TransactWriteItemsError>) -> Option<Cancelled<Part>> {
        match err.as_service_error()? {
            TransactWriteItemsError::TransactionCanceledException(e) => Some(Cancelled {
                reasons: self
                    .parts
                    .iter()
                    .zip(e.cancellation_reasons())
                    .map(|(part, reason)| (*part, reason.code().unwrap_or("None").to_owned()))
                    .collect(),
            }),
            _ => None,
        }
    }
}

/// The reasons of a cancelled transaction, by item.
#[derive(Debug)]
struct Cancelled<Part> {
    reasons: Vec<(Part, String)>,
}

impl<Part: PartialEq> Cancelled<Part> {
    /// Whether this item's condition failed.
    fn failed(&self, part: Part) -> bool {
        self.reasons
            .iter()
            .any(|(p, code)| *p == part && code == "ConditionalCheckFailed")
    }

    /// Whether an item other than `part` failed its condition.
    fn failed_other_than(&self, part: Part) -> bool {
        self.reasons
            .iter()
            .any(|(p, code)| *p != part && code == "ConditionalCheckFailed")
    }

    fn any_failed(&self) -> bool {
        self.reasons
            .iter()
            .any(|(_, c)| c == "ConditionalCheckFailed")
    }

    /// Whether another transaction held one of the items: trying again may succeed.
    fn conflicted(&self) -> bool {
        self.reasons.iter().any(|(_, c)| c == "TransactionConflict")
    }
}

fn build<T>(result: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, StoreError> {
    result.map_err(internal)
}

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: LazyClient,
    users_table: String,
    sessions_table: String,
}

impl DynamoStore {
    pub fn new(
        client: Client,
        users_table: impl Into<String>,
        sessions_table: impl Into<String>,
    ) -> Self {
        Self {
            client: LazyClient::ready(client),
            users_table: users_table.into(),
            sessions_table: sessions_table.into(),
        }
    }

    /// A store whose client is built on its first call: building it loads the TLS root
    /// certificates (every file of the system's store), which is most of a cold start's CPU, and
    /// a request that needs no store (a token refused on its signature) then never pays it.
    pub fn lazy(
        make: fn() -> Client,
        users_table: impl Into<String>,
        sessions_table: impl Into<String>,
    ) -> Self {
        Self {
            client: LazyClient {
                client: std::sync::OnceLock::new(),
                make,
            },
            users_table: users_table.into(),
            sessions_table: sessions_table.into(),
        }
    }

    /// The SDK settings every client shares: timeouts and retries that keep a failing call,
    /// retries included, well inside a Lambda's time limit, so the caller can still answer
    /// `503` instead of timing out.
    pub fn sdk_loader() -> aws_config::ConfigLoader {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(Self::timeouts())
            .retry_config(Self::retries())
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
            .timeout_config(Self::timeouts())
            .retry_config(Self::retries());
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

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates both tables if they do not exist, in the shape of [`schema`] (which a test holds
    /// `template.yaml` to), for local use and tests.
    pub async fn create_tables(&self) -> Result<(), StoreError> {
        for (table, schema) in [
            (&self.users_table, &schema::USERS),
            (&self.sessions_table, &schema::SESSIONS),
        ] {
            self.create_table(table, schema).await?;
        }
        Ok(())
    }

    async fn create_table(&self, table: &str, schema: &TableSchema) -> Result<(), StoreError> {
        let key_element = |key: &schema::Key, kind: KeyType| {
            build(
                KeySchemaElement::builder()
                    .attribute_name(key.name)
                    .key_type(kind)
                    .build(),
            )
        };
        let key_schema = |partition: &schema::Key, sort: Option<&schema::Key>| {
            let mut elements = vec![key_element(partition, KeyType::Hash)?];
            if let Some(sort) = sort {
                elements.push(key_element(sort, KeyType::Range)?);
            }
            Ok::<_, StoreError>(elements)
        };
        let mut request = self
            .client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(
                &schema.partition_key,
                schema.sort_key.as_ref(),
            )?));
        for key in schema.key_attributes() {
            let kind = match key.kind {
                schema::KeyType::String => ScalarAttributeType::S,
                schema::KeyType::Number => ScalarAttributeType::N,
            };
            request = request.attribute_definitions(build(
                AttributeDefinition::builder()
                    .attribute_name(key.name)
                    .attribute_type(kind)
                    .build(),
            )?);
        }
        for index in schema.indexes {
            request = request.global_secondary_indexes(build(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .set_key_schema(Some(key_schema(
                        &index.partition_key,
                        index.sort_key.as_ref(),
                    )?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build(),
            )?);
        }
        let created = ignore_existing(request.send().await)?;
        self.wait_until_active(table).await?;
        if let (true, Some(attribute)) = (created, schema.ttl_attribute) {
            self.client
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(build(
                    TimeToLiveSpecification::builder()
                        .attribute_name(attribute)
                        .enabled(true)
                        .build(),
                )?)
                .send()
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn wait_until_active(&self, table: &str) -> Result<(), StoreError> {
        for _ in 0..120 {
            let described = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(classify)?;
            let status = described.table().and_then(|t| t.table_status()).cloned();
            if status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(StoreError::Unavailable(format!(
            "table {table} did not become active"
        )))
    }

    async fn get_item<T: DeserializeOwned>(
        &self,
        table: &str,
        key_value: AttributeValue,
    ) -> Result<Option<T>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key(key_value)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        output.item.map(from_item).transpose()
    }

    /// Puts an item into the sessions table that must not exist yet (its key is the hash of a
    /// fresh random token, so a clash would be a bug, never a retry).
    async fn put_new_session_item(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.sessions_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    /// An update with a condition; `false` when the condition fails.
    async fn conditional_update(
        &self,
        table: &str,
        key_value: AttributeValue,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(key(key_value)))
            .update_expression(update)
            .condition_expression(condition);
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(classify(e)),
        }
    }

    /// Sends a transaction, retrying while DynamoDB cancels it only for conflicts with other
    /// transactions. Returns the cancellation when a condition failed.
    async fn transact<Part: Copy + PartialEq>(
        &self,
        transaction: Transaction<Part>,
        token: Uuid,
    ) -> Result<Result<(), Cancelled<Part>>, StoreError> {
        for attempt in 0..CONFLICT_ATTEMPTS {
            // The idempotency token makes the SDK's own retries of one attempt safe; each attempt
            // after a cancellation is a new request and gets its own.
            let request_token = format!("{}{attempt}", token.simple());
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(transaction.items.clone()))
                .client_request_token(request_token)
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Ok(())),
                Err(err) => match transaction.cancellation(&err) {
                    Some(cancelled) if cancelled.any_failed() => return Ok(Err(cancelled)),
                    Some(cancelled) if cancelled.conflicted() => {
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    _ => return Err(classify(err)),
                },
            }
        }
        Err(StoreError::Unavailable(
            "transaction kept conflicting".into(),
        ))
    }
}

/// Jittered exponential backoff: 10 ms, 20 ms, 40 ms ... with up to 100% jitter.
fn backoff(attempt: u32) -> Duration {
    let base = 10u64 << attempt.min(6);
    let jitter = u64::from(Uuid::new_v4().as_u128() as u16) % base.max(1);
    Duration::from_millis(base + jitter)
}

/// `Ok(true)` if the table was created, `Ok(false)` if it already existed.
fn ignore_existing<T, E>(result: Result<T, SdkError<E>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("ResourceInUseException") => Ok(false),
        Err(e) => Err(classify(e)),
    }
}

fn put(table: &str, item: Item, condition: Option<&str>) -> Result<TransactWriteItem, StoreError> {
    let put = build(
        Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .build(),
    )?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn update(
    table: &str,
    key_value: AttributeValue,
    expression: &str,
    condition: &str,
    values: Vec<(&str, AttributeValue)>,
) -> Result<TransactWriteItem, StoreError> {
    let mut builder = Update::builder()
        .table_name(table)
        .set_key(Some(key(key_value)))
        .update_expression(expression)
        .condition_expression(condition);
    for (name, value) in values {
        builder = builder.expression_attribute_values(name, value);
    }
    Ok(TransactWriteItem::builder()
        .update(build(builder.build())?)
        .build())
}

fn condition_check(
    table: &str,
    key_value: AttributeValue,
    condition: &str,
    values: Vec<(&str, AttributeValue)>,
) -> Result<TransactWriteItem, StoreError> {
    let mut builder = ConditionCheck::builder()
        .table_name(table)
        .set_key(Some(key(key_value)))
        .condition_expression(condition);
    for (name, value) in values {
        builder = builder.expression_attribute_values(name, value);
    }
    Ok(TransactWriteItem::builder()
        .condition_check(build(builder.build())?)
        .build())
}

fn delete(
    table: &str,
    key_value: AttributeValue,
    condition: &str,
    values: Vec<(&str, AttributeValue)>,
) -> Result<TransactWriteItem, StoreError> {
    let mut builder = Delete::builder()
        .table_name(table)
        .set_key(Some(key(key_value)))
        .condition_expression(condition);
    for (name, value) in values {
        builder = builder.expression_attribute_values(name, value);
    }
    Ok(TransactWriteItem::builder()
        .delete(build(builder.build())?)
        .build())
}

fn chain_item(chain: &SessionChain) -> Result<Item, StoreError> {
    let mut item = to_item(chain, chain_key(chain.sid))?;
    item.insert(USER_INDEX_KEY.into(), s(chain.user_id));
    Ok(item)
}

/// Every link pointer on the user's item: a change that moves the epoch drops them all.
const ALL_LINKS: &str = "link_verify_email, link_reset_password, link_change_email";

impl DynamoStore {
    /// Moves a live chain of `user` from `epoch` to the next, with the user: the session that
    /// made a change which moves the epoch stays signed in.
    fn keep_chain_item(
        &self,
        keep: Uuid,
        user: Uuid,
        epoch: u64,
        now: UnixTime,
    ) -> Result<TransactWriteItem, StoreError> {
        update(
            &self.sessions_table,
            chain_key(keep),
            "SET epoch = :next",
            "attribute_exists(pk) AND user_id = :user AND epoch = :epoch \
             AND attribute_not_exists(revoked_at) AND expires_at > :now",
            vec![
                (":next", n(epoch + 1)),
                (":user", s(user)),
                (":epoch", n(epoch)),
                (":now", n(now)),
            ],
        )
    }
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let guard = HashMap::from([
            (PARTITION_KEY.to_owned(), email_key(&user.email)),
            ("user_id".to_owned(), s(user.id)),
        ]);
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Part {
            EmailGuard,
            User,
        }
        let not_exists = Some("attribute_not_exists(pk)");
        let transaction = Transaction::new()
            .with(Part::EmailGuard, put(&self.users_table, guard, not_exists)?)
            .with(
                Part::User,
                put(
                    &self.users_table,
                    to_item(user, user_key(user.id))?,
                    not_exists,
                )?,
            );
        match self.transact(transaction, user.id).await? {
            Ok(()) => Ok(()),
            Err(cancelled) if cancelled.failed(Part::EmailGuard) => Err(StoreError::EmailTaken),
            Err(cancelled) => Err(StoreError::Internal(format!(
                "create_user cancelled: {cancelled:?}"
            ))),
        }
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Guard {
            user_id: Uuid,
        }
        let Some(guard) = self
            .get_item::<Guard>(&self.users_table, email_key(email))
            .await?
        else {
            // An unknown address makes the second round trip too, for a user no guard points
            // to (user ids are random v4), so a known one does not answer a round trip later.
            self.user_by_id(Uuid::nil()).await?;
            return Ok(None);
        };
        self.user_by_id(guard.user_id).await
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.get_item(&self.users_table, user_key(id)).await
    }

    async fn set_password_hash(
        &self,
        id: Uuid,
        password_hash: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.conditional_update(
            &self.users_table,
            user_key(id),
            "SET password_hash = :hash, updated_at = :now",
            "attribute_exists(pk)",
            vec![(":hash", s(password_hash)), (":now", n(now))],
        )
        .await
    }

    async fn set_active(&self, id: Uuid, active: bool, now: UnixTime) -> Result<bool, StoreError> {
        // Deactivation moves to a new session epoch, which ends every session in the same write.
        let expression = if active {
            "SET is_active = :active, updated_at = :now"
        } else {
            "SET is_active = :active, updated_at = :now, session_epoch = if_not_exists(session_epoch, :zero) + :one"
        };
        let mut values = vec![(":active", AttributeValue::Bool(active)), (":now", n(now))];
        if !active {
            values.extend([(":zero", n(0)), (":one", n(1))]);
        }
        self.conditional_update(
            &self.users_table,
            user_key(id),
            expression,
            "attribute_exists(pk)",
            values,
        )
        .await
    }

    async fn revoke_all_sessions(&self, id: Uuid) -> Result<bool, StoreError> {
        self.conditional_update(
            &self.users_table,
            user_key(id),
            "SET session_epoch = if_not_exists(session_epoch, :zero) + :one",
            "attribute_exists(pk)",
            vec![(":zero", n(0)), (":one", n(1))],
        )
        .await
    }

    async fn change_password(
        &self,
        id: Uuid,
        password_hash: &str,
        epoch: u64,
        keep: Uuid,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let next = epoch + 1;
        let transaction = Transaction::new()
            .with(
                "user",
                update(
                    &self.users_table,
                    user_key(id),
                    &format!(
                        "SET password_hash = :hash, updated_at = :now, session_epoch = :next \
                         REMOVE {ALL_LINKS}"
                    ),
                    "attribute_exists(pk) AND session_epoch = :epoch",
                    vec![
                        (":hash", s(password_hash)),
                        (":now", n(now)),
                        (":next", n(next)),
                        (":epoch", n(epoch)),
                    ],
                )?,
            )
            .with("kept chain", self.keep_chain_item(keep, id, epoch, now)?);
        // A fresh idempotency token: the same session may change its password again soon.
        match self.transact(transaction, Uuid::new_v4()).await? {
            Ok(()) => Ok(true),
            Err(_) => Ok(false),
        }
    }
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn start_chain(
        &self,
        chain: &SessionChain,
        access: &Session,
        refresh: &Session,
    ) -> Result<(), StoreError> {
        let not_exists = Some("attribute_not_exists(pk)");
        let transaction = Transaction::new()
            .with(
                "chain",
                put(&self.sessions_table, chain_item(chain)?, not_exists)?,
            )
            .with(
                "access token",
                put(
                    &self.sessions_table,
                    to_item(access, token_key(access.session_id))?,
                    not_exists,
                )?,
            )
            .with(
                "refresh token",
                put(
                    &self.sessions_table,
                    to_item(refresh, token_key(refresh.session_id))?,
                    not_exists,
                )?,
            );
        match self.transact(transaction, chain.sid).await? {
            Ok(()) => Ok(()),
            Err(cancelled) => Err(StoreError::Internal(format!(
                "start_chain cancelled: {cancelled:?}"
            ))),
        }
    }

    async fn snapshot(
        &self,
        user_id: Uuid,
        sid: Uuid,
        session_id: Uuid,
        now: UnixTime,
    ) -> Result<SessionSnapshot, StoreError> {
        let mut request: HashMap<String, KeysAndAttributes> = HashMap::from([
            (
                self.users_table.clone(),
                build(
                    KeysAndAttributes::builder()
                        .keys(key(user_key(user_id)))
                        .consistent_read(true)
                        .build(),
                )?,
            ),
            (
                self.sessions_table.clone(),
                build(
                    KeysAndAttributes::builder()
                        .keys(key(chain_key(sid)))
                        .keys(key(token_key(session_id)))
                        .consistent_read(true)
                        .build(),
                )?,
            ),
        ]);
        let mut items: Vec<Item> = Vec::with_capacity(3);
        for attempt in 0..CONFLICT_ATTEMPTS {
            let output = self
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(classify)?;
            for (_, table_items) in output.responses.unwrap_or_default() {
                items.extend(table_items);
            }
            match output.unprocessed_keys.filter(|keys| !keys.is_empty()) {
                None => break,
                Some(unprocessed) if attempt + 1 < CONFLICT_ATTEMPTS => {
                    request = unprocessed;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Some(_) => {
                    return Err(StoreError::Unavailable(
                        "batch read kept being throttled".into(),
                    ));
                }
            }
        }

        let mut snapshot = SessionSnapshot::default();
        for item in items {
            let Some(AttributeValue::S(pk)) = item.get(PARTITION_KEY).cloned() else {
                continue;
            };
            if pk.starts_with("USER#") {
                snapshot.user = Some(from_item(item)?);
            } else if pk.starts_with("CHAIN#") {
                snapshot.chain =
                    Some(from_item::<SessionChain>(item)?).filter(|c| c.expires_at > now);
            } else if pk.starts_with("TOKEN#") {
                snapshot.token = Some(from_item::<Session>(item)?).filter(|t| t.expires_at > now);
            }
        }
        Ok(snapshot)
    }

    async fn rotate(&self, request: RotationRequest<'_>) -> Result<RotateOutcome, StoreError> {
        let rotation: AttributeValue =
            serde_dynamo::to_attribute_value(request.rotation).map_err(internal)?;
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Part {
            SpentToken,
            AccessToken,
            RefreshToken,
            User,
            Chain,
        }
        let now = request.now;
        let transaction = Transaction::new()
            .with(
                Part::SpentToken,
                update(
                    &self.sessions_table,
                    token_key(request.spent.session_id),
                    "SET rotation = :rotation, last_used_at = :now",
                    "attribute_exists(pk) AND attribute_not_exists(rotation) AND token_hash = :hash AND expires_at > :now",
                    vec![
                        (":rotation", rotation),
                        (":now", n(now)),
                        (":hash", s(&request.spent.token_hash)),
                    ],
                )?,
            )
            .with(
                Part::AccessToken,
                put(
                    &self.sessions_table,
                    to_item(request.access, token_key(request.access.session_id))?,
                    Some("attribute_not_exists(pk)"),
                )?,
            )
            .with(
                Part::RefreshToken,
                put(
                    &self.sessions_table,
                    to_item(request.refresh, token_key(request.refresh.session_id))?,
                    Some("attribute_not_exists(pk)"),
                )?,
            )
            .with(
                Part::User,
                condition_check(
                    &self.users_table,
                    user_key(request.spent.user_id),
                    "session_epoch = :epoch AND is_active = :true",
                    vec![
                        (":epoch", n(request.epoch)),
                        (":true", AttributeValue::Bool(true)),
                    ],
                )?,
            )
            .with(
                Part::Chain,
                update(
                    &self.sessions_table,
                    chain_key(request.spent.sid),
                    "SET expires_at = :expires, last_used_at = :now",
                    "attribute_exists(pk) AND attribute_not_exists(revoked_at) AND expires_at > :now",
                    vec![
                        (":expires", n(request.refresh.expires_at)),
                        (":now", n(now)),
                    ],
                )?,
            );
        // One attempt only: on a conflict the caller re-reads, because the winner may have
        // spent the token in the meantime.
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(transaction.items.clone()))
            .client_request_token(request.refresh.session_id.simple().to_string())
            .send()
            .await;
        match result {
            Ok(_) => Ok(RotateOutcome::Rotated),
            Err(err) => match transaction.cancellation(&err) {
                Some(cancelled) if cancelled.failed(Part::SpentToken) => {
                    Ok(RotateOutcome::AlreadyRotated)
                }
                Some(cancelled)
                    if cancelled.failed(Part::Chain) || cancelled.failed(Part::User) =>
                {
                    Ok(RotateOutcome::ChainGone)
                }
                Some(cancelled) if cancelled.conflicted() => Ok(RotateOutcome::Contended),
                Some(cancelled) => Err(StoreError::Internal(format!(
                    "rotate cancelled: {cancelled:?}"
                ))),
                None => Err(classify(err)),
            },
        }
    }

    async fn revoke_chain(
        &self,
        user_id: Uuid,
        sid: Uuid,
        epoch: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.conditional_update(
            &self.sessions_table,
            chain_key(sid),
            "SET revoked_at = :now",
            "attribute_exists(pk) AND user_id = :user AND epoch = :epoch AND attribute_not_exists(revoked_at) AND expires_at > :now",
            vec![(":now", n(now)), (":user", s(user_id)), (":epoch", n(epoch))],
        )
        .await
    }

    async fn chains_of(
        &self,
        user_id: Uuid,
        now: UnixTime,
    ) -> Result<Vec<SessionChain>, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.sessions_table)
            .index_name(USER_INDEX)
            .key_condition_expression("chain_user_id = :user")
            .expression_attribute_values(":user", s(user_id))
            .into_paginator()
            .items()
            .send();
        let mut chains = Vec::new();
        while let Some(item) = pages.next().await {
            let chain: SessionChain = from_item(item.map_err(classify)?)?;
            if chain.revoked_at.is_none() && chain.expires_at > now {
                chains.push(chain);
            }
        }
        Ok(chains)
    }

    async fn touch_chain(
        &self,
        sid: Uuid,
        now: UnixTime,
        min_interval: i64,
    ) -> Result<(), StoreError> {
        // The condition makes concurrent authorizers write at most once per interval.
        self.conditional_update(
            &self.sessions_table,
            chain_key(sid),
            "SET last_used_at = :now",
            "attribute_exists(pk) AND last_used_at <= :threshold",
            vec![(":now", n(now)), (":threshold", n(now - min_interval))],
        )
        .await
        .map(|_| ())
    }
}

/// An update expression built from its clauses, with the attribute names and values they use.
#[derive(Default)]
struct Expression {
    set: Vec<String>,
    remove: Vec<String>,
    conditions: Vec<String>,
    names: Vec<(String, String)>,
    values: Vec<(String, AttributeValue)>,
}

impl Expression {
    fn set(mut self, clause: impl Into<String>) -> Self {
        self.set.push(clause.into());
        self
    }
    fn remove(mut self, path: impl Into<String>) -> Self {
        self.remove.push(path.into());
        self
    }
    fn when(mut self, condition: impl Into<String>) -> Self {
        self.conditions.push(condition.into());
        self
    }
    fn name(mut self, placeholder: &str, name: &str) -> Self {
        self.names.push((placeholder.into(), name.into()));
        self
    }
    fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.push((placeholder.into(), value));
        self
    }

    fn update_expression(&self) -> String {
        let mut expression = String::new();
        if !self.set.is_empty() {
            expression.push_str(&format!("SET {}", self.set.join(", ")));
        }
        if !self.remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", self.remove.join(", ")));
        }
        expression.trim().to_owned()
    }

    fn condition_expression(&self) -> String {
        self.conditions
            .iter()
            .map(|c| format!("({c})"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    fn into_transact_item(
        self,
        table: &str,
        key_value: AttributeValue,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut builder = Update::builder()
            .table_name(table)
            .set_key(Some(key(key_value)))
            .update_expression(self.update_expression())
            .condition_expression(self.condition_expression());
        for (placeholder, name) in self.names {
            builder = builder.expression_attribute_names(placeholder, name);
        }
        for (placeholder, value) in self.values {
            builder = builder.expression_attribute_values(placeholder, value);
        }
        Ok(TransactWriteItem::builder()
            .update(build(builder.build())?)
            .build())
    }
}

/// The clauses that spend a one-time code on the user's item: a TOTP step only if it is later
/// than every step accepted before, a recovery code only if it is still in the set (and it
/// goes, unless `whole_set_changes`: an update that replaces or removes the whole set must not
/// name one of its entries too).
fn spend_code_expression(code: &SpentCode, whole_set_changes: bool) -> Expression {
    let expression = Expression::default()
        .when("mfa_enabled = :true")
        .value(":true", AttributeValue::Bool(true));
    match code {
        SpentCode::Totp { step } => expression
            .set("totp_last_step = :step")
            .when("attribute_not_exists(totp_last_step) OR totp_last_step < :step")
            .value(":step", n(step)),
        SpentCode::Recovery { hash } => {
            let expression = expression
                .when("attribute_exists(recovery_codes.#code)")
                .name("#code", hash);
            if whole_set_changes {
                expression
            } else {
                expression.remove("recovery_codes.#code")
            }
        }
    }
}

fn recovery_map(hashes: &[String]) -> AttributeValue {
    AttributeValue::M(
        hashes
            .iter()
            .map(|h| (h.clone(), AttributeValue::Bool(true)))
            .collect(),
    )
}

fn device_key(token_hash: &str) -> AttributeValue {
    AttributeValue::S(format!("DEVICE#{token_hash}"))
}

fn mfa_key(token_hash: &str) -> AttributeValue {
    AttributeValue::S(format!("MFA#{token_hash}"))
}

/// The parts of a transaction that spends a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpendPart {
    Link,
    User,
    OldGuard,
    NewGuard,
    /// The chain that stays signed in through an address change.
    KeptChain,
}

impl DynamoStore {
    /// Deletes the live link item: the step that makes a link work once.
    fn spend_link_item(
        &self,
        link: &EmailLink,
        now: UnixTime,
    ) -> Result<TransactWriteItem, StoreError> {
        delete(
            &self.sessions_table,
            link_key(&link.token_hash),
            "attribute_exists(pk) AND expires_at > :now",
            vec![(":now", n(now))],
        )
    }

    /// Spends a link together with `user_update` (conditioned on the link still being the
    /// user's current one); `false` when any condition failed.
    async fn spend(
        &self,
        link: &EmailLink,
        now: UnixTime,
        user_update: TransactWriteItem,
    ) -> Result<bool, StoreError> {
        let transaction = Transaction::new()
            .with(SpendPart::Link, self.spend_link_item(link, now)?)
            .with(SpendPart::User, user_update);
        Ok(self.transact(transaction, Uuid::new_v4()).await?.is_ok())
    }
}

#[async_trait]
impl LinkStore for DynamoStore {
    async fn issue_link(&self, link: &EmailLink) -> Result<bool, StoreError> {
        let transaction = Transaction::new()
            .with(
                SpendPart::Link,
                put(
                    &self.sessions_table,
                    to_item(link, link_key(&link.token_hash))?,
                    Some("attribute_not_exists(pk)"),
                )?,
            )
            .with(
                SpendPart::User,
                update(
                    &self.users_table,
                    user_key(link.user_id),
                    &format!("SET {} = :hash", link.kind.attribute()),
                    "attribute_exists(pk) AND session_epoch = :epoch",
                    vec![(":hash", s(&link.token_hash)), (":epoch", n(link.epoch))],
                )?,
            );
        match self.transact(transaction, Uuid::new_v4()).await? {
            Ok(()) => Ok(true),
            Err(cancelled) if cancelled.failed(SpendPart::User) => Ok(false),
            Err(cancelled) => Err(StoreError::Internal(format!(
                "issue_link cancelled: {cancelled:?}"
            ))),
        }
    }

    async fn link(&self, token_hash: &str, now: UnixTime) -> Result<Option<EmailLink>, StoreError> {
        let link: Option<EmailLink> = self
            .get_item(&self.sessions_table, link_key(token_hash))
            .await?;
        Ok(link.filter(|l| l.expires_at > now))
    }

    async fn spend_verification(
        &self,
        link: &EmailLink,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let attribute = LinkKind::VerifyEmail.attribute();
        let user_update = update(
            &self.users_table,
            user_key(link.user_id),
            &format!("SET email_verified = :true, updated_at = :now REMOVE {attribute}"),
            &format!("{attribute} = :hash AND email = :email AND session_epoch = :epoch"),
            vec![
                (":true", AttributeValue::Bool(true)),
                (":now", n(now)),
                (":hash", s(&link.token_hash)),
                (":email", s(&link.email)),
                (":epoch", n(link.epoch)),
            ],
        )?;
        self.spend(link, now, user_update).await
    }

    async fn spend_reset(
        &self,
        link: &EmailLink,
        password_hash: &str,
        wipe_unproven: bool,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let attribute = LinkKind::ResetPassword.attribute();
        // A new session epoch ends every session in the same write. On an address that was
        // unverified until now, whatever was set before the mailbox was proven goes too.
        let (set_mfa, remove_mfa) = if wipe_unproven {
            (
                ", mfa_enabled = :false",
                ", totp, totp_pending, recovery_codes",
            )
        } else {
            ("", "")
        };
        let mut values = vec![
            (":password", s(password_hash)),
            (":true", AttributeValue::Bool(true)),
            (":now", n(now)),
            (":next", n(link.epoch + 1)),
            (":epoch", n(link.epoch)),
            (":hash", s(&link.token_hash)),
            (":email", s(&link.email)),
        ];
        if wipe_unproven {
            values.push((":false", AttributeValue::Bool(false)));
        }
        let user_update = update(
            &self.users_table,
            user_key(link.user_id),
            &format!(
                "SET password_hash = :password, email_verified = :true, updated_at = :now, \
                 session_epoch = :next{set_mfa} REMOVE {ALL_LINKS}{remove_mfa}"
            ),
            &format!("{attribute} = :hash AND email = :email AND session_epoch = :epoch"),
            values,
        )?;
        self.spend(link, now, user_update).await
    }

    async fn spend_email_change(
        &self,
        link: &EmailLink,
        old_email: &str,
        now: UnixTime,
    ) -> Result<EmailChange, StoreError> {
        // The session that asked stays signed in, if it still is; if only it failed its
        // condition, the change goes ahead without it.
        let first = self
            .try_email_change(link, old_email, link.keep_chain, now)
            .await?;
        match first {
            Err(cancelled)
                if cancelled.failed(SpendPart::KeptChain)
                    && !cancelled.failed_other_than(SpendPart::KeptChain) =>
            {
                self.try_email_change(link, old_email, None, now)
                    .await
                    .and_then(email_change_outcome)
            }
            other => email_change_outcome(other),
        }
    }
}

fn email_change_outcome(
    result: Result<(), Cancelled<SpendPart>>,
) -> Result<EmailChange, StoreError> {
    match result {
        Ok(()) => Ok(EmailChange::Changed),
        Err(cancelled)
            if cancelled.failed(SpendPart::Link)
                || cancelled.failed(SpendPart::User)
                || cancelled.failed(SpendPart::OldGuard)
                || cancelled.failed(SpendPart::KeptChain) =>
        {
            Ok(EmailChange::Stale)
        }
        Err(cancelled) if cancelled.failed(SpendPart::NewGuard) => Ok(EmailChange::Taken),
        Err(cancelled) => Err(StoreError::Internal(format!(
            "spend_email_change cancelled: {cancelled:?}"
        ))),
    }
}

impl DynamoStore {
    /// One attempt at an address change: the link spent, the user moved to the new address
    /// and the next epoch, the guards moved, and `keep` (if any) moved with the user.
    async fn try_email_change(
        &self,
        link: &EmailLink,
        old_email: &str,
        keep: Option<Uuid>,
        now: UnixTime,
    ) -> Result<Result<(), Cancelled<SpendPart>>, StoreError> {
        let attribute = LinkKind::ChangeEmail.attribute();
        let new_guard = HashMap::from([
            (PARTITION_KEY.to_owned(), email_key(&link.email)),
            ("user_id".to_owned(), s(link.user_id)),
        ]);
        let mut transaction = Transaction::new()
            .with(SpendPart::Link, self.spend_link_item(link, now)?)
            .with(
                SpendPart::User,
                update(
                    &self.users_table,
                    user_key(link.user_id),
                    &format!(
                        "SET email = :new, email_verified = :true, updated_at = :now, \
                         session_epoch = :next REMOVE {ALL_LINKS}"
                    ),
                    &format!("{attribute} = :hash AND email = :old AND session_epoch = :epoch"),
                    vec![
                        (":new", s(&link.email)),
                        (":true", AttributeValue::Bool(true)),
                        (":now", n(now)),
                        (":next", n(link.epoch + 1)),
                        (":epoch", n(link.epoch)),
                        (":hash", s(&link.token_hash)),
                        (":old", s(old_email)),
                    ],
                )?,
            )
            .with(
                SpendPart::OldGuard,
                delete(
                    &self.users_table,
                    email_key(old_email),
                    "user_id = :id",
                    vec![(":id", s(link.user_id))],
                )?,
            )
            .with(
                SpendPart::NewGuard,
                put(
                    &self.users_table,
                    new_guard,
                    Some("attribute_not_exists(pk)"),
                )?,
            );
        if let Some(keep) = keep {
            transaction = transaction.with(
                SpendPart::KeptChain,
                self.keep_chain_item(keep, link.user_id, link.epoch, now)?,
            );
        }
        self.transact(transaction, Uuid::new_v4()).await
    }
}

impl DynamoStore {
    /// Sends one conditional update of the user; `false` when a condition failed.
    async fn update_user_if(
        &self,
        user_id: Uuid,
        expression: Expression,
    ) -> Result<bool, StoreError> {
        let item = expression.into_transact_item(&self.users_table, user_key(user_id))?;
        let update = item.update.ok_or_else(|| internal("not an update"))?;
        let result = self
            .client
            .update_item()
            .table_name(update.table_name)
            .set_key(Some(update.key))
            .update_expression(update.update_expression)
            .set_condition_expression(update.condition_expression)
            .set_expression_attribute_names(update.expression_attribute_names)
            .set_expression_attribute_values(update.expression_attribute_values)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(classify(e)),
        }
    }
}

#[async_trait]
impl MfaStore for DynamoStore {
    async fn set_pending_totp(
        &self,
        user_id: Uuid,
        pending: &SealedSecret,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let sealed = serde_dynamo::to_attribute_value(pending).map_err(internal)?;
        let expression = Expression::default()
            .set("totp_pending = :pending")
            .set("updated_at = :now")
            .when("attribute_exists(pk)")
            .when("attribute_not_exists(mfa_enabled) OR mfa_enabled = :false")
            .value(":pending", sealed)
            .value(":now", n(now))
            .value(":false", AttributeValue::Bool(false));
        self.update_user_if(user_id, expression).await
    }

    async fn enable_totp(
        &self,
        user_id: Uuid,
        pending: &SealedSecret,
        step: u64,
        recovery_hashes: &[String],
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let sealed = serde_dynamo::to_attribute_value(pending).map_err(internal)?;
        let expression = Expression::default()
            .set("mfa_enabled = :true")
            .set("totp = :secret")
            .set("totp_last_step = :step")
            .set("recovery_codes = :codes")
            .set("updated_at = :now")
            .remove("totp_pending")
            .when("totp_pending.ciphertext = :ciphertext")
            .when("attribute_not_exists(mfa_enabled) OR mfa_enabled = :false")
            .value(":true", AttributeValue::Bool(true))
            .value(":false", AttributeValue::Bool(false))
            .value(":secret", sealed)
            .value(":step", n(step))
            .value(":codes", recovery_map(recovery_hashes))
            .value(":now", n(now))
            .value(":ciphertext", s(&pending.ciphertext));
        self.update_user_if(user_id, expression).await
    }

    async fn spend_code(
        &self,
        user_id: Uuid,
        code: &SpentCode,
        along: AlongWithCode<'_>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let whole_set_changes = along != AlongWithCode::Nothing;
        let expression = spend_code_expression(code, whole_set_changes)
            .set("updated_at = :now")
            .value(":now", n(now));
        let expression = match along {
            AlongWithCode::Nothing => expression,
            // Turning TOTP off: the secret and every code go.
            AlongWithCode::TotpOff => expression
                .set("mfa_enabled = :false")
                .value(":false", AttributeValue::Bool(false))
                .remove("totp")
                .remove("totp_pending")
                .remove("recovery_codes"),
            AlongWithCode::NewRecoveryCodes(hashes) => expression
                .set("recovery_codes = :codes")
                .value(":codes", recovery_map(hashes)),
        };
        self.update_user_if(user_id, expression).await
    }

    async fn create_challenge(&self, challenge: &MfaChallenge) -> Result<(), StoreError> {
        self.put_new_session_item(to_item(challenge, mfa_key(&challenge.token_hash))?)
            .await
    }

    async fn challenge(
        &self,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<Option<MfaChallenge>, StoreError> {
        let challenge: Option<MfaChallenge> = self
            .get_item(&self.sessions_table, mfa_key(token_hash))
            .await?;
        Ok(challenge.filter(|c| c.is_live(now)))
    }

    async fn charge_challenge(&self, token_hash: &str, now: UnixTime) -> Result<bool, StoreError> {
        self.conditional_update(
            &self.sessions_table,
            mfa_key(token_hash),
            "SET failures = failures + :one",
            "attribute_exists(pk) AND expires_at > :now AND failures < :max",
            vec![
                (":one", n(1)),
                (":now", n(now)),
                (":max", n(MfaChallenge::MAX_FAILURES)),
            ],
        )
        .await
    }

    async fn pass_challenge(
        &self,
        challenge: &MfaChallenge,
        code: &SpentCode,
        now: UnixTime,
    ) -> Result<ChallengePassed, StoreError> {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Part {
            Challenge,
            Code,
        }
        let transaction = Transaction::new()
            .with(
                Part::Challenge,
                // Its attempts are counted before the code is checked: this one is among them.
                delete(
                    &self.sessions_table,
                    mfa_key(&challenge.token_hash),
                    "attribute_exists(pk) AND expires_at > :now AND failures <= :max",
                    vec![(":now", n(now)), (":max", n(MfaChallenge::MAX_FAILURES))],
                )?,
            )
            .with(
                Part::Code,
                spend_code_expression(code, false)
                    .when("attribute_exists(pk)")
                    .when("session_epoch = :epoch")
                    .value(":epoch", n(challenge.epoch))
                    .into_transact_item(&self.users_table, user_key(challenge.user_id))?,
            );
        match self.transact(transaction, Uuid::new_v4()).await? {
            Ok(()) => Ok(ChallengePassed::Passed),
            Err(cancelled) if cancelled.failed(Part::Challenge) => {
                Ok(ChallengePassed::ChallengeGone)
            }
            Err(cancelled) if cancelled.failed(Part::Code) => Ok(ChallengePassed::CodeSpent),
            Err(cancelled) => Err(StoreError::Internal(format!(
                "pass_challenge cancelled: {cancelled:?}"
            ))),
        }
    }
}

#[async_trait]
impl DeviceStore for DynamoStore {
    async fn add_device(&self, device: &TrustedDevice) -> Result<(), StoreError> {
        self.put_new_session_item(to_item(device, device_key(&device.token_hash))?)
            .await
    }

    async fn device(
        &self,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<Option<TrustedDevice>, StoreError> {
        let device: Option<TrustedDevice> = self
            .get_item(&self.sessions_table, device_key(token_hash))
            .await?;
        Ok(device.filter(|d| d.expires_at > now))
    }
}

#[async_trait]
impl ThrottleStore for DynamoStore {
    async fn failure_counter(
        &self,
        key: &str,
        now: UnixTime,
    ) -> Result<FailureCounter, StoreError> {
        let stored = self
            .get_item(&self.sessions_table, throttle_key(key))
            .await?;
        Ok(StoredFailures::live(stored, now))
    }

    async fn replace_failure_counter(
        &self,
        key: &str,
        expected_version: u64,
        counter: &FailureCounter,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut item = to_item(counter, throttle_key(key))?;
        item.insert(TTL_ATTRIBUTE.into(), n(expires_at));
        // Versions start at 1, so an expected 0 only matches a missing or expired counter.
        let result = self
            .client
            .put_item()
            .table_name(&self.sessions_table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at <= :now OR version = :version",
            )
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":version", n(expected_version))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn clear_failure_counter(&self, throttle: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.sessions_table)
            .set_key(Some(key(throttle_key(throttle))))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn take_from_window(
        &self,
        key: &str,
        limit: u32,
        window_end: UnixTime,
    ) -> Result<bool, StoreError> {
        // One atomic conditional increment: concurrent attempts can never overspend the budget.
        self.conditional_update(
            &self.sessions_table,
            throttle_key(key),
            "ADD used :one SET expires_at = :end",
            "attribute_not_exists(used) OR used < :limit",
            vec![
                (":one", n(1)),
                (":end", n(window_end)),
                (":limit", n(limit)),
            ],
        )
        .await
    }

    async fn give_back_to_window(&self, key: &str) -> Result<(), StoreError> {
        self.conditional_update(
            &self.sessions_table,
            throttle_key(key),
            "ADD used :minus_one",
            "used > :zero",
            vec![(":minus_one", n(-1)), (":zero", n(0))],
        )
        .await
        .map(|_| ())
    }
}
