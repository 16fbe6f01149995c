//! Signing in with a password: registration, login (with a trusted device, or the start of a
//! second-factor challenge), and upgrading an outdated hash on the way.

use tracing::{info, warn};
use uuid::Uuid;

use super::email::LinkBase;
use super::history::Happened;
use super::mfa::SignIn;
use super::{AuthError, AuthService, SignedIn};
use crate::clock::UnixTime;
use crate::model::{Amr, CurrentLinks, EventKind, MfaState, User};
use crate::passwords::{Password, Verification};
use crate::validation::normalize_email;

impl AuthService {
    /// Creates an account and signs it in, its verification link pointing to `APP_URL`.
    /// Registrations are counted per source IP.
    pub async fn register(
        &self,
        email: &str,
        password: &Password,
        source_ip: Option<&str>,
    ) -> Result<SignedIn, AuthError> {
        let links = self.config.app_url.clone().map(LinkBase);
        self.register_with_links(email, password, source_ip, links.as_ref())
            .await
    }

    /// [`Self::register`], the verification link pointing to `links` (the API's own base URL
    /// when `APP_URL` is unset); without one, no mail.
    pub async fn register_with_links(
        &self,
        email: &str,
        password: &Password,
        source_ip: Option<&str>,
        links: Option<&LinkBase>,
    ) -> Result<SignedIn, AuthError> {
        let email = normalize_email(email).map_err(AuthError::InvalidEmail)?;
        self.policy
            .check(password.expose(), &email)
            .map_err(AuthError::WeakPassword)?;
        let now = self.clock.now();
        self.charge_registration(source_ip, now).await?;
        let password_hash = self.passwords.hash(password).await?;
        let user = User {
            id: Uuid::new_v4(),
            email,
            password_hash,
            created_at: now,
            updated_at: now,
            is_active: true,
            session_epoch: 0,
            email_verified: false,
            links: CurrentLinks::default(),
            mfa: MfaState::default(),
            passkeys: Default::default(),
            identities: Default::default(),
            roles: Vec::new(),
        };
        self.store.create_user(&user).await?;
        info!(user_id = %user.id, "user registered");
        self.record(Happened::new(user.id, EventKind::Registered).with("method", "password"))
            .await;
        match links {
            Some(links) => self.send_first_verification(&user, links),
            None => warn!(user_id = %user.id, "no link base: no verification mail"),
        }
        self.start_session(user, now, vec![Amr::Pwd], None).await
    }

    /// Checks email and password and starts a session, or, with TOTP on, a challenge for the
    /// second factor. Unknown emails and wrong passwords get the same answer after the same
    /// Argon2 work; throttled attempts get none.
    pub async fn login(
        &self,
        email: &str,
        password: &Password,
        source_ip: Option<&str>,
    ) -> Result<SignIn, AuthError> {
        self.login_from_device(email, password, None, source_ip)
            .await
    }

    /// [`Self::login`] presenting the `device_token` of an earlier sign-in, which exempts it
    /// from the address's lockout while the device vouches for the user (see [`devices`]).
    pub async fn login_from_device(
        &self,
        email: &str,
        password: &Password,
        device_token: Option<&str>,
        source_ip: Option<&str>,
    ) -> Result<SignIn, AuthError> {
        let email = normalize_email(email).map_err(AuthError::InvalidEmail)?;
        let now = self.clock.now();
        let user = self.store.user_by_email(&email).await?;
        let device = match device_token {
            Some(token) => self.trusted_device(token, user.as_ref(), now).await?,
            None => None,
        };
        let charged = self
            .charge_login(&email, source_ip, device.as_ref(), now)
            .await?;
        let user_id = user.as_ref().map(|u| u.id);
        let checked = self.check_credentials(user, password).await;
        // The right password counts as a success even for a disabled account.
        let right_password = matches!(checked, Ok(_) | Err(AuthError::AccountDisabled));
        if charged.locks
            && !right_password
            && let Some(user) = &user_id
        {
            // After the answer: whether the address has an account must not show in its time.
            self.record_later(Happened::new(*user, EventKind::LoginLockedOut));
        }
        self.settle_login(charged, right_password).await;
        if matches!(
            checked,
            Ok(_) | Err(AuthError::InvalidCredentials | AuthError::AccountDisabled)
        ) {
            crate::metrics::sign_in(checked.is_ok());
        }
        let (mut user, needs_rehash) = checked?;
        if needs_rehash {
            self.upgrade_hash(&mut user, password, now).await;
        }
        if user.mfa.mfa_enabled {
            return self.challenge(&user, now).await;
        }
        // A device that vouched keeps its token; any other gets a new one.
        let known_device = device.and(device_token).map(str::to_owned);
        let signed_in = self
            .start_session(user, now, vec![Amr::Pwd], known_device)
            .await?;
        Ok(SignIn::SignedIn(Box::new(signed_in)))
    }

    /// `user` (as read by its email) if `password` is its password, and whether its hash needs
    /// upgrading. An unknown email costs the same Argon2 work as a wrong password.
    async fn check_credentials(
        &self,
        user: Option<User>,
        password: &Password,
    ) -> Result<(User, bool), AuthError> {
        // An account without a password (made by an OpenID provider) is refused like a wrong
        // password, after the same work.
        let stored = user
            .as_ref()
            .filter(|u| u.has_password())
            .map(|u| u.password_hash.as_str());
        let verification = self.passwords.verify(password, stored).await?;
        let (user, needs_rehash) = match (user, verification) {
            (Some(user), Verification::Match { needs_rehash }) => (user, needs_rehash),
            _ => return Err(AuthError::InvalidCredentials),
        };
        if !user.is_active {
            return Err(AuthError::AccountDisabled);
        }
        Ok((user, needs_rehash))
    }

    /// Re-hashes a password stored with older parameters. A failure here must not fail the
    /// login: the old hash still works and the next login tries again.
    async fn upgrade_hash(&self, user: &mut User, password: &Password, now: UnixTime) {
        let result = async {
            let hash = self.passwords.hash(password).await?;
            self.store.set_password_hash(user.id, &hash, now).await?;
            Ok::<_, AuthError>(hash)
        };
        match result.await {
            Ok(hash) => {
                user.password_hash = hash;
                user.updated_at = now;
                info!(user_id = %user.id, "password hash upgraded to current parameters");
            }
            Err(e) => warn!(user_id = %user.id, error = %e, "password hash upgrade failed"),
        }
    }
}
