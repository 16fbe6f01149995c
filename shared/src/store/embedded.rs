//! The embedded store: one crash-safe redb file, for the local server.
//!
//! redb serialises write transactions and commits them durably, so every multi-item operation
//! (user and email guard, rotation and successors) is atomic by construction. Reads are MVCC
//! snapshots and never wait for a writer. Values are JSON of the model types.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use redb::{
    Database, Durability, MultimapTableDefinition, ReadableDatabase, ReadableTable,
    TableDefinition, WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{
    AlongWithCode, ChallengePassed, DeviceStore, EmailChange, FailureCounter, LinkStore, MfaStore,
    RotateOutcome, RotationRequest, SessionSnapshot, SessionStore, SpentCode, StoreError,
    StoredFailures, ThrottleStore, UserStore,
};
use crate::clock::{Clock, SystemClock, UnixTime};
use crate::model::{
    EmailLink, MfaChallenge, SealedSecret, Session, SessionChain, TrustedDevice, User,
};

const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
/// The email guard: normalised email → user id. Its presence is what makes an email taken.
const EMAILS: TableDefinition<&str, u128> = TableDefinition::new("emails");
const TOKENS: TableDefinition<u128, &[u8]> = TableDefinition::new("sessions");
const CHAINS: TableDefinition<u128, &[u8]> = TableDefinition::new("chains");
const USER_CHAINS: MultimapTableDefinition<u128, u128> =
    MultimapTableDefinition::new("user_chains");
/// Throttling counters: consecutive failures and per-window budgets, with their expiry.
const FAILURES: TableDefinition<&str, &[u8]> = TableDefinition::new("throttle_failures");
const WINDOWS: TableDefinition<&str, &[u8]> = TableDefinition::new("throttle_windows");
/// Emailed links by the SHA-256 of their token.
const LINKS: TableDefinition<&str, &[u8]> = TableDefinition::new("links");
/// Sign-ins waiting for their second factor, by the SHA-256 of their `mfa_token`.
const CHALLENGES: TableDefinition<&str, &[u8]> = TableDefinition::new("mfa_challenges");
/// Trusted devices by token hash.
const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredWindow {
    used: u32,
    expires_at: UnixTime,
}

#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    /// Whether a lazy write may not be on disk yet.
    lazy_writes: Arc<AtomicBool>,
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(internal)
}

