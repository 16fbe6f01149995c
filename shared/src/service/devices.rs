//! Trusted devices: a lockout an attacker causes must not lock the owner out.
//!
//! Every successful sign-in answers a `device_token` (256 random bits; the store keeps only its
//! SHA-256). A login that presents one that still vouches for the address's user (same user,
//! not expired, issued since the last "log out everywhere", password change or reset) is
//! charged to the device's own failure count instead of the address's, so it is not held back
//! by failures elsewhere. After `LOGIN_MAX_FAILURES` consecutive failures the device token
//! stops counting and its logins are throttled by the address like any other. The per-IP
//! budget applies either way.

use tracing::{info, warn};
use uuid::Uuid;

use super::email::{new_opaque_token, plausible_opaque_token};
use super::history::{Happened, RequestOrigin, ip_prefix};
use super::{AuthError, AuthService};
use crate::clock::UnixTime;
use crate::mail::Mail;
use crate::model::{EventKind, TrustedDevice, User};
use crate::tokens::token_hash;

impl AuthService {
    /// The device `token` stands for, if it vouches for `user` now. Anything else (malformed,
    /// unknown, expired, revoked, another user's) is no device: the login goes on as one
    /// without a token, and the answer says nothing about why. A plausible token is looked up
    /// whether or not the address has an account, so both make the same store requests.
    pub(super) async fn trusted_device(
        &self,
        token: &str,
        user: Option<&User>,
        now: UnixTime,
    ) -> Result<Option<TrustedDevice>, AuthError> {
        if !plausible_opaque_token(token) {
            return Ok(None);
        }
        let device = self.store.device(&token_hash(token), now).await?;
        Ok(device.filter(|d| user.is_some_and(|user| d.vouches_for(user, now))))
    }

    /// A new device token for `user`, living as long as a sign-in chain may.
    pub(super) async fn new_device(&self, user: &User, now: UnixTime) -> Result<String, AuthError> {
        let token = new_opaque_token()?;
        let device = TrustedDevice {
            token_hash: token_hash(&token),
            user_id: user.id,
            epoch: user.session_epoch,
            created_at: now,
            expires_at: now + self.config.session_max_lifetime_secs,
        };
        self.store.add_device(&device).await?;
        info!(user_id = %user.id, "device token issued");
        Ok(token)
    }

    /// A sign-in from a device that held no token of this user: in the history, and with
    /// `NOTIFY_NEW_DEVICE` a mail to the user.
    pub(super) async fn new_device_seen(&self, user: &User, chain_id: Uuid) {
        self.record(Happened::new(user.id, EventKind::NewDevice).with("session", chain_id))
            .await;
        if !self.config.notify_new_device {
            return;
        }
        let origin = RequestOrigin::current();
        let device = origin
            .user_agent
            .map(|agent| agent.chars().take(120).collect::<String>())
            .unwrap_or_else(|| "an unnamed browser or app".into());
        let network = origin
            .source_ip
            .as_deref()
            .and_then(ip_prefix)
            .unwrap_or_else(|| "an unknown network".into());
        match self.outbox() {
            Some(outbox) => outbox.send(
                Mail::NewSignIn {
                    device: &device,
                    network: &network,
                },
                &user.email,
            ),
            None => warn!("no new-device mail: this function holds no mailer"),
        }
    }
}
