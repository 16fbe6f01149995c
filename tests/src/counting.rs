//! A store decorator that counts the calls it passes on to the real store, so tests can check
//! that a refusal reads or writes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use shared::UnixTime;
use shared::model::{
    EmailLink, IssuedToken, LinkedIdentity, MfaChallenge, PendingCeremony, SealedSecret,
    SecurityEvent, SessionChain, StoredPasskey, TrustedDevice, User,
};
use shared::store::{
    AccountStore, AlongWithCode, ChallengePassed, DeviceStore, EmailChange, FailureCounter,
    HistoryPage, IdentityLinked, IdentityStore, LinkStore, MfaStore, PasskeyAdded, PasskeyStore,
    RotateOutcome, RotationRequest, SessionSnapshot, SessionStore, SpentCode, Store, StoreError,
    ThrottleStore, UserStore,
};
use uuid::Uuid;

#[derive(Debug, Default)]
pub struct StoreCalls {
    reads: AtomicUsize,
    writes: AtomicUsize,
}

impl StoreCalls {
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    pub fn total(&self) -> usize {
        self.reads() + self.writes()
    }

    fn read(&self) {
        self.reads.fetch_add(1, Ordering::SeqCst);
    }

    fn write(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
}

pub struct CountingStore {
    inner: Arc<dyn Store>,
    calls: Arc<StoreCalls>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn Store>) -> (Self, Arc<StoreCalls>) {
        let calls = Arc::new(StoreCalls::default());
        (
            Self {
                inner,
                calls: calls.clone(),
            },
            calls,
        )
    }
}

#[async_trait]
impl AccountStore for CountingStore {
    async fn record_event(&self, event: &SecurityEvent) -> Result<(), StoreError> {
        self.calls.write();
        self.inner.record_event(event).await
    }

    async fn history(
        &self,
        user_id: Uuid,
        cursor: Option<&str>,
        limit: usize,
        now: UnixTime,
    ) -> Result<HistoryPage, StoreError> {
        self.calls.read();
        self.inner.history(user_id, cursor, limit, now).await
    }

    async fn delete_user(
        &self,
        user: &User,
        throttle_keys: &[String],
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner.delete_user(user, throttle_keys, now).await
    }

    async fn sweep_deletions(&self, now: UnixTime) -> Result<usize, StoreError> {
        self.calls.write();
        self.inner.sweep_deletions(now).await
    }
}

#[async_trait]
impl UserStore for CountingStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        self.calls.write();
        self.inner.create_user(user).await
    }
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.calls.read();
        self.inner.user_by_email(email).await
    }
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.calls.read();
        self.inner.user_by_id(id).await
    }
    async fn set_password_hash(
        &self,
        id: Uuid,
        hash: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner.set_password_hash(id, hash, now).await
    }
    async fn set_active(&self, id: Uuid, active: bool, now: UnixTime) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner.set_active(id, active, now).await
    }
    async fn list_users(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<shared::store::UserPage, StoreError> {
        self.calls.read();
        self.inner.list_users(cursor, limit).await
    }
    async fn set_roles(
        &self,
        id: Uuid,
        roles: &[String],
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner.set_roles(id, roles, now).await
    }
    async fn revoke_all_sessions(&self, id: Uuid) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner.revoke_all_sessions(id).await
    }
    async fn change_password(
        &self,
        id: Uuid,
        password_hash: &str,
        epoch: u64,
        keep: Uuid,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner
            .change_password(id, password_hash, epoch, keep, now)
            .await
    }
}

#[async_trait]
impl SessionStore for CountingStore {
    async fn start_chain(
        &self,
        chain: &SessionChain,
        access: &IssuedToken,
        refresh: &IssuedToken,
    ) -> Result<(), StoreError> {
        self.calls.write();
        self.inner.start_chain(chain, access, refresh).await
    }
    async fn snapshot(
        &self,
        user_id: Uuid,
        chain_id: Uuid,
        token_id: Uuid,
        now: UnixTime,
    ) -> Result<SessionSnapshot, StoreError> {
        self.calls.read();
        self.inner.snapshot(user_id, chain_id, token_id, now).await
    }
    async fn rotate(&self, request: RotationRequest<'_>) -> Result<RotateOutcome, StoreError> {
        self.calls.write();
        self.inner.rotate(request).await
    }
    async fn revoke_chain(
        &self,
        user_id: Uuid,
        chain_id: Uuid,
        epoch: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner.revoke_chain(user_id, chain_id, epoch, now).await
    }
    async fn chains_of(
        &self,
        user_id: Uuid,
        now: UnixTime,
    ) -> Result<Vec<SessionChain>, StoreError> {
        self.calls.read();
        self.inner.chains_of(user_id, now).await
    }
    async fn touch_chain(
        &self,
        chain_id: Uuid,
        now: UnixTime,
        min_interval: i64,
    ) -> Result<(), StoreError> {
        self.calls.write();
        self.inner.touch_chain(chain_id, now, min_interval).await
    }
}