fn get<K, T>(
    table: &impl ReadableTable<K, &'static [u8]>,
    key: K::SelfType<'_>,
) -> Result<Option<T>, StoreError>
where
    K: redb::Key + 'static,
    T: DeserializeOwned,
{
    match table.get(key).map_err(internal)? {
        Some(bytes) => serde_json::from_slice(bytes.value())
            .map(Some)
            .map_err(internal),
        None => Ok(None),
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the database file, creating its tables and sweeping out expired
    /// sessions, which stand in for DynamoDB's TTL deletion.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = Database::create(path.as_ref()).map_err(|e| {
            StoreError::Unavailable(format!("cannot open {}: {e}", path.as_ref().display()))
        })?;
        let store = Self {
            db: Arc::new(db),
            lazy_writes: Arc::default(),
        };
        store.write_now(|txn| {
            txn.open_table(USERS).map_err(internal)?;
            txn.open_table(EMAILS).map_err(internal)?;
            txn.open_table(TOKENS).map_err(internal)?;
            txn.open_table(CHAINS).map_err(internal)?;
            txn.open_multimap_table(USER_CHAINS).map_err(internal)?;
            txn.open_table(FAILURES).map_err(internal)?;
            txn.open_table(WINDOWS).map_err(internal)?;
            txn.open_table(LINKS).map_err(internal)?;
            txn.open_table(CHALLENGES).map_err(internal)?;
            txn.open_table(DEVICES).map_err(internal)?;
            sweep_expired(txn, SystemClock.now())
        })?;
        Ok(store)
    }

    /// Runs `work` in one write transaction, committed durably when it returns `Ok`.
    fn write_now<T>(
        &self,
        work: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_now_with(Durability::Immediate, work)
    }

    fn write_now_with<T>(
        &self,
        durability: Durability,
        work: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut txn = self.db.begin_write().map_err(internal)?;
        txn.set_durability(durability).map_err(internal)?;
        let result = work(&txn)?;
        txn.commit().map_err(internal)?;
        Ok(result)
    }

    /// Writes wait for the file lock and fsync, so they run on a blocking thread.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write_with(Durability::Immediate, work).await
    }

    /// Writes whose loss in a crash is harmless go to disk with the next durable commit (or
    /// [`Self::flush`]) instead of waiting for their own fsync, which would serialise logins on
    /// the disk: throttle counters (a crash forgives a few failures), new sessions (their tokens
    /// stop working; the user signs in again) and `last_used_at`. Users, revocations and
    /// rotations are always durable: losing one of those could resurrect a session.
    async fn write_lazily<T: Send + 'static>(
        &self,
        work: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.lazy_writes.store(true, Ordering::Release);
        self.write_with(Durability::None, work).await
    }

    /// Makes every earlier write durable. The local server calls it every second and on
    /// shutdown.
    pub async fn flush(&self) -> Result<(), StoreError> {
        if self.lazy_writes.swap(false, Ordering::AcqRel) {
            self.write(|_| Ok(())).await?;
        }
        Ok(())
    }

    async fn write_with<T: Send + 'static>(
        &self,
        durability: Durability,
        work: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_now_with(durability, work))
            .await
            .map_err(internal)?
    }

    /// How many users are stored.
    pub fn user_count(&self) -> Result<usize, StoreError> {
        self.read(|txn| {
            let users = txn.open_table(USERS).map_err(internal)?;
            Ok(users.iter().map_err(internal)?.count())
        })
    }

    /// How many token items a sign-in chain has, expired ones included.
    pub fn token_count(&self, sid: Uuid) -> Result<usize, StoreError> {
        self.read(|txn| {
            let tokens = txn.open_table(TOKENS).map_err(internal)?;
            let mut count = 0;
            for entry in tokens.iter().map_err(internal)? {
                let (_, value) = entry.map_err(internal)?;
                let session: Session = serde_json::from_slice(value.value()).map_err(internal)?;
                count += usize::from(session.sid == sid);
            }
            Ok(count)
        })
    }

    /// Reads are snapshot lookups in memory-mapped pages: short enough to run in place.
    fn read<T>(
        &self,
        work: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(internal)?;
        work(&txn)
    }
}

fn sweep_expired(txn: &WriteTransaction, now: UnixTime) -> Result<(), StoreError> {
    let mut tokens = txn.open_table(TOKENS).map_err(internal)?;
    let expired: Vec<u128> = tokens
        .iter()
        .map_err(internal)?
        .filter_map(Result::ok)
        .filter(|(_, v)| {
            serde_json::from_slice::<Session>(v.value()).is_ok_and(|s| s.expires_at <= now)
        })
        .map(|(k, _)| k.value())
        .collect();
    for key in expired {
        tokens.remove(key).map_err(internal)?;
    }
    let mut chains = txn.open_table(CHAINS).map_err(internal)?;
    let mut index = txn.open_multimap_table(USER_CHAINS).map_err(internal)?;
    let expired: Vec<SessionChain> = chains
        .iter()
        .map_err(internal)?
        .filter_map(Result::ok)
        .filter_map(|(_, v)| serde_json::from_slice::<SessionChain>(v.value()).ok())
        .filter(|c| c.expires_at <= now)
        .collect();
    for chain in expired {
        chains.remove(chain.sid.as_u128()).map_err(internal)?;
        index
            .remove(chain.user_id.as_u128(), chain.sid.as_u128())
            .map_err(internal)?;
    }
    for definition in [FAILURES, WINDOWS, LINKS, CHALLENGES, DEVICES] {
        let mut table = txn.open_table(definition).map_err(internal)?;
        let expired: Vec<String> = table
            .iter()
            .map_err(internal)?
            .filter_map(Result::ok)
            .filter(|(_, v)| {
                serde_json::from_slice::<serde_json::Value>(v.value())
                    .ok()
                    .and_then(|v| v["expires_at"].as_i64())
                    .is_some_and(|expires_at| expires_at <= now)
            })
            .map(|(k, _)| k.value().to_owned())
            .collect();
        for key in expired {
            table.remove(key.as_str()).map_err(internal)?;
        }
    }
    Ok(())
}

fn put_user(txn: &WriteTransaction, user: &User) -> Result<(), StoreError> {
    let mut users = txn.open_table(USERS).map_err(internal)?;
    users
        .insert(user.id.as_u128(), to_json(user)?.as_slice())
        .map_err(internal)?;
    Ok(())
}

