//! A way in kept on the user and held by a guard naming its user (passkeys, OpenID Connect
//! identities): added while no user holds the guard and the user is active, at the flow's
//! epoch and under the limit; removed while another way in remains.

use std::collections::BTreeMap;

use super::*;

/// One kind of guarded way in: its guard table, its map on the user, its limit.
pub(super) struct Guarded<T: 'static> {
    pub owners: TableDefinition<'static, &'static str, u128>,
    pub entries: fn(&mut User) -> &mut BTreeMap<String, T>,
    pub max: usize,
}

/// What became of an attempt to add an entry.
pub(super) enum Outcome {
    Added,
    Taken,
    Refused,
}

impl<T: 'static> Guarded<T> {
    pub(super) fn owner(
        &self,
        txn: &redb::ReadTransaction,
        id: &str,
    ) -> Result<Option<Uuid>, StoreError> {
        let owners = txn.open_table(self.owners).map_err(internal)?;
        Ok(owners
            .get(id)
            .map_err(internal)?
            .map(|owner| Uuid::from_u128(owner.value())))
    }

    pub(super) fn add(
        &self,
        txn: &WriteTransaction,
        user_id: Uuid,
        epoch: u64,
        id: String,
        value: T,
        now: UnixTime,
    ) -> Result<Outcome, StoreError> {
        let mut owners = txn.open_table(self.owners).map_err(internal)?;
        if owners.get(id.as_str()).map_err(internal)?.is_some() {
            return Ok(Outcome::Taken);
        }
        let Some(mut user) =
            load_user(txn, user_id)?.filter(|u| u.is_active && u.session_epoch == epoch)
        else {
            return Ok(Outcome::Refused);
        };
        if (self.entries)(&mut user).len() >= self.max {
            return Ok(Outcome::Refused);
        }
        owners
            .insert(id.as_str(), user_id.as_u128())
            .map_err(internal)?;
        user.updated_at = now;
        (self.entries)(&mut user).insert(id, value);
        put_user(txn, &user)?;
        Ok(Outcome::Added)
    }

    pub(super) fn remove(
        &self,
        txn: &WriteTransaction,
        user_id: Uuid,
        id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let Some(mut user) = load_user(txn, user_id)? else {
            return Ok(false);
        };
        if user.ways_in() < 2 || (self.entries)(&mut user).remove(id).is_none() {
            return Ok(false);
        }
        txn.open_table(self.owners)
            .map_err(internal)?
            .remove(id)
            .map_err(internal)?;
        user.updated_at = now;
        put_user(txn, &user)?;
        Ok(true)
    }
}
