//! Emailed links: `LINK#<hash>` items in the sessions table, each pointed to by the user's
//! `link_*` attribute. Spending deletes the link in one transaction with the user's update,
//! conditioned on the pointer and the epoch, so a link works once and only while current.

use async_trait::async_trait;
use uuid::Uuid;

use super::DynamoStore;
use super::items::{boolean, email_guard, email_key, link_key, n, s, to_item, user_key};
use super::users::next_epoch;
use super::write::{Cancelled, Expression, Transaction, put_new};
use crate::clock::UnixTime;
use crate::model::{EmailLink, LinkKind};
use crate::store::{EmailChange, LinkStore, StoreError};

/// The parts of a transaction that spends a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpendPart {
    Link,
    User,
    OldGuard,
    NewGuard,
    /// The chain that stays signed in through an address change.
    KeptChain,
}

/// The conditions of a user whose current link of this kind is `link`, at the link's epoch.
fn link_is_current(expression: Expression, link: &EmailLink) -> Expression {
    expression
        .when(format!("{} = :hash", link.kind.attribute()))
        .when("session_epoch = :epoch")
        .values([(":hash", s(&link.token_hash)), (":epoch", n(link.epoch))])
}

/// A user update that spends `link` and moves the epoch (`next_epoch` already checks it).
fn link_is_current_moving_epoch(expression: Expression, link: &EmailLink) -> Expression {
    next_epoch(expression, link.epoch)
        .when(format!("{} = :hash", link.kind.attribute()))
        .value(":hash", s(&link.token_hash))
}

impl DynamoStore {
    /// Spends a link together with `user` (its update, conditioned on the link still being the
    /// user's current one); `false` when any condition failed.
    async fn spend(
        &self,
        link: &EmailLink,
        now: UnixTime,
        user: Expression,
    ) -> Result<bool, StoreError> {
        let transaction = Transaction::new()
            .with(SpendPart::Link, self.spend_link_item(link, now)?)
            .with(
                SpendPart::User,
                user.update(&self.users_table, user_key(link.user_id))?,
            );
        Ok(self.transact(transaction, Uuid::new_v4()).await?.is_ok())
    }

    /// Deletes the live link item: the step that makes a link work once.
    fn spend_link_item(
        &self,
        link: &EmailLink,
        now: UnixTime,
    ) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
        Expression::new()
            .when("attribute_exists(pk) AND expires_at > :now")
            .value(":now", n(now))
            .delete(&self.sessions_table, link_key(&link.token_hash))
    }

    /// One attempt at an address change: the link spent, the user moved to the new address
    /// and the next epoch, the guards moved, and `keep` (if any) moved with the user.
    async fn try_email_change(
        &self,
        link: &EmailLink,
        old_email: &str,
        keep: Option<Uuid>,
        now: UnixTime,
    ) -> Result<Result<(), Cancelled<SpendPart>>, StoreError> {
        let user = link_is_current_moving_epoch(
            Expression::new()
                .set("email = :new")
                .set("email_verified = :true")
                .set("updated_at = :now")
                .when("email = :old")
                .values([
                    (":new", s(&link.email)),
                    (":true", boolean(true)),
                    (":now", n(now)),
                    (":old", s(old_email)),
                ]),
            link,
        );
        let old_guard = Expression::new()
            .when("user_id = :id")
            .value(":id", s(link.user_id));
        let mut transaction = Transaction::new()
            .with(SpendPart::Link, self.spend_link_item(link, now)?)
            .with(
                SpendPart::User,
                user.update(&self.users_table, user_key(link.user_id))?,
            )
            .with(
                SpendPart::OldGuard,
                old_guard.delete(&self.users_table, email_key(old_email))?,
            )
            .with(
                SpendPart::NewGuard,
                put_new(&self.users_table, email_guard(&link.email, link.user_id))?,
            );
        if let Some(keep) = keep {
            transaction = transaction.with(
                SpendPart::KeptChain,
                self.keep_chain_item(keep, link.user_id, link.epoch, now)?,
            );
        }
        self.transact(transaction, Uuid::new_v4()).await
    }
}

