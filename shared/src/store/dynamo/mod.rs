//! The DynamoDB store.
//!
//! Two tables, each with a string partition key `pk`:
//! - users: `USER#<id>` holds the user (with its passkeys); `EMAIL#<email>` is the email guard
//!   holding the user id, and `PASSKEY#<credential id>` a passkey's guard. A user and its guard
//!   are written in one transaction conditioned on the guard not existing, so email and
//!   credential uniqueness hold under any concurrency.
//! - history: each user's security history, partition `pk` the user's id and sort key `id`
//!   a time-ordered entry id, with `expires_at` as the TTL attribute.
//! - sessions: `TOKEN#<token_id>` per issued token and `CHAIN#<chain_id>` per session (sign-in
//!   chain), `LINK#`, `MFA#`, `DEVICE#` and `CEREMONY#` per emailed link, second-factor
//!   challenge, trusted device and passkey ceremony (keyed by the hash of their secret), and
//!   `THROTTLE#<key>` per throttling counter, all with `expires_at` (epoch seconds) as the TTL attribute. Chains carry
//!   `chain_user_id`, the key of the sparse GSI `by_user` that lists a user's sessions; every item
//!   that names a user by `user_id` is in the keys-only GSI `by_owner`, which a deletion sweeps.
//!
//! Every read that decides security is strongly consistent; TTL deletes lazily, so reads also
//! compare `expires_at` with the clock. `docs/data-model.md` describes the items.
//!
//! One file per store trait; every conditional write is built with [`write::Expression`].

mod account;
mod client;
mod devices;
mod guarded;
mod identities;
mod items;
mod links;
mod mfa;
mod passkeys;
mod sessions;
mod tables;
mod throttle;
mod users;
mod write;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use self::client::LazyClient;
use self::items::{Item, classify, condition_failed, from_item, key};
use self::write::{Cancelled, Expression, Transaction, backoff};
use super::StoreError;

/// Attempts for transactions that DynamoDB cancels because another one held an item.
const CONFLICT_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: LazyClient,
    users_table: String,
    sessions_table: String,
    history_table: String,
}

impl DynamoStore {
    pub fn new(
        client: Client,
        users_table: impl Into<String>,
        sessions_table: impl Into<String>,
        history_table: impl Into<String>,
    ) -> Self {
        Self {
            client: LazyClient::ready(client),
            users_table: users_table.into(),
            sessions_table: sessions_table.into(),
            history_table: history_table.into(),
        }
    }

    /// A store whose client is built on its first call: building it loads the TLS root
    /// certificates (every file of the system's store), which is most of a cold start's CPU, and
    /// a request that needs no store (a token refused on its signature) then never pays it.
    pub fn lazy(
        make: fn() -> Client,
        users_table: impl Into<String>,
        sessions_table: impl Into<String>,
        history_table: impl Into<String>,
    ) -> Self {
        Self {
            client: LazyClient::on_first_use(make),
            users_table: users_table.into(),
            sessions_table: sessions_table.into(),
            history_table: history_table.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
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

    /// One `UpdateItem`; `false` when a condition failed.
    async fn update_if(
        &self,
        table: &str,
        key_value: AttributeValue,
        expression: Expression,
    ) -> Result<bool, StoreError> {
        let update_expression = expression.update_expression();
        let condition = expression.condition_expression();
        let (names, values) = expression.into_names_and_values();
        let result = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(key(key_value)))
            .update_expression(update_expression)
            .set_condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
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
