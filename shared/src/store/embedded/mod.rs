//! The embedded store: one crash-safe redb file, for the local server.
//!
//! redb serialises write transactions and commits them durably, so every multi-item operation
//! (user and email guard, rotation and successors) is atomic by construction. Reads are MVCC
//! snapshots and never wait for a writer. Values are JSON of the model types.
//!
//! One file per store trait, as in the DynamoDB store; this one holds the tables and the
//! transaction helpers they share.

mod account;
mod devices;
mod guarded;
mod identities;
mod links;
mod mfa;
mod passkeys;
mod sessions;
mod throttle;
mod users;

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
    AccountStore, AlongWithCode, ChallengePassed, DeviceStore, EmailChange, FailureCounter,
    HistoryPage, IdentityLinked, IdentityStore, LinkStore, MfaStore, PasskeyAdded, PasskeyStore,
    RotateOutcome, RotationRequest, SessionSnapshot, SessionStore, SpentCode, StoreError,
    StoredFailures, ThrottleStore, UserPage, UserStore,
};
use crate::clock::{Clock, SystemClock, UnixTime};
use crate::model::{
    EmailLink, IssuedToken, LinkedIdentity, MAX_IDENTITIES, MAX_PASSKEYS, MfaChallenge,
    PendingCeremony, SealedSecret, SecurityEvent, SessionChain, StoredPasskey, TrustedDevice, User,
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
/// Passkey ceremonies between their two calls, by the SHA-256 of their id.
const CEREMONIES: TableDefinition<&str, &[u8]> = TableDefinition::new("passkey_ceremonies");
/// The passkey guard: credential id → its user. Its presence is what makes a credential taken.
const PASSKEY_OWNERS: TableDefinition<&str, u128> = TableDefinition::new("passkey_owners");
/// The identity guard: identity id → its user. Its presence is what makes an identity linked.
const IDENTITY_OWNERS: TableDefinition<&str, u128> = TableDefinition::new("identity_owners");
/// Each user's security history: (user id, time-ordered entry id) → entry.
const HISTORY: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("history");

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
            txn.open_table(CEREMONIES).map_err(internal)?;
            txn.open_table(PASSKEY_OWNERS).map_err(internal)?;
            txn.open_table(IDENTITY_OWNERS).map_err(internal)?;
            txn.open_table(HISTORY).map_err(internal)?;
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
    pub fn token_count(&self, chain_id: Uuid) -> Result<usize, StoreError> {
        self.read(|txn| {
            let tokens = txn.open_table(TOKENS).map_err(internal)?;
            let mut count = 0;
            for entry in tokens.iter().map_err(internal)? {
                let (_, value) = entry.map_err(internal)?;
                let session: IssuedToken =
                    serde_json::from_slice(value.value()).map_err(internal)?;
                count += usize::from(session.chain_id == chain_id);
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
            serde_json::from_slice::<IssuedToken>(v.value()).is_ok_and(|s| s.expires_at <= now)
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
        chains.remove(chain.chain_id.as_u128()).map_err(internal)?;
        index
            .remove(chain.user_id.as_u128(), chain.chain_id.as_u128())
            .map_err(internal)?;
    }
    for definition in [FAILURES, WINDOWS, LINKS, CHALLENGES, DEVICES, CEREMONIES] {
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

fn put_session(txn: &WriteTransaction, session: &IssuedToken) -> Result<(), StoreError> {
    let mut tokens = txn.open_table(TOKENS).map_err(internal)?;
    tokens
        .insert(session.token_id.as_u128(), to_json(session)?.as_slice())
        .map_err(internal)?;
    Ok(())
}

fn put_chain(txn: &WriteTransaction, chain: &SessionChain) -> Result<(), StoreError> {
    let mut chains = txn.open_table(CHAINS).map_err(internal)?;
    chains
        .insert(chain.chain_id.as_u128(), to_json(chain)?.as_slice())
        .map_err(internal)?;
    Ok(())
}

fn load_chain(txn: &WriteTransaction, chain_id: Uuid) -> Result<Option<SessionChain>, StoreError> {
    get(
        &txn.open_table(CHAINS).map_err(internal)?,
        chain_id.as_u128(),
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TokenType;

    fn chain(user: Uuid, now: UnixTime) -> (SessionChain, IssuedToken, IssuedToken) {
        let chain_id = Uuid::new_v4();
        let session = |token_type| IssuedToken {
            token_id: Uuid::new_v4(),
            chain_id,
            user_id: user,
            token_type,
            token_hash: "00".repeat(32),
            created_at: now,
            expires_at: now + 900,
            last_used_at: None,
            rotation: None,
        };
        let chain = SessionChain {
            chain_id,
            user_id: user,
            created_at: now,
            last_used_at: now,
            expires_at: now + 900,
            revoked_at: None,
            epoch: 0,
            amr: None,
            idp: None,
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
            .snapshot(user, chain.chain_id, access.token_id, now)
            .await
            .unwrap();
        assert_eq!(snapshot.chain, Some(chain));
        assert_eq!(snapshot.token, Some(access));
    }
}
