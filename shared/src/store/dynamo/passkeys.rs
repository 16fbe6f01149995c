//! Passkeys: a `passkeys` map on the user's item (by credential id), a `PASSKEY#<id>` guard
//! per credential in the users table naming its user, and `CEREMONY#<hash>` items in the
//! sessions table, each taken by one conditional delete.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use uuid::Uuid;

use super::DynamoStore;
use super::guarded::{Guarded, Outcome};
use super::items::{
    boolean, ceremony_key, classify, condition_failed, from_item, internal, key, n, passkey_key, s,
    to_item, user_key,
};
use super::write::Expression;
use crate::clock::UnixTime;
use crate::model::{MAX_PASSKEYS, PendingCeremony, StoredPasskey};
use crate::store::{PasskeyAdded, PasskeyStore, StoreError};

const PASSKEYS: Guarded = Guarded {
    map: "passkeys",
    max: MAX_PASSKEYS,
};

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
        let value = serde_dynamo::to_attribute_value(passkey).map_err(internal)?;
        let added = PASSKEYS
            .add(
                self,
                user_id,
                epoch,
                id,
                passkey_key(id),
                value,
                passkey.created_at,
            )
            .await?;
        Ok(match added {
            Outcome::Added => PasskeyAdded::Added,
            Outcome::Taken => PasskeyAdded::Taken,
            Outcome::Refused => PasskeyAdded::Refused,
        })
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
        PASSKEYS
            .remove(self, user_id, id, passkey_key(id), now)
            .await
    }
}