fn load_user(txn: &WriteTransaction, id: Uuid) -> Result<Option<User>, StoreError> {
    get(&txn.open_table(USERS).map_err(internal)?, id.as_u128())
}

fn put_session(txn: &WriteTransaction, session: &Session) -> Result<(), StoreError> {
    let mut tokens = txn.open_table(TOKENS).map_err(internal)?;
    tokens
        .insert(session.session_id.as_u128(), to_json(session)?.as_slice())
        .map_err(internal)?;
    Ok(())
}

fn put_chain(txn: &WriteTransaction, chain: &SessionChain) -> Result<(), StoreError> {
    let mut chains = txn.open_table(CHAINS).map_err(internal)?;
    chains
        .insert(chain.sid.as_u128(), to_json(chain)?.as_slice())
        .map_err(internal)?;
    Ok(())
}

fn load_chain(txn: &WriteTransaction, sid: Uuid) -> Result<Option<SessionChain>, StoreError> {
    get(&txn.open_table(CHAINS).map_err(internal)?, sid.as_u128())
}

/// Updates a user if it exists; `false` otherwise.
async fn update_user(
    store: &EmbeddedStore,
    id: Uuid,
    change: impl FnOnce(&mut User) + Send + 'static,
) -> Result<bool, StoreError> {
    store
        .write(move |txn| {
            let Some(mut user) = load_user(txn, id)? else {
                return Ok(false);
            };
            change(&mut user);
            put_user(txn, &user)?;
            Ok(true)
        })
        .await
}

