//! Deleting an account, by its owner (`DELETE /auth/account`) or an admin
//! (`DELETE /admin/users/{id}`).
//!
//! The owner confirms with the password (and, with TOTP on, a code); an account without a
//! password confirms with a sign-in of the last [`super::FRESH_SIGN_IN_SECS`]. The store then
//! removes every way in at once and sweeps the rest ([`crate::store::AccountStore`]): the
//! address is free, every token of the user is refused from the next request on, and a notice
//! goes to the address.

use tracing::{info, warn};
use uuid::Uuid;

use super::history::Happened;
use super::mfa::code_counter_key;
use super::{AuthError, AuthService, MfaCode, Principal};
use crate::mail::Mail;
use crate::model::{EventKind, User};
use crate::passwords::Password;
use crate::store::AlongWithCode;

/// Attempts at a deletion while the account keeps changing under it (a passkey added).
const DELETE_ATTEMPTS: usize = 3;

/// How the owner confirms `DELETE /auth/account`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountDeletion<'a> {
    pub password: Option<&'a Password>,
    pub code: Option<&'a MfaCode>,
}

impl AuthService {
    /// `DELETE /auth/account`: the signed-in user deletes their account.
    pub async fn delete_account(
        &self,
        user_id: Uuid,
        chain_id: Uuid,
        confirm: AccountDeletion<'_>,
    ) -> Result<(), AuthError> {
        let user = self.active_user(user_id).await?;
        let now = self.clock.now();
        match (user.has_password(), confirm.password) {
            (true, None) => {
                return Err(AuthError::InvalidField {
                    field: "password",
                    message: "password is required to delete the account.".into(),
                });
            }
            // Checked as for every other change: charged to this session's own budget.
            (_, password) => self.fresh_factor(&user, chain_id, password, now).await?,
        }
        if user.mfa.mfa_enabled {
            let code = confirm
                .code
                .ok_or(AuthError::MalformedCode { field: "code" })?;
            self.spend_users_code(&user, code, AlongWithCode::Nothing)
                .await?;
        }
        self.erase(user, None).await
    }

    /// `DELETE /admin/users/{id}`.
    pub async fn admin_delete_user(&self, admin: &Principal, id: Uuid) -> Result<(), AuthError> {
        let user = self.admin_target(admin, id).await?;
        self.erase(user, Some(admin.user_id)).await
    }

    /// Deletes `user` (as read), retrying while it changes under the deletion.
    async fn erase(&self, mut user: User, admin: Option<Uuid>) -> Result<(), AuthError> {
        let now = self.clock.now();
        for _ in 0..DELETE_ATTEMPTS {
            // The counters that would outlive the account: its address's lockout, its
            // wrong-code count, and each session's re-authentication count.
            let mut throttle_keys = vec![
                format!("login-email:{}", user.email),
                code_counter_key(user.id),
            ];
            for chain in self.store.chains_of(user.id, now).await? {
                throttle_keys.push(format!("reauth:{}", chain.chain_id));
            }
            if self.store.delete_user(&user, &throttle_keys, now).await? {
                info!(user_id = %user.id, admin_id = ?admin, "account deleted");
                let mut deleted = Happened::new(user.id, EventKind::Deleted);
                if let Some(admin) = admin {
                    deleted = deleted.by(admin);
                }
                self.record(deleted).await;
                match self.outbox() {
                    Some(outbox) => outbox.send(Mail::AccountDeleted, &user.email),
                    None => warn!("no deletion notice: this function holds no mailer"),
                }
                // The rest goes now; a crash before it is finished by the next sweep.
                if let Err(e) = self.store.sweep_deletions(now).await {
                    warn!(error = %e, "deletion sweep not finished; the next one will");
                }
                return Ok(());
            }
            user = self
                .store
                .user_by_id(user.id)
                .await?
                .ok_or(AuthError::UserNotFound)?;
        }
        Err(AuthError::Internal(
            "the account kept changing while being deleted".into(),
        ))
    }
}
