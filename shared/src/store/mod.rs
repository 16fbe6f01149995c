//! Storage: narrow traits for users and sessions, one implementation per backend.
//!
//! The traits speak in operations the service needs (create a user and its email guard at once,
//! rotate a refresh token), not in rows, so each backend can make them atomic its own way: a
//! DynamoDB transaction with conditions, or one embedded write transaction. The service never
//! knows which store it has.
//!
//! Every read that decides security is strongly consistent, and an expired session or chain
//! counts as absent even while it still sits in the table waiting for TTL deletion.

pub mod dynamo;
pub mod embedded;
pub mod schema;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::UnixTime;
use crate::model::{
    EmailLink, IssuedToken, LinkedIdentity, MfaChallenge, PendingCeremony, Rotation, SealedSecret,
    SecurityEvent, SessionChain, StoredPasskey, TrustedDevice, User,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The email guard already exists: the address is registered.
    #[error("email is already registered")]
    EmailTaken,
    /// An identity guard already exists: the provider's account is linked to a user.
    #[error("identity is already linked")]
    IdentityTaken,
    /// A page cursor the store did not give.
    #[error("not a cursor of this store")]
    InvalidCursor,
    /// The store cannot be reached, timed out, or keeps throttling. Worth retrying later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: corrupt items, unexpected responses. Logged, never shown.
    #[error("store error: {0}")]
    Internal(String),
}

/// A page of [`UserStore::list_users`].
#[derive(Debug, Clone, Default)]
pub struct UserPage {
    pub users: Vec<User>,
    /// Opaque: where the next page starts.
    pub next: Option<String>,
}

/// Everything one security decision about a token needs, read at once.
#[derive(Debug, Clone, Default)]
pub struct SessionSnapshot {
    pub user: Option<User>,
    pub chain: Option<SessionChain>,
    pub token: Option<IssuedToken>,
}

/// What became of an attempt to spend a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateOutcome {
    /// This call spent the token and stored the successors.
    Rotated,
    /// Another call spent it first (or it is gone): read it again and decide from its rotation.
    AlreadyRotated,
    /// The chain was revoked or has expired.
    ChainGone,
    /// Concurrent writers collided before anything was decided; trying again may succeed.
    Contended,
}