#[async_trait]
impl UserStore for EmbeddedStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(move |txn| {
            let mut emails = txn.open_table(EMAILS).map_err(internal)?;
            if emails.get(user.email.as_str()).map_err(internal)?.is_some() {
                return Err(StoreError::EmailTaken);
            }
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

/// The user whose current link of its kind `link` is, if it is live and the user's address is
/// still `email`; `None` when it was spent, superseded or has expired.
fn link_holder(
    txn: &WriteTransaction,
    link: &EmailLink,
    email: &str,
    now: UnixTime,
) -> Result<Option<User>, StoreError> {
    let stored: Option<EmailLink> = get(
        &txn.open_table(LINKS).map_err(internal)?,
        link.token_hash.as_str(),
    )?;
    if stored.is_none_or(|l| l.expires_at <= now) {
        return Ok(None);
    }
    Ok(load_user(txn, link.user_id)?.filter(|user| {
        user.links.current(link.kind) == Some(link.token_hash.as_str())
            && user.email == email
            && user.session_epoch == link.epoch
    }))
}

/// Spends `link`: it works once. `user` is its holder, who no longer has a current link of
/// that kind.
fn spend_link(
    txn: &WriteTransaction,
    link: &EmailLink,
    user: &mut User,
    now: UnixTime,
) -> Result<(), StoreError> {
    let mut links = txn.open_table(LINKS).map_err(internal)?;
    links.remove(link.token_hash.as_str()).map_err(internal)?;
    *user.links.slot(link.kind) = None;
    user.updated_at = now;
    Ok(())
}

#[async_trait]
impl LinkStore for EmbeddedStore {
    async fn issue_link(&self, link: &EmailLink) -> Result<bool, StoreError> {
        let link = link.clone();
        self.write(move |txn| {
            let Some(mut user) =
                load_user(txn, link.user_id)?.filter(|u| u.session_epoch == link.epoch)
            else {
                return Ok(false);
            };
            *user.links.slot(link.kind) = Some(link.token_hash.clone());
            put_user(txn, &user)?;
            let mut links = txn.open_table(LINKS).map_err(internal)?;
            links
                .insert(link.token_hash.as_str(), to_json(&link)?.as_slice())
                .map_err(internal)?;
            Ok(true)
        })
        .await
    }

    async fn link(&self, token_hash: &str, now: UnixTime) -> Result<Option<EmailLink>, StoreError> {
        self.read(|txn| {
            let link: Option<EmailLink> =
                get(&txn.open_table(LINKS).map_err(internal)?, token_hash)?;
            Ok(link.filter(|l| l.expires_at > now))
        })
    }

    async fn spend_verification(
        &self,
        link: &EmailLink,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let link = link.clone();
        self.write(move |txn| {
            let Some(mut user) = link_holder(txn, &link, &link.email, now)? else {
                return Ok(false);
            };
            spend_link(txn, &link, &mut user, now)?;
            user.email_verified = true;
            put_user(txn, &user)?;
            Ok(true)
        })
        .await
    }

    async fn spend_reset(
        &self,
        link: &EmailLink,
        password_hash: &str,
        wipe_unproven: bool,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let (link, password_hash) = (link.clone(), password_hash.to_owned());
        self.write(move |txn| {
            let Some(mut user) = link_holder(txn, &link, &link.email, now)? else {
                return Ok(false);
            };
            spend_link(txn, &link, &mut user, now)?;
            user.password_hash = password_hash;
            user.email_verified = true;
            // A new session epoch ends every session in the same write.
            user.session_epoch += 1;
            user.links = Default::default();
            if wipe_unproven {
                user.mfa = Default::default();
            }
            put_user(txn, &user)?;
            Ok(true)
        })
        .await
    }

    async fn spend_email_change(
        &self,
        link: &EmailLink,
        old_email: &str,
        now: UnixTime,
    ) -> Result<EmailChange, StoreError> {
        let (link, old_email) = (link.clone(), old_email.to_owned());
        self.write(move |txn| {
            let Some(mut user) = link_holder(txn, &link, &old_email, now)? else {
                return Ok(EmailChange::Stale);
            };
            let mut emails = txn.open_table(EMAILS).map_err(internal)?;
            if emails
                .get(old_email.as_str())
                .map_err(internal)?
                .map(|g| g.value())
                != Some(user.id.as_u128())
            {
                return Ok(EmailChange::Stale);
            }
            // Checked before anything is written: a taken address changes nothing.
            if emails.get(link.email.as_str()).map_err(internal)?.is_some() {
                return Ok(EmailChange::Taken);
            }
            spend_link(txn, &link, &mut user, now)?;
            emails.remove(old_email.as_str()).map_err(internal)?;
            emails
                .insert(link.email.as_str(), user.id.as_u128())
                .map_err(internal)?;
            user.email = link.email.clone();
            user.email_verified = true;
            user.links = Default::default();
            // The epoch moves; the session that asked moves with it if it is still live.
            let epoch = user.session_epoch;
            user.session_epoch = epoch + 1;
            put_user(txn, &user)?;
            if let Some(mut chain) = link
                .keep_chain
                .map(|sid| load_chain(txn, sid))
                .transpose()?
                .flatten()
                .filter(|c| {
                    c.user_id == user.id
                        && c.epoch == epoch
                        && c.revoked_at.is_none()
                        && c.expires_at > now
                })
            {
                chain.epoch = epoch + 1;
                put_chain(txn, &chain)?;
            }
            Ok(EmailChange::Changed)
        })
        .await
    }
}

/// Spends `code` on `user` if TOTP is on and the code is unspent: a later step than any
/// accepted, or a recovery code still in the set.
fn spend_code_on(user: &mut User, code: &SpentCode) -> bool {
    if !user.mfa.mfa_enabled {
        return false;
    }
    match code {
        SpentCode::Totp { step } if *step > user.mfa.totp_last_step => {
            user.mfa.totp_last_step = *step;
            true
        }
        SpentCode::Totp { .. } => false,
        SpentCode::Recovery { hash } => user.mfa.recovery_codes.remove(hash).is_some(),
    }
}

fn load_challenge(
    txn: &WriteTransaction,
    token_hash: &str,
    now: UnixTime,
) -> Result<Option<MfaChallenge>, StoreError> {
    let challenge: Option<MfaChallenge> =
        get(&txn.open_table(CHALLENGES).map_err(internal)?, token_hash)?;
    Ok(challenge.filter(|c| c.is_live(now)))
}

#[async_trait]
impl MfaStore for EmbeddedStore {
    async fn set_pending_totp(
        &self,
        user_id: Uuid,
        pending: &SealedSecret,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let pending = pending.clone();
        self.write(move |txn| {
            let Some(mut user) = load_user(txn, user_id)?.filter(|u| !u.mfa.mfa_enabled) else {
                return Ok(false);
            };
            user.mfa.totp_pending = Some(pending);
            user.updated_at = now;
            put_user(txn, &user)?;
            Ok(true)
        })
        .await
    }

    async fn enable_totp(
        &self,
        user_id: Uuid,
        pending: &SealedSecret,
        step: u64,
        recovery_hashes: &[String],
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let (pending, hashes) = (pending.clone(), recovery_hashes.to_vec());
        self.write(move |txn| {
            let Some(mut user) = load_user(txn, user_id)?
                .filter(|u| !u.mfa.mfa_enabled && u.mfa.totp_pending.as_ref() == Some(&pending))
            else {
                return Ok(false);
            };
            user.mfa.mfa_enabled = true;
            user.mfa.totp = user.mfa.totp_pending.take();
            user.mfa.totp_last_step = step;
            user.mfa.recovery_codes = hashes.into_iter().map(|h| (h, true)).collect();
            user.updated_at = now;
            put_user(txn, &user)?;
            Ok(true)
        })
        .await
    }

    async fn spend_code(
        &self,
        user_id: Uuid,
        code: &SpentCode,
        along: AlongWithCode<'_>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let code = code.clone();
        let new_recovery = match along {
            AlongWithCode::Nothing => None,
            AlongWithCode::TotpOff => Some(None),
            AlongWithCode::NewRecoveryCodes(hashes) => Some(Some(hashes.to_vec())),
        };
        self.write(move |txn| {
            let Some(mut user) = load_user(txn, user_id)? else {
                return Ok(false);
            };
            if !spend_code_on(&mut user, &code) {
                return Ok(false);
            }
            match new_recovery {
                None => {}
                Some(None) => {
                    user.mfa = crate::model::MfaState {
                        totp_last_step: user.mfa.totp_last_step,
                        ..Default::default()
                    }
                }
                Some(Some(hashes)) => {
                    user.mfa.recovery_codes = hashes.into_iter().map(|h| (h, true)).collect()
                }
            }
            user.updated_at = now;
            put_user(txn, &user)?;
            Ok(true)
        })
        .await
    }

    async fn create_challenge(&self, challenge: &MfaChallenge) -> Result<(), StoreError> {
        let challenge = challenge.clone();
        self.write_lazily(move |txn| {
            let mut challenges = txn.open_table(CHALLENGES).map_err(internal)?;
            challenges
                .insert(
                    challenge.token_hash.as_str(),
                    to_json(&challenge)?.as_slice(),
                )
                .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn challenge(
        &self,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<Option<MfaChallenge>, StoreError> {
        self.read(|txn| {
            let challenge: Option<MfaChallenge> =
                get(&txn.open_table(CHALLENGES).map_err(internal)?, token_hash)?;
            Ok(challenge.filter(|c| c.is_live(now)))
        })
    }

    async fn charge_challenge(&self, token_hash: &str, now: UnixTime) -> Result<bool, StoreError> {
        let token_hash = token_hash.to_owned();
        self.write(move |txn| {
            let Some(mut challenge) = load_challenge(txn, &token_hash, now)? else {
                return Ok(false);
            };
            challenge.failures += 1;
            let mut challenges = txn.open_table(CHALLENGES).map_err(internal)?;
            challenges
                .insert(token_hash.as_str(), to_json(&challenge)?.as_slice())
                .map_err(internal)?;
            Ok(true)
        })
        .await
    }

    async fn pass_challenge(
        &self,
        challenge: &MfaChallenge,
        code: &SpentCode,
        now: UnixTime,
    ) -> Result<ChallengePassed, StoreError> {
        let (challenge, code) = (challenge.clone(), code.clone());
        self.write(move |txn| {
            let stored: Option<MfaChallenge> = get(
                &txn.open_table(CHALLENGES).map_err(internal)?,
                challenge.token_hash.as_str(),
            )?;
            if !stored.is_some_and(|c| c.may_pass(now)) {
                return Ok(ChallengePassed::ChallengeGone);
            }
            let Some(mut user) =
                load_user(txn, challenge.user_id)?.filter(|u| u.session_epoch == challenge.epoch)
            else {
                return Ok(ChallengePassed::ChallengeGone);
            };
            if !spend_code_on(&mut user, &code) {
                return Ok(ChallengePassed::CodeSpent);
            }
            put_user(txn, &user)?;
            let mut challenges = txn.open_table(CHALLENGES).map_err(internal)?;
            challenges
                .remove(challenge.token_hash.as_str())
                .map_err(internal)?;
            Ok(ChallengePassed::Passed)
        })
        .await
    }
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn start_chain(
        &self,
        chain: &SessionChain,
        access: &Session,
        refresh: &Session,
    ) -> Result<(), StoreError> {
        let (chain, access, refresh) = (chain.clone(), access.clone(), refresh.clone());
        self.write_lazily(move |txn| {
            put_chain(txn, &chain)?;
            let mut index = txn.open_multimap_table(USER_CHAINS).map_err(internal)?;
            index
                .insert(chain.user_id.as_u128(), chain.sid.as_u128())
                .map_err(internal)?;
            put_session(txn, &access)?;
            put_session(txn, &refresh)
        })
        .await
    }

    async fn snapshot(
        &self,
        user_id: Uuid,
        sid: Uuid,
        session_id: Uuid,
        now: UnixTime,
    ) -> Result<SessionSnapshot, StoreError> {
        self.read(|txn| {
            let user: Option<User> =
                get(&txn.open_table(USERS).map_err(internal)?, user_id.as_u128())?;
            let chain: Option<SessionChain> =
                get(&txn.open_table(CHAINS).map_err(internal)?, sid.as_u128())?;
            let token: Option<Session> = get(
                &txn.open_table(TOKENS).map_err(internal)?,
                session_id.as_u128(),
            )?;
            Ok(SessionSnapshot {
                user,
                chain: chain.filter(|c| c.expires_at > now),
                token: token.filter(|t| t.expires_at > now),
            })
        })
    }

    async fn rotate(&self, request: RotationRequest<'_>) -> Result<RotateOutcome, StoreError> {
        let spent_id = request.spent.session_id;
        let sid = request.spent.sid;
        let expected_hash = request.spent.token_hash.clone();
        let rotation = request.rotation.clone();
        let (access, refresh, now) = (request.access.clone(), request.refresh.clone(), request.now);
        let epoch = request.epoch;
        self.write(move |txn| {
            let tokens = txn.open_table(TOKENS).map_err(internal)?;
            let spent: Option<Session> = get(&tokens, spent_id.as_u128())?;
            drop(tokens);
            let Some(mut spent) =
                spent.filter(|s| s.expires_at > now && s.token_hash == expected_hash)
            else {
                return Ok(RotateOutcome::AlreadyRotated);
            };
            if spent.rotation.is_some() {
                return Ok(RotateOutcome::AlreadyRotated);
            }
            let Some(mut chain) =
                load_chain(txn, sid)?.filter(|c| c.revoked_at.is_none() && c.expires_at > now)
            else {
                return Ok(RotateOutcome::ChainGone);
            };
            if !load_user(txn, spent.user_id)?
                .is_some_and(|u| u.is_active && u.session_epoch == epoch)
            {
                return Ok(RotateOutcome::ChainGone);
            }
            spent.rotation = Some(rotation);
            spent.last_used_at = Some(now);
            put_session(txn, &spent)?;
            put_session(txn, &access)?;
            put_session(txn, &refresh)?;
            chain.expires_at = refresh.expires_at;
            chain.last_used_at = now;
            put_chain(txn, &chain)?;
            Ok(RotateOutcome::Rotated)
        })
        .await
    }

    async fn revoke_chain(
        &self,
        user_id: Uuid,
        sid: Uuid,
        epoch: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.write(move |txn| {
            let Some(mut chain) = load_chain(txn, sid)? else {
                return Ok(false);
            };
            let live = chain.user_id == user_id
                && chain.epoch == epoch
                && chain.revoked_at.is_none()
                && chain.expires_at > now;
            if !live {
                return Ok(false);
            }
            chain.revoked_at = Some(now);
            put_chain(txn, &chain)?;
            Ok(true)
        })
        .await
    }

    async fn chains_of(
        &self,
        user_id: Uuid,
        now: UnixTime,
    ) -> Result<Vec<SessionChain>, StoreError> {
        self.read(|txn| {
            let index = txn.open_multimap_table(USER_CHAINS).map_err(internal)?;
            let chains = txn.open_table(CHAINS).map_err(internal)?;
            let mut live = Vec::new();
            for sid in index.get(user_id.as_u128()).map_err(internal)? {
                let sid = sid.map_err(internal)?.value();
                if let Some(chain) = get::<_, SessionChain>(&chains, sid)?
                    && chain.revoked_at.is_none()
                    && chain.expires_at > now
                {
                    live.push(chain);
                }
            }
            Ok(live)
        })
    }

    async fn touch_chain(
        &self,
        sid: Uuid,
        now: UnixTime,
        min_interval: i64,
    ) -> Result<(), StoreError> {
        self.write_lazily(move |txn| {
            if let Some(mut chain) = load_chain(txn, sid)?
                && now - chain.last_used_at >= min_interval
            {
                chain.last_used_at = now;
                put_chain(txn, &chain)?;
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl DeviceStore for EmbeddedStore {
    async fn add_device(&self, device: &TrustedDevice) -> Result<(), StoreError> {
        let device = device.clone();
        // Lazily, like a new session: a device lost in a crash only means one more lockout.
        self.write_lazily(move |txn| {
            let mut devices = txn.open_table(DEVICES).map_err(internal)?;
            devices
                .insert(device.token_hash.as_str(), to_json(&device)?.as_slice())
                .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn device(
        &self,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<Option<TrustedDevice>, StoreError> {
        self.read(|txn| {
            let device: Option<TrustedDevice> =
                get(&txn.open_table(DEVICES).map_err(internal)?, token_hash)?;
            Ok(device.filter(|d| d.expires_at > now))
        })
    }
}

#[async_trait]
impl ThrottleStore for EmbeddedStore {
    async fn failure_counter(
        &self,
        key: &str,
        now: UnixTime,
    ) -> Result<FailureCounter, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(FAILURES).map_err(internal)?;
            Ok(StoredFailures::live(get(&table, key)?, now))
        })
    }

    async fn replace_failure_counter(
        &self,
        key: &str,
        expected_version: u64,
        counter: &FailureCounter,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        let stored = StoredFailures {
            counter: counter.clone(),
            expires_at,
        };
        self.write_lazily(move |txn| {
            let mut table = txn.open_table(FAILURES).map_err(internal)?;
            let current: Option<StoredFailures> = get(&table, key.as_str())?;
            let current_version = current
                .filter(|c| c.expires_at > now)
                .map_or(0, |c| c.counter.version);
            if current_version != expected_version {
                return Ok(false);
            }
            table
                .insert(key.as_str(), to_json(&stored)?.as_slice())
                .map_err(internal)?;
            Ok(true)
        })
        .await
    }

    async fn clear_failure_counter(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.write_lazily(move |txn| {
            let mut table = txn.open_table(FAILURES).map_err(internal)?;
            table.remove(key.as_str()).map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn take_from_window(
        &self,
        key: &str,
        limit: u32,
        window_end: UnixTime,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.write_lazily(move |txn| {
            let mut table = txn.open_table(WINDOWS).map_err(internal)?;
            let used = get::<_, StoredWindow>(&table, key.as_str())?.map_or(0, |w| w.used);
            if used >= limit {
                return Ok(false);
            }
            let window = StoredWindow {
                used: used + 1,
                expires_at: window_end,
            };
            table
                .insert(key.as_str(), to_json(&window)?.as_slice())
                .map_err(internal)?;
            Ok(true)
        })
        .await
    }

    async fn give_back_to_window(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.write_lazily(move |txn| {
            let mut table = txn.open_table(WINDOWS).map_err(internal)?;
            if let Some(mut window) = get::<_, StoredWindow>(&table, key.as_str())? {
                window.used = window.used.saturating_sub(1);
                table
                    .insert(key.as_str(), to_json(&window)?.as_slice())
                    .map_err(internal)?;
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TokenType;

    fn chain(user: Uuid, now: UnixTime) -> (SessionChain, Session, Session) {
        let sid = Uuid::new_v4();
        let session = |token_type| Session {
            session_id: Uuid::new_v4(),
            sid,
            user_id: user,
            token_type,
            token_hash: "00".repeat(32),
            created_at: now,
            expires_at: now + 900,
            last_used_at: None,
            rotation: None,
        };
        let chain = SessionChain {
            sid,
            user_id: user,
            created_at: now,
            last_used_at: now,
            expires_at: now + 900,
            revoked_at: None,
            epoch: 0,
            amr: None,
        };
        (
            chain,
            session(TokenType::Access),
            session(TokenType::Refresh),
        )
    }

    #[tokio::test]
    async fn lazy_writes_are_on_disk_after_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let now = SystemClock.now();
        let user = Uuid::new_v4();
        let (chain, access, refresh) = chain(user, now);
        {
            let store = EmbeddedStore::open(&path).unwrap();
            store.start_chain(&chain, &access, &refresh).await.unwrap();
            store.flush().await.unwrap();
        }
        let store = EmbeddedStore::open(&path).unwrap();
        let snapshot = store
            .snapshot(user, chain.sid, access.session_id, now)
            .await
            .unwrap();
        assert_eq!(snapshot.chain, Some(chain));
        assert_eq!(snapshot.token, Some(access));
    }
}
