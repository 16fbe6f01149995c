//! Fresh factors for sensitive changes made while signed in.
//!
//! A password change, TOTP setup and off, new recovery codes and an address change each ask
//! for the current password (and, with TOTP on, a code where the route says so). The password
//! is checked here, once for every caller, and its failures are charged to the session that
//! asks, not to the address's login lockout: someone failing logins on the address cannot stop
//! the signed-in owner, and a stolen session guesses against its own, growing wait.

use tracing::info;
use uuid::Uuid;

use super::throttle::{FAILURE_MEMORY_SECS, lock_secs};
use super::{AuthError, AuthService};
use crate::model::User;
use crate::passwords::{Password, Verification};

impl AuthService {
    /// Checks `password` as `user`'s, for a change asked by the sign-in chain `chain_id`.
    /// A wrong one is `InvalidCredentials`; from the `LOGIN_MAX_FAILURES`-th failure of the
    /// session on, it waits as a login would (`429`).
    pub(crate) async fn reauthenticate(
        &self,
        user: &User,
        chain_id: Uuid,
        password: &Password,
    ) -> Result<(), AuthError> {
        let key = format!("reauth:{chain_id}");
        let threshold = self.config.login_max_failures;
        let now = self.clock.now();
        self.charge_lockout(&key, |f| lock_secs(f, threshold), FAILURE_MEMORY_SECS, now)
            .await
            .inspect_err(|_| info!(user_id = %user.id, "re-authentication throttled"))?;
        // An account without a password (made by an OpenID provider) matches none, after the
        // same work.
        let stored = Some(user.password_hash.as_str()).filter(|_| user.has_password());
        let verification = self.passwords.verify(password, stored).await?;
        if !matches!(verification, Verification::Match { .. }) {
            info!(user_id = %user.id, "re-authentication failed");
            return Err(AuthError::InvalidCredentials);
        }
        if let Err(e) = self.store.clear_failure_counter(&key).await {
            tracing::warn!(error = %e, "could not reset a failure count");
        }
        Ok(())
    }
}
