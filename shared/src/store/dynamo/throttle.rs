//! Throttling counters: `THROTTLE#<key>` items in the sessions table, changed only by
//! conditional writes so that concurrent attempts never overspend a budget.

use async_trait::async_trait;

use super::DynamoStore;
use super::items::{classify, condition_failed, key, n, throttle_key, to_item};
use super::write::Expression;
use crate::clock::UnixTime;
use crate::store::schema::TTL_ATTRIBUTE;
use crate::store::{FailureCounter, StoreError, StoredFailures, ThrottleStore};

#[async_trait]
impl ThrottleStore for DynamoStore {
    async fn failure_counter(
        &self,
        key: &str,
        now: UnixTime,
    ) -> Result<FailureCounter, StoreError> {
        let stored = self
            .get_item(&self.sessions_table, throttle_key(key))
            .await?;
        Ok(StoredFailures::live(stored, now))
    }

    async fn replace_failure_counter(
        &self,
        key: &str,
        expected_version: u64,
        counter: &FailureCounter,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut item = to_item(counter, throttle_key(key))?;
        item.insert(TTL_ATTRIBUTE.into(), n(expires_at));
        // Versions start at 1, so an expected 0 only matches a missing or expired counter.
        let result = self
            .client
            .put_item()
            .table_name(&self.sessions_table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at <= :now OR version = :version",
            )
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":version", n(expected_version))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }

    async fn clear_failure_counter(&self, throttle: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.sessions_table)
            .set_key(Some(key(throttle_key(throttle))))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn take_from_window(
        &self,
        key: &str,
        limit: u32,
        window_end: UnixTime,
    ) -> Result<bool, StoreError> {
        // One atomic conditional increment: concurrent attempts can never overspend the budget.
        let take = Expression::new()
            .add("used :one")
            .set("expires_at = :end")
            .when("attribute_not_exists(used) OR used < :limit")
            .values([
                (":one", n(1)),
                (":end", n(window_end)),
                (":limit", n(limit)),
            ]);
        self.update_if(&self.sessions_table, throttle_key(key), take)
            .await
    }

    async fn give_back_to_window(&self, key: &str) -> Result<(), StoreError> {
        let give_back = Expression::new()
            .add("used :minus_one")
            .when("used > :zero")
            .values([(":minus_one", n(-1)), (":zero", n(0))]);
        self.update_if(&self.sessions_table, throttle_key(key), give_back)
            .await
            .map(|_| ())
    }
}
