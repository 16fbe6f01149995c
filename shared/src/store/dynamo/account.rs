//! The account as a whole: its history in the history table, and its deletion.
//!
//! A deletion is one transaction in the users table (the user, its email guard, its passkey
//! and identity guards) with a `DELETION#<user id>` tombstone in the sessions table, written
//! while the user still has exactly the ways in it was read with: a transaction holds at most
//! 100 items, and 1 + 1 + [`MAX_PASSKEYS`] + [`MAX_IDENTITIES`] + 1 is well inside it. The
//! tombstone sits in the `by_owner` index under [`PENDING_DELETIONS`], so a sweep finds every
//! deletion that a crash left unfinished; the user's own items are in the same index under its
//! id.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::DynamoStore;
use super::items::{
    Item, build, classify, email_key, from_item, identity_key, internal, key, n, passkey_key, s,
    throttle_key, to_item, user_key,
};
use super::write::{Expression, Transaction, backoff, put_new};
use crate::clock::UnixTime;
use crate::model::{MAX_IDENTITIES, MAX_PASSKEYS, SecurityEvent, User};
use crate::store::schema::{HISTORY_SORT_KEY, OWNER_INDEX, OWNER_INDEX_KEY, PARTITION_KEY};
use crate::store::{AccountStore, HistoryPage, StoreError};

/// The `by_owner` partition of the tombstones of unfinished deletions.
const PENDING_DELETIONS: &str = "pending-deletion";
/// A tombstone outlives every item it could leave behind, should no sweep ever run.
const TOMBSTONE_TTL_SECS: i64 = 400 * 86_400;
/// BatchWriteItem takes at most 25 requests.
const BATCH: usize = 25;
/// Deletions one sweep finishes at most, so that it stays inside a function's time limit.
const SWEEP_DELETIONS: i32 = 20;

fn tombstone_key(user_id: Uuid) -> AttributeValue {
    s(format!("DELETION#{user_id}"))
}

/// What a deletion left for the sweep.
#[derive(Serialize, Deserialize)]
struct Tombstone {
    deleted_user_id: Uuid,
    /// The throttle counters of the account (its address's, its sessions'), by their keys.
    #[serde(default)]
    throttle_keys: Vec<String>,
    deleted_at: UnixTime,
    expires_at: UnixTime,
}

/// The conditions that `map` on the user's item holds exactly `ids`.
fn exactly<'a>(
    expression: Expression,
    map: &str,
    placeholder: &str,
    ids: impl ExactSizeIterator<Item = &'a String>,
) -> Expression {
    if ids.len() == 0 {
        return expression
            .when(format!(
                "attribute_not_exists({map}) OR size({map}) = :zero"
            ))
            .value(":zero", n(0));
    }
    let count = format!(":{placeholder}_count");
    let expression = expression
        .when(format!("size({map}) = {count}"))
        .value(&count, n(ids.len()));
    ids.enumerate().fold(expression, |expression, (i, id)| {
        let name = format!("#{placeholder}{i}");
        expression
            .when(format!("attribute_exists({map}.{name})"))
            .name(&name, id)
    })
}