#[async_trait]
impl DeviceStore for CountingStore {
    async fn add_device(&self, device: &TrustedDevice) -> Result<(), StoreError> {
        self.calls.write();
        self.inner.add_device(device).await
    }
    async fn device(
        &self,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<Option<TrustedDevice>, StoreError> {
        self.calls.read();
        self.inner.device(token_hash, now).await
    }
}

#[async_trait]
impl IdentityStore for CountingStore {
    async fn identity_owner(&self, id: &str) -> Result<Option<Uuid>, StoreError> {
        self.calls.read();
        self.inner.identity_owner(id).await
    }
    async fn link_identity(
        &self,
        user_id: Uuid,
        epoch: u64,
        id: &str,
        identity: &LinkedIdentity,
    ) -> Result<IdentityLinked, StoreError> {
        self.calls.write();
        self.inner.link_identity(user_id, epoch, id, identity).await
    }
    async fn use_identity(
        &self,
        user_id: Uuid,
        id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner.use_identity(user_id, id, now).await
    }
    async fn unlink_identity(
        &self,
        user_id: Uuid,
        id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner.unlink_identity(user_id, id, now).await
    }
}

#[async_trait]
impl PasskeyStore for CountingStore {
    async fn create_ceremony(&self, ceremony: &PendingCeremony) -> Result<(), StoreError> {
        self.calls.write();
        self.inner.create_ceremony(ceremony).await
    }
    async fn take_ceremony(
        &self,
        id_hash: &str,
        now: UnixTime,
    ) -> Result<Option<PendingCeremony>, StoreError> {
        self.calls.write();
        self.inner.take_ceremony(id_hash, now).await
    }
    async fn add_passkey(
        &self,
        user_id: Uuid,
        epoch: u64,
        id: &str,
        passkey: &StoredPasskey,
    ) -> Result<PasskeyAdded, StoreError> {
        self.calls.write();
        self.inner.add_passkey(user_id, epoch, id, passkey).await
    }
    async fn passkey_owner(&self, id: &str) -> Result<Option<Uuid>, StoreError> {
        self.calls.read();
        self.inner.passkey_owner(id).await
    }
    async fn use_passkey(
        &self,
        user_id: Uuid,
        id: &str,
        previous: &str,
        credential: &str,
        backed_up: bool,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner
            .use_passkey(user_id, id, previous, credential, backed_up, now)
            .await
    }
    async fn rename_passkey(
        &self,
        user_id: Uuid,
        id: &str,
        name: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner.rename_passkey(user_id, id, name, now).await
    }
    async fn remove_passkey(
        &self,
        user_id: Uuid,
        id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner.remove_passkey(user_id, id, now).await
    }
}

#[async_trait]
impl ThrottleStore for CountingStore {
    async fn failure_counter(
        &self,
        key: &str,
        now: UnixTime,
    ) -> Result<FailureCounter, StoreError> {
        self.calls.read();
        self.inner.failure_counter(key, now).await
    }
    async fn replace_failure_counter(
        &self,
        key: &str,
        expected_version: u64,
        counter: &FailureCounter,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner
            .replace_failure_counter(key, expected_version, counter, expires_at, now)
            .await
    }
    async fn clear_failure_counter(&self, key: &str) -> Result<(), StoreError> {
        self.calls.write();
        self.inner.clear_failure_counter(key).await
    }
    async fn take_from_window(
        &self,
        key: &str,
        limit: u32,
        window_end: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner.take_from_window(key, limit, window_end).await
    }
    async fn give_back_to_window(&self, key: &str) -> Result<(), StoreError> {
        self.calls.write();
        self.inner.give_back_to_window(key).await
    }
}

#[async_trait]
impl LinkStore for CountingStore {
    async fn issue_link(&self, link: &EmailLink) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner.issue_link(link).await
    }
    async fn link(&self, token_hash: &str, now: UnixTime) -> Result<Option<EmailLink>, StoreError> {
        self.calls.read();
        self.inner.link(token_hash, now).await
    }
    async fn spend_verification(
        &self,
        link: &EmailLink,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner.spend_verification(link, now).await
    }
    async fn spend_reset(
        &self,
        link: &EmailLink,
        password_hash: &str,
        wipe_unproven: bool,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner
            .spend_reset(link, password_hash, wipe_unproven, now)
            .await
    }
    async fn spend_email_change(
        &self,
        link: &EmailLink,
        old_email: &str,
        now: UnixTime,
    ) -> Result<EmailChange, StoreError> {
        self.calls.write();
        self.inner.spend_email_change(link, old_email, now).await
    }
}

#[async_trait]
impl MfaStore for CountingStore {
    async fn set_pending_totp(
        &self,
        user_id: Uuid,
        pending: &SealedSecret,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner.set_pending_totp(user_id, pending, now).await
    }
    async fn enable_totp(
        &self,
        user_id: Uuid,
        pending: &SealedSecret,
        step: u64,
        recovery_hashes: &[String],
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner
            .enable_totp(user_id, pending, step, recovery_hashes, now)
            .await
    }
    async fn spend_code(
        &self,
        user_id: Uuid,
        code: &SpentCode,
        along: AlongWithCode<'_>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner.spend_code(user_id, code, along, now).await
    }
    async fn create_challenge(&self, challenge: &MfaChallenge) -> Result<(), StoreError> {
        self.calls.write();
        self.inner.create_challenge(challenge).await
    }
    async fn challenge(
        &self,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<Option<MfaChallenge>, StoreError> {
        self.calls.read();
        self.inner.challenge(token_hash, now).await
    }
    async fn charge_challenge(&self, token_hash: &str, now: UnixTime) -> Result<bool, StoreError> {
        self.calls.write();
        self.inner.charge_challenge(token_hash, now).await
    }
    async fn pass_challenge(
        &self,
        challenge: &MfaChallenge,
        code: &SpentCode,
        now: UnixTime,
    ) -> Result<ChallengePassed, StoreError> {
        self.calls.write();
        self.inner.pass_challenge(challenge, code, now).await
    }
}
