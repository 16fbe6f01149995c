//! Passkeys on the user, their credential-id guards, and ceremonies.

use super::guarded::{Guarded, Outcome};
use super::*;

const PASSKEYS: Guarded<StoredPasskey> = Guarded {
    owners: PASSKEY_OWNERS,
    entries: |user| &mut user.passkeys,
    max: MAX_PASSKEYS,
};

#[async_trait]
impl PasskeyStore for EmbeddedStore {
    async fn create_ceremony(&self, ceremony: &PendingCeremony) -> Result<(), StoreError> {
        let ceremony = ceremony.clone();
        self.write_lazily(move |txn| {
            let mut table = txn.open_table(CEREMONIES).map_err(internal)?;
            table
                .insert(ceremony.id_hash.as_str(), to_json(&ceremony)?.as_slice())
                .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn take_ceremony(
        &self,
        id_hash: &str,
        now: UnixTime,
    ) -> Result<Option<PendingCeremony>, StoreError> {
        let id_hash = id_hash.to_owned();
        self.write(move |txn| {
            let mut table = txn.open_table(CEREMONIES).map_err(internal)?;
            let ceremony: Option<PendingCeremony> = get(&table, id_hash.as_str())?;
            if ceremony.is_some() {
                table.remove(id_hash.as_str()).map_err(internal)?;
            }
            Ok(ceremony.filter(|c| c.expires_at > now))
        })
        .await
    }

    async fn add_passkey(
        &self,
        user_id: Uuid,
        epoch: u64,
        id: &str,
        passkey: &StoredPasskey,
    ) -> Result<PasskeyAdded, StoreError> {
        let (id, passkey) = (id.to_owned(), passkey.clone());
        self.write(move |txn| {
            let now = passkey.created_at;
            Ok(match PASSKEYS.add(txn, user_id, epoch, id, passkey, now)? {
                Outcome::Added => PasskeyAdded::Added,
                Outcome::Taken => PasskeyAdded::Taken,
                Outcome::Refused => PasskeyAdded::Refused,
            })
        })
        .await
    }

    async fn passkey_owner(&self, id: &str) -> Result<Option<Uuid>, StoreError> {
        self.read(|txn| PASSKEYS.owner(txn, id))
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
        let (id, previous, credential) =
            (id.to_owned(), previous.to_owned(), credential.to_owned());
        self.write(move |txn| {
            let Some(mut user) = load_user(txn, user_id)? else {
                return Ok(false);
            };
            let Some(passkey) = user
                .passkeys
                .get_mut(&id)
                .filter(|p| p.credential == previous)
            else {
                return Ok(false);
            };
            passkey.credential = credential;
            passkey.backed_up = backed_up;
            passkey.last_used_at = Some(now);
            put_user(txn, &user)?;
            Ok(true)
        })
        .await
    }

    async fn rename_passkey(
        &self,
        user_id: Uuid,
        id: &str,
        name: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let (id, name) = (id.to_owned(), name.to_owned());
        self.write(move |txn| {
            let Some(mut user) = load_user(txn, user_id)? else {
                return Ok(false);
            };
            let Some(passkey) = user.passkeys.get_mut(&id) else {
                return Ok(false);
            };
            passkey.name = name;
            user.updated_at = now;
            put_user(txn, &user)?;
            Ok(true)
        })
        .await
    }

    async fn remove_passkey(
        &self,
        user_id: Uuid,
        id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |txn| PASSKEYS.remove(txn, user_id, &id, now))
            .await
    }
}