/// A refresh token being spent, and what replaces it.
#[derive(Debug, Clone)]
pub struct RotationRequest<'a> {
    pub spent: &'a IssuedToken,
    /// The epoch the chain belongs to: the rotation happens only while the user is active and
    /// still at it.
    pub epoch: u64,
    pub rotation: &'a Rotation,
    pub access: &'a IssuedToken,
    pub refresh: &'a IssuedToken,
    pub now: UnixTime,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the user and its email guard atomically; `EmailTaken` if the guard exists.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    /// Replaces the password hash (rehash or change); `false` if the user does not exist.
    async fn set_password_hash(
        &self,
        id: Uuid,
        password_hash: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Activates or deactivates; deactivation also ends every session. `false` if no such user.
    async fn set_active(&self, id: Uuid, active: bool, now: UnixTime) -> Result<bool, StoreError>;
    /// One page of users, at most `limit`, after `cursor` (the page before's `next`): a
    /// DynamoDB scan page, never the whole table. A page may hold fewer than `limit` users and
    /// still have a next one; `None` next: the last page. A cursor this store never gave is
    /// [`StoreError::InvalidCursor`].
    async fn list_users(&self, cursor: Option<&str>, limit: usize) -> Result<UserPage, StoreError>;
    /// Replaces the user's roles (checked by the caller). `false` if no such user.
    async fn set_roles(
        &self,
        id: Uuid,
        roles: &[String],
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Ends every session of the user at once by moving to a new session epoch.
    async fn revoke_all_sessions(&self, id: Uuid) -> Result<bool, StoreError>;
    /// Replaces the password hash and ends every session but `keep` in one step: the user moves
    /// from session epoch `epoch` to the next and `keep` moves with it. Every outstanding link
    /// stops working. `false` if the user is no longer at `epoch` or `keep` is not a live chain
    /// of the user.
    async fn change_password(
        &self,
        id: Uuid,
        password_hash: &str,
        epoch: u64,
        keep: Uuid,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new chain with its first access and refresh tokens, all or nothing.
    async fn start_chain(
        &self,
        chain: &SessionChain,
        access: &IssuedToken,
        refresh: &IssuedToken,
    ) -> Result<(), StoreError>;

    /// Reads the user, the chain and the token in one consistent step. Expired chains and
    /// tokens come back as `None`.
    async fn snapshot(
        &self,
        user_id: Uuid,
        chain_id: Uuid,
        token_id: Uuid,
        now: UnixTime,
    ) -> Result<SessionSnapshot, StoreError>;

    /// Spends a refresh token: marks it rotated, stores its successors and extends the chain,
    /// all or nothing, and only if nobody spent it first and the chain is live.
    async fn rotate(&self, request: RotationRequest<'_>) -> Result<RotateOutcome, StoreError>;

    /// Revokes a live chain of this user started under `epoch`; `false` if there is none.
    async fn revoke_chain(
        &self,
        user_id: Uuid,
        chain_id: Uuid,
        epoch: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// The user's chains that are neither revoked nor expired (any epoch; the caller filters).
    async fn chains_of(
        &self,
        user_id: Uuid,
        now: UnixTime,
    ) -> Result<Vec<SessionChain>, StoreError>;

    /// Records use of a chain, at most once per `min_interval` seconds however many callers race.
    async fn touch_chain(
        &self,
        chain_id: Uuid,
        now: UnixTime,
        min_interval: i64,
    ) -> Result<(), StoreError>;
}

/// Consecutive failures of one subject (a normalised email), versioned so that concurrent
/// attempts update it without losing each other's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCounter {
    pub failures: u32,
    /// Until when further attempts are refused; 0 when not locked.
    pub locked_until: UnixTime,
    /// 0 when there is no counter yet; every write adds one.
    pub version: u64,
}

/// A failure counter as both stores keep it: with its expiry, after which it counts as absent.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredFailures {
    #[serde(flatten)]
    pub counter: FailureCounter,
    pub expires_at: UnixTime,
}

impl StoredFailures {
    /// The counter, or the default when there is none or it has expired.
    pub fn live(stored: Option<Self>, now: UnixTime) -> FailureCounter {
        stored
            .filter(|s| s.expires_at > now)
            .map(|s| s.counter)
            .unwrap_or_default()
    }
}

/// Counters for throttling, kept in the store with a TTL so every Lambda instance sees the same
/// counts.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// The counter for `key`; the default when there is none or it has expired.
    async fn failure_counter(&self, key: &str, now: UnixTime)
    -> Result<FailureCounter, StoreError>;

    /// Stores `counter` if the stored one still has `expected_version`; `false` when another
    /// attempt changed it first (read again and retry).
    async fn replace_failure_counter(
        &self,
        key: &str,
        expected_version: u64,
        counter: &FailureCounter,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Forgets the counter, after a success.
    async fn clear_failure_counter(&self, key: &str) -> Result<(), StoreError>;

    /// Takes one unit from the budget `key` of at most `limit` per window ending at
    /// `window_end`; `false` when the budget is spent.
    async fn take_from_window(
        &self,
        key: &str,
        limit: u32,
        window_end: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Gives one unit back, for an attempt that turned out not to count.
    async fn give_back_to_window(&self, key: &str) -> Result<(), StoreError>;
}

/// What became of an attempt to spend an address-change link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailChange {
    /// The account has the new address; the old one is free again.
    Changed,
    /// Another account took the new address meanwhile; nothing changed, the link still works.
    Taken,
    /// The link was spent, superseded or expired, or the account's address changed since.
    Stale,
}

/// Emailed links: stored by the SHA-256 of their token, each kind's newest one recorded on the
/// user so that issuing a link supersedes the older ones, and spent by conditional writes, so a
/// link works once however many requests race with it.
#[async_trait]
pub trait LinkStore: Send + Sync {
    /// Stores `link` and makes it the user's current link of its kind; `false` if there is no
    /// such user or the user's epoch is no longer the link's.
    async fn issue_link(&self, link: &EmailLink) -> Result<bool, StoreError>;

    /// The link with this token hash, unless it was spent or has expired.
    async fn link(&self, token_hash: &str, now: UnixTime) -> Result<Option<EmailLink>, StoreError>;

    /// Spends a verification link: the address it was sent to is verified. `false` when the
    /// link is no longer the user's current one (spent, superseded, expired), the account's
    /// address is no longer the one it was sent to, or the user's epoch moved since it was
    /// issued.
    async fn spend_verification(&self, link: &EmailLink, now: UnixTime)
    -> Result<bool, StoreError>;

    /// Spends a reset link: the new password hash, the address verified, the epoch moved (every
    /// session, link, challenge and device ends) and, with `wipe_unproven`, TOTP and recovery
    /// codes removed, in one step. `false` as for [`Self::spend_verification`].
    async fn spend_reset(
        &self,
        link: &EmailLink,
        password_hash: &str,
        wipe_unproven: bool,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Spends an address-change link: the account moves from `old_email` to the address the
    /// link was sent to, the email guards move with it, and the epoch moves, keeping the link's
    /// `keep_chain` signed in if it still is, in one step.
    async fn spend_email_change(
        &self,
        link: &EmailLink,
        old_email: &str,
        now: UnixTime,
    ) -> Result<EmailChange, StoreError>;
}

/// The one-time code a request presented, as the store spends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpentCode {
    /// A TOTP code of this time step: accepted only if no step as late was accepted before.
    Totp { step: u64 },
    /// A recovery code, by its hash: accepted only if it is still in the user's set.
    Recovery { hash: String },
    /// A passkey, whose ceremony was spent already: nothing more to spend on the user.
    Passkey,
}

/// What spending a signed-in user's code does besides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlongWithCode<'a> {
    /// Nothing: the code proves a fresh factor for another change.
    Nothing,
    /// TOTP goes off, with its secret and every recovery code.
    TotpOff,
    /// The recovery codes are replaced by these hashes.
    NewRecoveryCodes(&'a [String]),
}

/// What became of a second factor presented to finish a sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengePassed {
    /// The challenge and the code are spent: the sign-in may finish.
    Passed,
    /// The challenge was spent, died or expired meanwhile.
    ChallengeGone,
    /// The code was spent meanwhile (its step or the recovery code), or TOTP went off.
    CodeSpent,
}

/// Two-factor state: enrolment, codes spent by conditional writes (a step or a recovery code
/// works once, however many requests race), and the challenges that an `mfa_token` names.
#[async_trait]
pub trait MfaStore: Send + Sync {
    /// Records a secret being enrolled, replacing an earlier one; `false` if there is no such
    /// user or TOTP is on already.
    async fn set_pending_totp(
        &self,
        user_id: Uuid,
        pending: &SealedSecret,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Turns TOTP on with the pending secret `pending` (still the pending one), the step its
    /// first code came from counting as accepted, and a set of recovery code hashes.
    async fn enable_totp(
        &self,
        user_id: Uuid,
        pending: &SealedSecret,
        step: u64,
        recovery_hashes: &[String],
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Spends `code` and, in the same step, does `along`. `false` when TOTP is off or the
    /// code was spent.
    async fn spend_code(
        &self,
        user_id: Uuid,
        code: &SpentCode,
        along: AlongWithCode<'_>,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    async fn create_challenge(&self, challenge: &MfaChallenge) -> Result<(), StoreError>;

    /// The challenge with this token hash, unless it was spent, died or expired.
    /// A challenge with [`MfaChallenge::MAX_FAILURES`] wrong codes is dead.
    async fn challenge(
        &self,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<Option<MfaChallenge>, StoreError>;

    /// Counts one attempt against the challenge, before its code is checked, so parallel
    /// guesses cannot overshoot: after [`MfaChallenge::MAX_FAILURES`] it takes no more.
    /// `false` when it is gone or has had them all.
    async fn charge_challenge(&self, token_hash: &str, now: UnixTime) -> Result<bool, StoreError>;

    /// Spends the challenge and the code together, while the user is at the challenge's epoch.
    async fn pass_challenge(
        &self,
        challenge: &MfaChallenge,
        code: &SpentCode,
        now: UnixTime,
    ) -> Result<ChallengePassed, StoreError>;
}

/// Trusted devices, by the hash of their `device_token`.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    async fn add_device(&self, device: &TrustedDevice) -> Result<(), StoreError>;

    /// The device with this token hash, unless it expired.
    async fn device(
        &self,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<Option<TrustedDevice>, StoreError>;
}

/// What became of an attempt to add a passkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyAdded {
    Added,
    /// The credential is registered already, to this account or another.
    Taken,
    /// The user is gone, inactive, no longer at the ceremony's epoch, or holds the most
    /// passkeys an account may.
    Refused,
}

/// Passkeys live on their user's item, each credential id also held by a guard that names its
/// user (so one credential belongs to one account, and a sign-in without an email finds its
/// user). Ceremonies wait between their two calls, each taken once.
#[async_trait]
pub trait PasskeyStore: Send + Sync {
    async fn create_ceremony(&self, ceremony: &PendingCeremony) -> Result<(), StoreError>;

    /// Takes the ceremony with this id hash: it works once, however many requests race.
    /// `None` when it is unknown, taken or expired.
    async fn take_ceremony(
        &self,
        id_hash: &str,
        now: UnixTime,
    ) -> Result<Option<PendingCeremony>, StoreError>;

    /// Adds `passkey` as `id` to the user, while the user is active, still at `epoch` and
    /// holds fewer than [`crate::model::MAX_PASSKEYS`], and no account holds the credential.
    async fn add_passkey(
        &self,
        user_id: Uuid,
        epoch: u64,
        id: &str,
        passkey: &StoredPasskey,
    ) -> Result<PasskeyAdded, StoreError>;

    /// The user whose passkey this credential id is.
    async fn passkey_owner(&self, id: &str) -> Result<Option<Uuid>, StoreError>;

    /// Records a sign-in with passkey `id`: its credential becomes `credential` (the new
    /// counter) if it is still `previous`. `false` when another sign-in or a removal came first.
    async fn use_passkey(
        &self,
        user_id: Uuid,
        id: &str,
        previous: &str,
        credential: &str,
        backed_up: bool,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Renames passkey `id`; `false` if the user has none by that id.
    async fn rename_passkey(
        &self,
        user_id: Uuid,
        id: &str,
        name: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Removes passkey `id` and its guard, only while the user keeps another way in (a
    /// password, another passkey, or a linked identity); `false` otherwise or if there is no such passkey.
    async fn remove_passkey(
        &self,
        user_id: Uuid,
        id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
}

/// What became of an attempt to link an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityLinked {
    Linked,
    /// The identity is linked already, to this account or another.
    Taken,
    /// The user is gone, inactive, no longer at the flow's epoch, or holds the most identities
    /// an account may.
    Refused,
}

/// OpenID Connect identities live on their user's item (`identities`, by
/// [`crate::model::identity_id`]), each also held by a guard naming its user, so one provider
/// account belongs to one user and a sign-in finds its user. [`UserStore::create_user`] writes
/// the guards of a new user's identities, failing with [`StoreError::IdentityTaken`].
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// The user this identity is linked to.
    async fn identity_owner(&self, id: &str) -> Result<Option<Uuid>, StoreError>;

    /// Links `identity` as `id` to the user, while the user is active, still at `epoch` and
    /// holds fewer than [`crate::model::MAX_IDENTITIES`], and no user holds the identity.
    async fn link_identity(
        &self,
        user_id: Uuid,
        epoch: u64,
        id: &str,
        identity: &LinkedIdentity,
    ) -> Result<IdentityLinked, StoreError>;

    /// Records a sign-in with identity `id`; `false` if the user no longer holds it.
    async fn use_identity(
        &self,
        user_id: Uuid,
        id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Unlinks identity `id` and removes its guard, only while the user keeps another way in
    /// (a password, a passkey, another identity); `false` otherwise or if there is no such
    /// identity.
    async fn unlink_identity(
        &self,
        user_id: Uuid,
        id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
}

/// A page of [`AccountStore::history`].
#[derive(Debug, Clone, Default)]
pub struct HistoryPage {
    /// Newest first.
    pub events: Vec<SecurityEvent>,
    /// Opaque: where the next page starts; `None` on the last page.
    pub next: Option<String>,
}

/// The account as a whole: its security history, and its deletion.
///
/// Deleting is two steps. [`Self::delete_user`] removes every way in at once (the user item with
/// its MFA secret, recovery codes, roles, passkeys and identities, and the guards of its address,
/// passkeys and identities) and, in the same write, records what is left to sweep: from then
/// on the address is free and nothing signs the user in, since every token, chain, link,
/// challenge and device names a user that no longer exists. [`Self::sweep_deletions`] removes
/// what is left (sessions, tokens, links, devices, challenges, ceremonies, history, the
/// throttle counters named at deletion), and can run again after a crash between the two.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Appends `event` to its user's history.
    async fn record_event(&self, event: &SecurityEvent) -> Result<(), StoreError>;

    /// The user's history, newest first, at most `limit` entries after `cursor` (the page
    /// before's `next`). Expired entries count as absent. A cursor this store never gave is
    /// [`StoreError::InvalidCursor`].
    async fn history(
        &self,
        user_id: Uuid,
        cursor: Option<&str>,
        limit: usize,
        now: UnixTime,
    ) -> Result<HistoryPage, StoreError>;

    /// Deletes the account's ways in, while the user still has exactly the passkeys and
    /// identities of `user` (a way in added meanwhile would outlive it), and records the rest
    /// for the sweep with `throttle_keys`. `false` when the user is gone or changed meanwhile.
    async fn delete_user(
        &self,
        user: &User,
        throttle_keys: &[String],
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Removes what deleted accounts left behind; how many deletions it finished.
    async fn sweep_deletions(&self, now: UnixTime) -> Result<usize, StoreError>;
}

/// A complete backend.
pub trait Store:
    UserStore
    + SessionStore
    + ThrottleStore
    + LinkStore
    + MfaStore
    + DeviceStore
    + PasskeyStore
    + IdentityStore
    + AccountStore
{
}
impl<
    T: UserStore
        + SessionStore
        + ThrottleStore
        + LinkStore
        + MfaStore
        + DeviceStore
        + PasskeyStore
        + IdentityStore
        + AccountStore,
> Store for T
{
}
