//! OpenID Connect identities on the user, and their guards.

use super::guarded::{Guarded, Outcome};
use super::*;

const IDENTITIES: Guarded<LinkedIdentity> = Guarded {
    owners: IDENTITY_OWNERS,
    entries: |user| &mut user.identities,
    max: MAX_IDENTITIES,
};

#[async_trait]
impl IdentityStore for EmbeddedStore {
    async fn identity_owner(&self, id: &str) -> Result<Option<Uuid>, StoreError> {
        self.read(|txn| IDENTITIES.owner(txn, id))
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
            let now = identity.linked_at;
            Ok(
                match IDENTITIES.add(txn, user_id, epoch, id, identity, now)? {
                    Outcome::Added => IdentityLinked::Linked,
                    Outcome::Taken => IdentityLinked::Taken,
                    Outcome::Refused => IdentityLinked::Refused,
                },
            )
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
        self.write(move |txn| IDENTITIES.remove(txn, user_id, &id, now))
            .await
    }
}