#[async_trait]
impl LinkStore for DynamoStore {
    async fn issue_link(&self, link: &EmailLink) -> Result<bool, StoreError> {
        let pointer = Expression::new()
            .set(format!("{} = :hash", link.kind.attribute()))
            .when("attribute_exists(pk) AND session_epoch = :epoch")
            .values([(":hash", s(&link.token_hash)), (":epoch", n(link.epoch))]);
        let transaction = Transaction::new()
            .with(
                SpendPart::Link,
                put_new(
                    &self.sessions_table,
                    to_item(link, link_key(&link.token_hash))?,
                )?,
            )
            .with(
                SpendPart::User,
                pointer.update(&self.users_table, user_key(link.user_id))?,
            );
        match self.transact(transaction, Uuid::new_v4()).await? {
            Ok(()) => Ok(true),
            Err(cancelled) if cancelled.failed(SpendPart::User) => Ok(false),
            Err(cancelled) => Err(StoreError::Internal(format!(
                "issue_link cancelled: {cancelled:?}"
            ))),
        }
    }

    async fn link(&self, token_hash: &str, now: UnixTime) -> Result<Option<EmailLink>, StoreError> {
        let link: Option<EmailLink> = self
            .get_item(&self.sessions_table, link_key(token_hash))
            .await?;
        Ok(link.filter(|l| l.expires_at > now))
    }

    async fn spend_verification(
        &self,
        link: &EmailLink,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let user = link_is_current(
            Expression::new()
                .set("email_verified = :true")
                .set("updated_at = :now")
                .remove(LinkKind::VerifyEmail.attribute())
                .when("email = :email")
                .values([
                    (":true", boolean(true)),
                    (":now", n(now)),
                    (":email", s(&link.email)),
                ]),
            link,
        );
        self.spend(link, now, user).await
    }

    async fn spend_reset(
        &self,
        link: &EmailLink,
        password_hash: &str,
        wipe_unproven: bool,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        // A new session epoch ends every session in the same write.
        let user = link_is_current_moving_epoch(
            Expression::new()
                .set("password_hash = :password")
                .set("email_verified = :true")
                .set("updated_at = :now")
                .when("email = :email")
                .values([
                    (":password", s(password_hash)),
                    (":true", boolean(true)),
                    (":now", n(now)),
                    (":email", s(&link.email)),
                ]),
            link,
        );
        // On an address that was unverified until now, whatever was set before the mailbox was
        // proven goes too.
        let user = if wipe_unproven {
            user.set("mfa_enabled = :false")
                .value(":false", boolean(false))
                .remove("totp")
                .remove("totp_pending")
                .remove("recovery_codes")
        } else {
            user
        };
        self.spend(link, now, user).await
    }

    async fn spend_email_change(
        &self,
        link: &EmailLink,
        old_email: &str,
        now: UnixTime,
    ) -> Result<EmailChange, StoreError> {
        // The session that asked stays signed in, if it still is; if only it failed its
        // condition, the change goes ahead without it.
        let first = self
            .try_email_change(link, old_email, link.keep_chain, now)
            .await?;
        match first {
            Err(cancelled)
                if cancelled.failed(SpendPart::KeptChain)
                    && !cancelled.failed_other_than(SpendPart::KeptChain) =>
            {
                self.try_email_change(link, old_email, None, now)
                    .await
                    .and_then(email_change_outcome)
            }
            other => email_change_outcome(other),
        }
    }
}

fn email_change_outcome(
    result: Result<(), Cancelled<SpendPart>>,
) -> Result<EmailChange, StoreError> {
    match result {
        Ok(()) => Ok(EmailChange::Changed),
        Err(cancelled)
            if cancelled.failed(SpendPart::Link)
                || cancelled.failed(SpendPart::User)
                || cancelled.failed(SpendPart::OldGuard)
                || cancelled.failed(SpendPart::KeptChain) =>
        {
            Ok(EmailChange::Stale)
        }
        Err(cancelled) if cancelled.failed(SpendPart::NewGuard) => Ok(EmailChange::Taken),
        Err(cancelled) => Err(StoreError::Internal(format!(
            "spend_email_change cancelled: {cancelled:?}"
        ))),
    }
}
