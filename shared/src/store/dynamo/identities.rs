//! OpenID Connect identities: an `identities` map on the user's item (by identity id), and an
//! `IDENTITY#<id>` guard per identity in the users table naming its user.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use uuid::Uuid;

use super::DynamoStore;
use super::items::{Item, boolean, identity_key, internal, key, n, s, user_key};
use super::write::{Expression, Transaction, put_new};
use crate::clock::UnixTime;
use crate::model::{LinkedIdentity, MAX_IDENTITIES};
use crate::store::{IdentityLinked, IdentityStore, StoreError};

/// The guard of an identity: `IDENTITY#<id>` holding its user's id.
pub(super) fn identity_guard(id: &str, user_id: Uuid) -> Item {
    let mut item = key(identity_key(id));
    item.insert("user_id".to_owned(), s(user_id));
    item
}

#[async_trait]
impl IdentityStore for DynamoStore {
    async fn identity_owner(&self, id: &str) -> Result<Option<Uuid>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Guard {
            user_id: Uuid,
        }
        let guard: Option<Guard> = self.get_item(&self.users_table, identity_key(id)).await?;
        Ok(guard.map(|g| g.user_id))
    }

    async fn link_identity(
        &self,
        user_id: Uuid,
        epoch: u64,
        id: &str,
        identity: &LinkedIdentity,
    ) -> Result<IdentityLinked, StoreError> {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Part {
            Guard,
            User,
        }
        let value: AttributeValue = serde_dynamo::to_attribute_value(identity).map_err(internal)?;
        let user = || {
            Expression::new()
                .set("updated_at = :now")
                .when("attribute_exists(pk) AND is_active = :true AND session_epoch = :epoch")
                .values([
                    (":now", n(identity.linked_at)),
                    (":true", boolean(true)),
                    (":epoch", n(epoch)),
                ])
        };
        // A map entry can only be set inside a map that exists: the first identity makes it.
        let into_the_map = user()
            .set("identities.#id = :identity")
            .when("size(identities) < :max")
            .name("#id", id)
            .values([(":identity", value.clone()), (":max", n(MAX_IDENTITIES))]);
        let first = user()
            .set("identities = :identities")
            .when("attribute_not_exists(identities)")
            .value(
                ":identities",
                AttributeValue::M([(id.to_owned(), value)].into()),
            );
        for expression in [into_the_map, first] {
            let transaction = Transaction::new()
                .with(
                    Part::Guard,
                    put_new(&self.users_table, identity_guard(id, user_id))?,
                )
                .with(
                    Part::User,
                    expression.update(&self.users_table, user_key(user_id))?,
                );
            match self.transact(transaction, Uuid::new_v4()).await? {
                Ok(()) => return Ok(IdentityLinked::Linked),
                Err(cancelled) if cancelled.failed(Part::Guard) => {
                    return Ok(IdentityLinked::Taken);
                }
                Err(cancelled) if cancelled.failed(Part::User) => continue,
                Err(cancelled) => {
                    return Err(StoreError::Internal(format!(
                        "link_identity cancelled: {cancelled:?}"
                    )));
                }
            }
        }
        Ok(IdentityLinked::Refused)
    }

    async fn use_identity(
        &self,
        user_id: Uuid,
        id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let expression = Expression::new()
            .set("identities.#id.last_used_at = :now")
            .when("attribute_exists(identities.#id)")
            .name("#id", id)
            .value(":now", n(now));
        self.update_if(&self.users_table, user_key(user_id), expression)
            .await
    }

    async fn unlink_identity(
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
            .remove("identities.#id")
            .set("updated_at = :now")
            .when("attribute_exists(identities.#id)")
            // Another way in stays: a password, a passkey, or another identity.
            .when(
                "size(password_hash) > :zero OR size(passkeys) > :zero OR size(identities) > :one",
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
                guard.delete(&self.users_table, identity_key(id))?,
            );
        match self.transact(transaction, Uuid::new_v4()).await? {
            Ok(()) => Ok(true),
            Err(_) => Ok(false),
        }
    }
}
