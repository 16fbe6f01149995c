//! Throttling counters: failure counters and fixed-window budgets.

use super::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredWindow {
    used: u32,
    expires_at: UnixTime,
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
