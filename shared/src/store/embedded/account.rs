//! The account as a whole: its history, and its deletion, which is one write transaction here
//! (so a sweep never has anything left to do).

use super::*;

/// Every value in `definition` whose JSON names `user_id` as its user, by key.
fn owned_keys(
    txn: &WriteTransaction,
    definition: TableDefinition<&str, &[u8]>,
    user_id: Uuid,
) -> Result<Vec<String>, StoreError> {
    let table = txn.open_table(definition).map_err(internal)?;
    let user = user_id.to_string();
    let mut keys = Vec::new();
    for entry in table.iter().map_err(internal)? {
        let (key, value) = entry.map_err(internal)?;
        let value: serde_json::Value = serde_json::from_slice(value.value()).map_err(internal)?;
        if value["user_id"].as_str() == Some(user.as_str()) {
            keys.push(key.value().to_owned());
        }
    }
    Ok(keys)
}

#[async_trait]
impl AccountStore for EmbeddedStore {
    async fn record_event(&self, event: &SecurityEvent) -> Result<(), StoreError> {
        let event = event.clone();
        self.write_lazily(move |txn| {
            let mut history = txn.open_table(HISTORY).map_err(internal)?;
            history
                .insert(
                    (event.user_id.as_u128(), event.id.as_u128()),
                    to_json(&event)?.as_slice(),
                )
                .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn history(
        &self,
        user_id: Uuid,
        cursor: Option<&str>,
        limit: usize,
        now: UnixTime,
    ) -> Result<HistoryPage, StoreError> {
        let before = match cursor {
            None => u128::MAX,
            Some(cursor) => Uuid::parse_str(cursor)
                .map_err(|_| StoreError::InvalidCursor)?
                .as_u128(),
        };
        let user = user_id.as_u128();
        self.read(|txn| {
            let history = txn.open_table(HISTORY).map_err(internal)?;
            let mut events = Vec::new();
            let mut next = None;
            for entry in history
                .range((user, 0)..(user, before))
                .map_err(internal)?
                .rev()
            {
                let (_, value) = entry.map_err(internal)?;
                let event: SecurityEvent =
                    serde_json::from_slice(value.value()).map_err(internal)?;
                if event.expires_at <= now {
                    continue;
                }
                if events.len() == limit {
                    next = events.last().map(|e: &SecurityEvent| e.id.to_string());
                    break;
                }
                events.push(event);
            }
            Ok(HistoryPage { events, next })
        })
    }

    async fn delete_user(
        &self,
        user: &User,
        throttle_keys: &[String],
        _now: UnixTime,
    ) -> Result<bool, StoreError> {
        let (seen, throttle_keys) = (user.clone(), throttle_keys.to_vec());
        self.write(move |txn| {
            let Some(user) = load_user(txn, seen.id)? else {
                return Ok(false);
            };
            if user.passkeys.keys().ne(seen.passkeys.keys())
                || user.identities.keys().ne(seen.identities.keys())
            {
                return Ok(false);
            }
            let id = user.id.as_u128();
            txn.open_table(USERS)
                .map_err(internal)?
                .remove(id)
                .map_err(internal)?;
            txn.open_table(EMAILS)
                .map_err(internal)?
                .remove(user.email.as_str())
                .map_err(internal)?;
            let mut owners = txn.open_table(PASSKEY_OWNERS).map_err(internal)?;
            for key in user.passkeys.keys() {
                owners.remove(key.as_str()).map_err(internal)?;
            }
            drop(owners);
            let mut owners = txn.open_table(IDENTITY_OWNERS).map_err(internal)?;
            for key in user.identities.keys() {
                owners.remove(key.as_str()).map_err(internal)?;
            }
            drop(owners);
            // Sessions: the chains by the user's index, their tokens by their chain.
            let mut index = txn.open_multimap_table(USER_CHAINS).map_err(internal)?;
            let chains: Vec<u128> = index
                .remove_all(id)
                .map_err(internal)?
                .map(|chain| chain.map(|c| c.value()).map_err(internal))
                .collect::<Result<_, _>>()?;
            drop(index);
            let mut chain_table = txn.open_table(CHAINS).map_err(internal)?;
            for chain in &chains {
                chain_table.remove(*chain).map_err(internal)?;
            }
            drop(chain_table);
            let mut tokens = txn.open_table(TOKENS).map_err(internal)?;
            let owned: Vec<u128> = tokens
                .iter()
                .map_err(internal)?
                .filter_map(Result::ok)
                .filter(|(_, v)| {
                    serde_json::from_slice::<IssuedToken>(v.value())
                        .is_ok_and(|t| t.user_id == user.id)
                })
                .map(|(k, _)| k.value())
                .collect();
            for key in owned {
                tokens.remove(key).map_err(internal)?;
            }
            drop(tokens);
            for definition in [LINKS, CHALLENGES, DEVICES, CEREMONIES] {
                let keys = owned_keys(txn, definition, user.id)?;
                let mut table = txn.open_table(definition).map_err(internal)?;
                for key in keys {
                    table.remove(key.as_str()).map_err(internal)?;
                }
            }
            for definition in [FAILURES, WINDOWS] {
                let mut table = txn.open_table(definition).map_err(internal)?;
                for key in &throttle_keys {
                    table.remove(key.as_str()).map_err(internal)?;
                }
            }
            let mut history = txn.open_table(HISTORY).map_err(internal)?;
            history
                .extract_from_if((id, 0)..=(id, u128::MAX), |_, _| true)
                .map_err(internal)?
                .for_each(drop);
            Ok(true)
        })
        .await
    }

    async fn sweep_deletions(&self, _now: UnixTime) -> Result<usize, StoreError> {
        Ok(0)
    }
}

impl EmbeddedStore {
    /// How many items of any kind name `user_id` (sessions, tokens, links, challenges, devices,
    /// ceremonies, history): what a deletion must leave none of.
    pub fn items_of(&self, user_id: Uuid) -> Result<usize, StoreError> {
        let user = user_id.to_string();
        self.read(|txn| {
            let mut count = 0;
            for definition in [TOKENS, CHAINS] {
                let table = txn.open_table(definition).map_err(internal)?;
                for entry in table.iter().map_err(internal)? {
                    let (_, value) = entry.map_err(internal)?;
                    let value: serde_json::Value =
                        serde_json::from_slice(value.value()).map_err(internal)?;
                    count += usize::from(value["user_id"].as_str() == Some(user.as_str()));
                }
            }
            for definition in [LINKS, CHALLENGES, DEVICES, CEREMONIES] {
                let table = txn.open_table(definition).map_err(internal)?;
                for entry in table.iter().map_err(internal)? {
                    let (_, value) = entry.map_err(internal)?;
                    let value: serde_json::Value =
                        serde_json::from_slice(value.value()).map_err(internal)?;
                    count += usize::from(value["user_id"].as_str() == Some(user.as_str()));
                }
            }
            let id = user_id.as_u128();
            let history = txn.open_table(HISTORY).map_err(internal)?;
            count += history
                .range((id, 0)..=(id, u128::MAX))
                .map_err(internal)?
                .count();
            Ok(count)
        })
    }
}
