//! Users: `USER#<id>` items and their `EMAIL#<email>` guards in the users table.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::DynamoStore;
use super::identities::identity_guard;
use super::items;
use super::items::{boolean, email_guard, email_key, n, s, to_item, user_key};
use super::write::{Expression, Transaction, put_new};
use crate::clock::UnixTime;
use crate::model::User;
use crate::store::{StoreError, UserPage, UserStore};

/// Every link pointer on the user's item: a change that moves the epoch drops them all.
pub(super) const ALL_LINKS: [&str; 3] = [
    "link_verify_email",
    "link_reset_password",
    "link_change_email",
];

/// Moves the user to the next session epoch, which ends every session and every pending
/// link, challenge and device token in the same write.
pub(super) fn next_epoch(expression: Expression, epoch: u64) -> Expression {
    ALL_LINKS
        .iter()
        .fold(expression, |expression, link| expression.remove(*link))
        .set("session_epoch = :next")
        .when("session_epoch = :epoch")
        .values([(":next", n(epoch + 1)), (":epoch", n(epoch))])
}

/// Moves the user to the next epoch from whatever it is now (no session asked for it).
fn bump_epoch(expression: Expression) -> Expression {
    expression
        .set("session_epoch = if_not_exists(session_epoch, :zero) + :one")
        .values([(":zero", n(0)), (":one", n(1))])
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Part {
            EmailGuard,
            User,
            IdentityGuard,
        }
        let mut transaction = Transaction::new()
            .with(
                Part::EmailGuard,
                put_new(&self.users_table, email_guard(&user.email, user.id))?,
            )
            .with(
                Part::User,
                put_new(&self.users_table, to_item(user, user_key(user.id))?)?,
            );
        for id in user.identities.keys() {
            transaction = transaction.with(
                Part::IdentityGuard,
                put_new(&self.users_table, identity_guard(id, user.id))?,
            );
        }
        match self.transact(transaction, user.id).await? {
            Ok(()) => Ok(()),
            Err(cancelled) if cancelled.failed(Part::EmailGuard) => Err(StoreError::EmailTaken),
            Err(cancelled) if cancelled.failed(Part::IdentityGuard) => {
                Err(StoreError::IdentityTaken)
            }
            Err(cancelled) => Err(StoreError::Internal(format!(
                "create_user cancelled: {cancelled:?}"
            ))),
        }
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Guard {
            user_id: Uuid,
        }
        let Some(guard) = self
            .get_item::<Guard>(&self.users_table, email_key(email))
            .await?
        else {
            // An unknown address makes the second round trip too, for a user no guard points
            // to (user ids are random v4), so a known one does not answer a round trip later.
            self.user_by_id(Uuid::nil()).await?;
            return Ok(None);
        };
        self.user_by_id(guard.user_id).await
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.get_item(&self.users_table, user_key(id)).await
    }

    async fn set_password_hash(
        &self,
        id: Uuid,
        password_hash: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let expression = Expression::new()
            .set("password_hash = :hash")
            .set("updated_at = :now")
            .when("attribute_exists(pk)")
            .values([(":hash", s(password_hash)), (":now", n(now))]);
        self.update_if(&self.users_table, user_key(id), expression)
            .await
    }

    async fn set_active(&self, id: Uuid, active: bool, now: UnixTime) -> Result<bool, StoreError> {
        let expression = Expression::new()
            .set("is_active = :active")
            .set("updated_at = :now")
            .when("attribute_exists(pk)")
            .values([(":active", boolean(active)), (":now", n(now))]);
        // Deactivation moves to a new session epoch, which ends every session in the same write.
        let expression = if active {
            expression
        } else {
            bump_epoch(expression)
        };
        self.update_if(&self.users_table, user_key(id), expression)
            .await
    }

    async fn list_users(&self, cursor: Option<&str>, limit: usize) -> Result<UserPage, StoreError> {
        // The cursor is the page's last evaluated key, a `USER#` or guard key of this table.
        let start = match cursor {
            None => None,
            Some(cursor) => {
                let key = URL_SAFE_NO_PAD
                    .decode(cursor)
                    .ok()
                    .and_then(|k| String::from_utf8(k).ok())
                    .filter(|k| k.len() <= 512 && k.contains('#'))
                    .ok_or(StoreError::InvalidCursor)?;
                Some(items::key(AttributeValue::S(key)))
            }
        };
        let output = self
            .client
            .scan()
            .table_name(&self.users_table)
            .consistent_read(true)
            .filter_expression("begins_with(pk, :user)")
            .expression_attribute_values(":user", s("USER#"))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(items::classify)?;
        let users = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(items::from_item)
            .collect::<Result<Vec<User>, _>>()?;
        let next = output
            .last_evaluated_key
            .and_then(|key| key.get("pk").and_then(|pk| pk.as_s().ok()).cloned())
            .map(|pk| URL_SAFE_NO_PAD.encode(pk));
        Ok(UserPage { users, next })
    }

    async fn set_roles(
        &self,
        id: Uuid,
        roles: &[String],
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        // No roles is no attribute, as the user is written when it has none.
        let expression = if roles.is_empty() {
            Expression::new().remove("#roles")
        } else {
            let list = roles.iter().map(s).collect();
            Expression::new()
                .set("#roles = :roles")
                .value(":roles", AttributeValue::L(list))
        };
        let expression = expression
            .set("updated_at = :now")
            .when("attribute_exists(pk)")
            .name("#roles", "roles")
            .value(":now", n(now));
        self.update_if(&self.users_table, user_key(id), expression)
            .await
    }

    async fn revoke_all_sessions(&self, id: Uuid) -> Result<bool, StoreError> {
        let expression = bump_epoch(Expression::new().when("attribute_exists(pk)"));
        self.update_if(&self.users_table, user_key(id), expression)
            .await
    }

    async fn change_password(
        &self,
        id: Uuid,
        password_hash: &str,
        epoch: u64,
        keep: Uuid,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let user = next_epoch(
            Expression::new()
                .set("password_hash = :hash")
                .set("updated_at = :now")
                .when("attribute_exists(pk)")
                .values([(":hash", s(password_hash)), (":now", n(now))]),
            epoch,
        );
        let transaction = Transaction::new()
            .with("user", user.update(&self.users_table, user_key(id))?)
            .with("kept chain", self.keep_chain_item(keep, id, epoch, now)?);
        // A fresh idempotency token: the same session may change its password again soon.
        Ok(self.transact(transaction, Uuid::new_v4()).await?.is_ok())
    }
}
