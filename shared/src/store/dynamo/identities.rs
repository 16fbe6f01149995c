//! OpenID Connect identities: an `identities` map on the user's item (by identity id), and an
//! `IDENTITY#<id>` guard per identity in the users table naming its user.

use async_trait::async_trait;
use uuid::Uuid;

use super::DynamoStore;
use super::guarded::{Guarded, Outcome, guard_item};
use super::items::{Item, identity_key, internal, n, user_key};
use super::write::Expression;
use crate::clock::UnixTime;
use crate::model::{LinkedIdentity, MAX_IDENTITIES};
use crate::store::{IdentityLinked, IdentityStore, StoreError};

const IDENTITIES: Guarded = Guarded {
    map: "identities",
    max: MAX_IDENTITIES,
};

/// The guard of an identity: `IDENTITY#<id>` holding its user's id.
pub(super) fn identity_guard(id: &str, user_id: Uuid) -> Item {
    guard_item(identity_key(id), user_id)
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
        let value = serde_dynamo::to_attribute_value(identity).map_err(internal)?;
        let added = IDENTITIES
            .add(
                self,
                user_id,
                epoch,
                id,
                identity_key(id),
                value,
                identity.linked_at,
            )
            .await?;
        Ok(match added {
            Outcome::Added => IdentityLinked::Linked,
            Outcome::Taken => IdentityLinked::Taken,
            Outcome::Refused => IdentityLinked::Refused,
        })
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
        IDENTITIES
            .remove(self, user_id, id, identity_key(id), now)
            .await
    }
}
