//! OpenID Connect identities on the user, and their guards.

use super::*;

#[async_trait]
impl IdentityStore for EmbeddedStore {
    async fn identity_owner(&self, id: &str) -> Result<Option<Uuid>, StoreError> {
        self.read(|txn| {
            let owners = txn.open_table(IDENTITY_OWNERS).map_err(internal)?;
            Ok(owners
                .get(id)
                .map_err(internal)?
                .map(|owner| Uuid::from_u128(owner.value())))
        })
    }

    async fn link_identity(
        &self,
        user_id: Uuid,
        epoch: u64,
        id: &str,
        identity: &LinkedIdentity,
    ) -> Result<IdentityLinked, StoreError> {
        let (id, identity) = (id.to_owned(), identity.clone());
        self.write(move |txn| {
            let mut owners = txn.open_table(IDENTITY_OWNERS).map_err(internal)?;
            if owners.get(id.as_str()).map_err(internal)?.is_some() {
                return Ok(IdentityLinked::Taken);
            }
            let Some(mut user) = load_user(txn, user_id)?.filter(|u| {
                u.is_active && u.session_epoch == epoch && u.identities.len() < MAX_IDENTITIES
            }) else {
                return Ok(IdentityLinked::Refused);
            };
            owners
                .insert(id.as_str(), user_id.as_u128())
                .map_err(internal)?;
            user.updated_at = identity.linked_at;
            user.identities.insert(id, identity);
            put_user(txn, &user)?;
            Ok(IdentityLinked::Linked)
        })
        .await
    }

    async fn use_identity(
        &self,
        user_id: Uuid,
        id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write_lazily(move |txn| {
            let Some(mut user) = load_user(txn, user_id)? else {
                return Ok(false);
            };
            let Some(identity) = user.identities.get_mut(&id) else {
                return Ok(false);
            };
            identity.last_used_at = Some(now);
            put_user(txn, &user)?;
            Ok(true)
        })
        .await
    }

    async fn unlink_identity(
        &self,
        user_id: Uuid,
        id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |txn| {
            let Some(mut user) = load_user(txn, user_id)? else {
                return Ok(false);
            };
            if user.ways_in() < 2 || user.identities.remove(&id).is_none() {
                return Ok(false);
            }
            txn.open_table(IDENTITY_OWNERS)
                .map_err(internal)?
                .remove(id.as_str())
                .map_err(internal)?;
            user.updated_at = now;
            put_user(txn, &user)?;
            Ok(true)
        })
        .await
    }
}