impl DynamoStore {
    /// Deletes `keys` from `table`, 25 at a time, resending what DynamoDB leaves unprocessed.
    async fn delete_keys(&self, table: &str, keys: Vec<Item>) -> Result<(), StoreError> {
        for chunk in keys.chunks(BATCH) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|key| {
                    build(DeleteRequest::builder().set_key(Some(key.clone())).build())
                        .map(|delete| WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<Result<_, _>>()?;
            let mut attempt = 0;
            while !requests.is_empty() {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(table, requests)
                    .send()
                    .await
                    .map_err(classify)?;
                requests = output
                    .unprocessed_items
                    .and_then(|mut unprocessed| unprocessed.remove(table))
                    .unwrap_or_default();
                if !requests.is_empty() {
                    attempt += 1;
                    if attempt > 8 {
                        return Err(StoreError::Unavailable(
                            "batch deletes kept coming back unprocessed".into(),
                        ));
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
        Ok(())
    }

    /// The keys of every item in the sessions table's `by_owner` partition `owner`.
    async fn owned_keys(&self, owner: &str) -> Result<Vec<Item>, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.sessions_table)
            .index_name(OWNER_INDEX)
            .key_condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", OWNER_INDEX_KEY)
            .expression_attribute_values(":owner", s(owner))
            .into_paginator()
            .items()
            .send();
        let mut keys = Vec::new();
        while let Some(item) = pages.next().await {
            let mut item = item.map_err(classify)?;
            let pk = item
                .remove(PARTITION_KEY)
                .ok_or_else(|| internal("an index item without its key"))?;
            keys.push(key(pk));
        }
        Ok(keys)
    }

    /// Removes what the deletion of `tombstone` left, and then the tombstone.
    async fn finish_deletion(&self, tombstone: &Tombstone) -> Result<(), StoreError> {
        let user_id = tombstone.deleted_user_id;
        let owned = self.owned_keys(&user_id.to_string()).await?;
        self.delete_keys(&self.sessions_table, owned).await?;
        let counters = tombstone
            .throttle_keys
            .iter()
            .map(|k| key(throttle_key(k)))
            .collect();
        self.delete_keys(&self.sessions_table, counters).await?;
        let mut pages = self
            .client
            .query()
            .table_name(&self.history_table)
            .key_condition_expression("pk = :user")
            .expression_attribute_values(":user", s(user_id))
            .projection_expression("pk, #id")
            .expression_attribute_names("#id", HISTORY_SORT_KEY)
            .into_paginator()
            .items()
            .send();
        let mut history = Vec::new();
        while let Some(item) = pages.next().await {
            history.push(item.map_err(classify)?);
        }
        self.delete_keys(&self.history_table, history).await?;
        self.delete_keys(&self.sessions_table, vec![key(tombstone_key(user_id))])
            .await
    }
}

#[async_trait]
impl AccountStore for DynamoStore {
    async fn record_event(&self, event: &SecurityEvent) -> Result<(), StoreError> {
        let mut item: Item = serde_dynamo::to_item(event).map_err(internal)?;
        item.insert(PARTITION_KEY.to_owned(), s(event.user_id));
        item.insert(HISTORY_SORT_KEY.to_owned(), s(event.id));
        self.client
            .put_item()
            .table_name(&self.history_table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn history(
        &self,
        user_id: Uuid,
        cursor: Option<&str>,
        limit: usize,
        now: UnixTime,
    ) -> Result<HistoryPage, StoreError> {
        // The cursor is the id of the page's last entry.
        let start = cursor
            .map(|cursor| {
                Uuid::parse_str(cursor)
                    .map(|id| {
                        HashMap::from([
                            (PARTITION_KEY.to_owned(), s(user_id)),
                            (HISTORY_SORT_KEY.to_owned(), s(id)),
                        ])
                    })
                    .map_err(|_| StoreError::InvalidCursor)
            })
            .transpose()?;
        let output = self
            .client
            .query()
            .table_name(&self.history_table)
            .key_condition_expression("pk = :user")
            .filter_expression("expires_at > :now")
            .expression_attribute_values(":user", s(user_id))
            .expression_attribute_values(":now", n(now))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(classify)?;
        let events = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect::<Result<Vec<SecurityEvent>, _>>()?;
        let next = output
            .last_evaluated_key
            .and_then(|key| key.get(HISTORY_SORT_KEY)?.as_s().ok().cloned());
        Ok(HistoryPage { events, next })
    }

    async fn delete_user(
        &self,
        user: &User,
        throttle_keys: &[String],
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Part {
            User,
            Guard,
            Tombstone,
        }
        debug_assert!(user.passkeys.len() <= MAX_PASSKEYS);
        debug_assert!(user.identities.len() <= MAX_IDENTITIES);
        let owned = || {
            Expression::new()
                .when("user_id = :user")
                .value(":user", s(user.id))
        };
        let user_item = Expression::new().when("attribute_exists(pk)");
        let user_item = exactly(user_item, "passkeys", "p", user.passkeys.keys());
        let user_item = exactly(user_item, "identities", "i", user.identities.keys());
        let tombstone = Tombstone {
            deleted_user_id: user.id,
            throttle_keys: throttle_keys.to_vec(),
            deleted_at: now,
            expires_at: now + TOMBSTONE_TTL_SECS,
        };
        let mut tombstone = to_item(&tombstone, tombstone_key(user.id))?;
        tombstone.insert(OWNER_INDEX_KEY.to_owned(), s(PENDING_DELETIONS));
        let table = &self.users_table;
        let mut transaction = Transaction::new()
            .with(Part::User, user_item.delete(table, user_key(user.id))?)
            .with(Part::Guard, owned().delete(table, email_key(&user.email))?)
            .with(Part::Tombstone, put_new(&self.sessions_table, tombstone)?);
        for id in user.passkeys.keys() {
            transaction = transaction.with(Part::Guard, owned().delete(table, passkey_key(id))?);
        }
        for id in user.identities.keys() {
            transaction = transaction.with(Part::Guard, owned().delete(table, identity_key(id))?);
        }
        match self.transact(transaction, Uuid::new_v4()).await? {
            Ok(()) => Ok(true),
            Err(cancelled) if cancelled.failed(Part::User) => Ok(false),
            Err(cancelled) => Err(StoreError::Internal(format!(
                "delete_user cancelled: {cancelled:?}"
            ))),
        }
    }

    async fn sweep_deletions(&self, _now: UnixTime) -> Result<usize, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.sessions_table)
            .index_name(OWNER_INDEX)
            .key_condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", OWNER_INDEX_KEY)
            .expression_attribute_values(":owner", s(PENDING_DELETIONS))
            .limit(SWEEP_DELETIONS)
            .send()
            .await
            .map_err(classify)?;
        let mut finished = 0;
        for item in output.items.unwrap_or_default() {
            let Some(pk) = item.get(PARTITION_KEY).cloned() else {
                continue;
            };
            // The index is eventually consistent: read the tombstone itself.
            let Some(tombstone) = self.get_item::<Tombstone>(&self.sessions_table, pk).await?
            else {
                continue;
            };
            self.finish_deletion(&tombstone).await?;
            finished += 1;
        }
        Ok(finished)
    }
}
