//! Sessions: `CHAIN#<chain_id>` per session and `TOKEN#<token_id>` per issued token, in the
//! sessions table; rotation spends a refresh token in one transaction with the user's epoch.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, TransactWriteItem};
use uuid::Uuid;

use super::items::{
    Item, boolean, build, chain_item, chain_key, classify, from_item, internal, key, n, s, to_item,
    token_key, user_key,
};
use super::write::{Expression, Transaction, backoff, put_new};
use super::{CONFLICT_ATTEMPTS, DynamoStore};
use crate::clock::UnixTime;
use crate::model::{IssuedToken, SessionChain};
use crate::store::schema::{PARTITION_KEY, USER_INDEX};
use crate::store::{RotateOutcome, RotationRequest, SessionSnapshot, SessionStore, StoreError};

/// The conditions of a chain that still signs its user in.
fn live_chain(expression: Expression) -> Expression {
    expression
        .when("attribute_exists(pk)")
        .when("attribute_not_exists(revoked_at)")
        .when("expires_at > :now")
}

impl DynamoStore {
    /// Moves a live chain of `user` from `epoch` to the next, with the user: the session that
    /// made a change which moves the epoch stays signed in.
    pub(super) fn keep_chain_item(
        &self,
        keep: Uuid,
        user: Uuid,
        epoch: u64,
        now: UnixTime,
    ) -> Result<TransactWriteItem, StoreError> {
        live_chain(Expression::new().set("epoch = :next"))
            .when("user_id = :user AND epoch = :epoch")
            .values([
                (":next", n(epoch + 1)),
                (":user", s(user)),
                (":epoch", n(epoch)),
                (":now", n(now)),
            ])
            .update(&self.sessions_table, chain_key(keep))
    }
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn start_chain(
        &self,
        chain: &SessionChain,
        access: &IssuedToken,
        refresh: &IssuedToken,
    ) -> Result<(), StoreError> {
        let table = &self.sessions_table;
        let transaction = Transaction::new()
            .with("chain", put_new(table, chain_item(chain)?)?)
            .with(
                "access token",
                put_new(table, to_item(access, token_key(access.token_id))?)?,
            )
            .with(
                "refresh token",
                put_new(table, to_item(refresh, token_key(refresh.token_id))?)?,
            );
        match self.transact(transaction, chain.chain_id).await? {
            Ok(()) => Ok(()),
            Err(cancelled) => Err(StoreError::Internal(format!(
                "start_chain cancelled: {cancelled:?}"
            ))),
        }
    }

    async fn snapshot(
        &self,
        user_id: Uuid,
        chain_id: Uuid,
        token_id: Uuid,
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
                        .keys(key(chain_key(chain_id)))
                        .keys(key(token_key(token_id)))
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
                snapshot.token =
                    Some(from_item::<IssuedToken>(item)?).filter(|t| t.expires_at > now);
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
        let table = &self.sessions_table;
        let spend = Expression::new()
            .set("rotation = :rotation")
            .set("last_used_at = :now")
            .when("attribute_exists(pk) AND attribute_not_exists(rotation)")
            .when("token_hash = :hash AND expires_at > :now")
            .values([
                (":rotation", rotation),
                (":now", n(now)),
                (":hash", s(&request.spent.token_hash)),
            ]);
        let user = Expression::new()
            .when("session_epoch = :epoch AND is_active = :true")
            .values([(":epoch", n(request.epoch)), (":true", boolean(true))]);
        let chain = live_chain(
            Expression::new()
                .set("expires_at = :expires")
                .set("last_used_at = :now"),
        )
        .values([
            (":expires", n(request.refresh.expires_at)),
            (":now", n(now)),
        ]);
        let access = to_item(request.access, token_key(request.access.token_id))?;
        let refresh = to_item(request.refresh, token_key(request.refresh.token_id))?;
        let transaction = Transaction::new()
            .with(
                Part::SpentToken,
                spend.update(table, token_key(request.spent.token_id))?,
            )
            .with(Part::AccessToken, put_new(table, access)?)
            .with(Part::RefreshToken, put_new(table, refresh)?)
            .with(
                Part::User,
                user.check(&self.users_table, user_key(request.spent.user_id))?,
            )
            .with(
                Part::Chain,
                chain.update(table, chain_key(request.spent.chain_id))?,
            );
        // One attempt only: on a conflict the caller re-reads, because the winner may have
        // spent the token in the meantime.
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(transaction.items.clone()))
            .client_request_token(request.refresh.token_id.simple().to_string())
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
        chain_id: Uuid,
        epoch: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let revoke = live_chain(Expression::new().set("revoked_at = :now"))
            .when("user_id = :user AND epoch = :epoch")
            .values([
                (":now", n(now)),
                (":user", s(user_id)),
                (":epoch", n(epoch)),
            ]);
        self.update_if(&self.sessions_table, chain_key(chain_id), revoke)
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
        chain_id: Uuid,
        now: UnixTime,
        min_interval: i64,
    ) -> Result<(), StoreError> {
        // The condition makes concurrent authorizers write at most once per interval.
        let touch = Expression::new()
            .set("last_used_at = :now")
            .when("attribute_exists(pk) AND last_used_at <= :threshold")
            .values([(":now", n(now)), (":threshold", n(now - min_interval))]);
        self.update_if(&self.sessions_table, chain_key(chain_id), touch)
            .await
            .map(|_| ())
    }
}
