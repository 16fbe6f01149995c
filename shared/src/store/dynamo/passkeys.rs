//! Passkeys: a `passkeys` map on the user's item (by credential id), a `PASSKEY#<id>` guard
//! per credential in the users table naming its user, and `CEREMONY#<hash>` items in the
//! sessions table, each taken by one conditional delete.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use uuid::Uuid;

use super::DynamoStore;
use super::items::{
    boolean, ceremony_key, classify, condition_failed, from_item, internal, key, n, passkey_key, s,
    to_item, user_key,
};
use super::write::{Expression, Transaction, put_new};
use crate::clock::UnixTime;
use crate::model::{MAX_PASSKEYS, PendingCeremony, StoredPasskey};
use crate::store::{PasskeyAdded, PasskeyStore, StoreError};

/// The guard of a credential id: `PASSKEY#<id>` holding its user's id.
fn passkey_guard(id: &str, user_id: Uuid) -> super::items::Item {
    let mut item = key(passkey_key(id));
    item.insert("user_id".to_owned(), s(user_id));
    item
}

#[async_trait]
impl PasskeyStore for DynamoStore {
    async fn create_ceremony(&self, ceremony: &PendingCeremony) -> Result<(), StoreError> {
        self.put_new_session_item(to_item(ceremony, ceremony_key(&ceremony.id_hash))?)
            .await
    }

    async fn take_ceremony(
        &self,
        id_hash: &str,
        now: UnixTime,
    ) -> Result<Option<PendingCeremony>, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.sessions_table)
            .set_key(Some(key(ceremony_key(id_hash))))
            .condition_expression("attribute_exists(pk) AND expires_at > :now")
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => output.attributes.map(from_item).transpose(),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    async fn add_passkey(
        &self,
        user_id: Uuid,
        epoch: u64,
        id: &str,
        passkey: &StoredPasskey,
    ) -> Result<PasskeyAdded, StoreError> {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Part {
            Guard,
            User,
        }
        let value: AttributeValue = serde_dynamo::to_attribute_value(passkey).map_err(internal)?;
        let user = || {
            Expression::new()
                .set("updated_at = :now")
                .when("attribute_exists(pk) AND is_active = :true AND session_epoch = :epoch")
                .values([
                    (":now", n(passkey.created_at)),
                    (":true", boolean(true)),
                    (":epoch", n(epoch)),
                ])
        };
        // A map entry can only be set inside a map that exists: the first passkey makes it.
        let into_the_map = user()
            .set("passkeys.#id = :passkey")
            .when("size(passkeys) < :max")
            .name("#id", id)
            .values([(":passkey", value.clone()), (":max", n(MAX_PASSKEYS))]);
        let first = user()
            .set("passkeys = :passkeys")
            .when("attribute_not_exists(passkeys)")
            .value(
                ":passkeys",
                AttributeValue::M([(id.to_owned(), value)].into()),
            );
        for expression in [into_the_map, first] {
            let transaction = Transaction::new()
                .with(
                    Part::Guard,
                    put_new(&self.users_table, passkey_guard(id, user_id))?,
                )
                .with(
                    Part::User,
                    expression.update(&self.users_table, user_key(user_id))?,
                );
            match self.transact(transaction, Uuid::new_v4()).await? {
                Ok(()) => return Ok(PasskeyAdded::Added),
                Err(cancelled) if cancelled.failed(Part::Guard) => return Ok(PasskeyAdded::Taken),
                Err(cancelled) if cancelled.failed(Part::User) => continue,
                Err(cancelled) => {
                    return Err(StoreError::Internal(format!(
                        "add_passkey cancelled: {cancelled:?}"
                    )));
                }
            }
        }
        Ok(PasskeyAdded::Refused)
    }

    async fn passkey_owner(&self, id: &str) -> Result<Option<Uuid>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Guard {
            user_id: Uuid,
        }
        let guard: Option<Guard> = self.get_item(&self.users_table, passkey_key(id)).await?;
        Ok(guard.map(|g| g.user_id))
    }

    async fn use_passkey(
        &self,
        user_id: Uuid,
        id: &str,
        previous: &str,
        credential: &str,
        backed_up: bool,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let expression = Expression::new()
            .set("passkeys.#id.credential = :credential")
            .set("passkeys.#id.backed_up = :backed_up")
            .set("passkeys.#id.last_used_at = :now")
            .when("passkeys.#id.credential = :previous")
            .name("#id", id)
            .values([
                (":credential", s(credential)),
                (":previous", s(previous)),
                (":backed_up", boolean(backed_up)),
                (":now", n(now)),
            ]);
        self.update_if(&self.users_table, user_key(user_id), expression)
            .await
    }

    async fn rename_passkey(
        &self,
        user_id: Uuid,
        id: &str,
        name: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let expression = Expression::new()
            .set("passkeys.#id.#name = :name")
            .set("updated_at = :now")
            .when("attribute_exists(passkeys.#id)")
            .name("#id", id)
            .name("#name", "name")
            .values([(":name", s(name)), (":now", n(now))]);
        self.update_if(&self.users_table, user_key(user_id), expression)
            .await
    }

    async fn remove_passkey(
        &self,
        user_id: Uuid,
        id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Part {
            Guard,
            User,
        }
        let user = Expression::new()
            .remove("passkeys.#id")
            .set("updated_at = :now")
            .when("attribute_exists(passkeys.#id)")
            // Another way in stays: a password, another passkey, or a linked identity.
            .when(
                "size(password_hash) > :zero OR size(passkeys) > :one OR size(identities) > :zero",
            )
            .name("#id", id)
            .values([(":now", n(now)), (":zero", n(0)), (":one", n(1))]);
        let guard = Expression::new()
            .when("user_id = :user")
            .value(":user", s(user_id));
        let transaction = Transaction::new()
            .with(
                Part::User,
                user.update(&self.users_table, user_key(user_id))?,
            )
            .with(
                Part::Guard,
                guard.delete(&self.users_table, passkey_key(id))?,
            );
        match self.transact(transaction, Uuid::new_v4()).await? {
            Ok(()) => Ok(true),
            Err(_) => Ok(false),
        }
    }
}
