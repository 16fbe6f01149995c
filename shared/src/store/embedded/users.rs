//! Users and their email guards.

use super::*;

#[async_trait]
impl UserStore for EmbeddedStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(move |txn| {
            let mut emails = txn.open_table(EMAILS).map_err(internal)?;
            if emails.get(user.email.as_str()).map_err(internal)?.is_some() {
                return Err(StoreError::EmailTaken);
            }
            let mut identities = txn.open_table(IDENTITY_OWNERS).map_err(internal)?;
            for id in user.identities.keys() {
                if identities.get(id.as_str()).map_err(internal)?.is_some() {
                    return Err(StoreError::IdentityTaken);
                }
                identities
                    .insert(id.as_str(), user.id.as_u128())
                    .map_err(internal)?;
            }
            drop(identities);
            emails
                .insert(user.email.as_str(), user.id.as_u128())
                .map_err(internal)?;
            put_user(txn, &user)
        })
        .await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.read(|txn| {
            let emails = txn.open_table(EMAILS).map_err(internal)?;
            let Some(id) = emails.get(email).map_err(internal)?.map(|g| g.value()) else {
                return Ok(None);
            };
            get(&txn.open_table(USERS).map_err(internal)?, id)
        })
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.read(|txn| get(&txn.open_table(USERS).map_err(internal)?, id.as_u128()))
    }

    async fn set_password_hash(
        &self,
        id: Uuid,
        password_hash: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let password_hash = password_hash.to_owned();
        update_user(self, id, move |user| {
            user.password_hash = password_hash;
            user.updated_at = now;
        })
        .await
    }

    async fn set_active(&self, id: Uuid, active: bool, now: UnixTime) -> Result<bool, StoreError> {
        update_user(self, id, move |user| {
            if !active && user.is_active {
                user.session_epoch += 1;
            }
            user.is_active = active;
            user.updated_at = now;
        })
        .await
    }

    async fn list_users(&self, cursor: Option<&str>, limit: usize) -> Result<UserPage, StoreError> {
        let after = match cursor {
            None => None,
            Some(cursor) => Some(
                Uuid::parse_str(cursor)
                    .map_err(|_| StoreError::InvalidCursor)?
                    .as_u128(),
            ),
        };
        self.read(|txn| {
            let table = txn.open_table(USERS).map_err(internal)?;
            let range = match after {
                Some(after) => {
                    table.range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                }
                None => table.range::<u128>(..),
            }
            .map_err(internal)?;
            let mut users = Vec::new();
            let mut more = false;
            for entry in range {
                let (_, value) = entry.map_err(internal)?;
                if users.len() == limit {
                    more = true;
                    break;
                }
                users.push(serde_json::from_slice::<User>(value.value()).map_err(internal)?);
            }
            let next = more
                .then(|| users.last().map(|u: &User| u.id.to_string()))
                .flatten();
            Ok(UserPage { users, next })
        })
    }

    async fn set_roles(
        &self,
        id: Uuid,
        roles: &[String],
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let roles = roles.to_vec();
        update_user(self, id, move |user| {
            user.roles = roles;
            user.updated_at = now;
        })
        .await
    }

    async fn revoke_all_sessions(&self, id: Uuid) -> Result<bool, StoreError> {
        update_user(self, id, |user| user.session_epoch += 1).await
    }

    async fn change_password(
        &self,
        id: Uuid,
        password_hash: &str,
        epoch: u64,
        keep: Uuid,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let password_hash = password_hash.to_owned();
        self.write(move |txn| {
            let Some(mut user) = load_user(txn, id)?.filter(|u| u.session_epoch == epoch) else {
                return Ok(false);
            };
            let Some(mut chain) = load_chain(txn, keep)?.filter(|c| {
                c.user_id == id && c.epoch == epoch && c.revoked_at.is_none() && c.expires_at > now
            }) else {
                return Ok(false);
            };
            user.password_hash = password_hash;
            user.updated_at = now;
            user.session_epoch = epoch + 1;
            user.links = Default::default();
            chain.epoch = epoch + 1;
            put_user(txn, &user)?;
            put_chain(txn, &chain)?;
            Ok(true)
        })
        .await
    }
}
