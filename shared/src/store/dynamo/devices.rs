//! Trusted devices: `DEVICE#<hash>` items in the sessions table.

use async_trait::async_trait;

use super::DynamoStore;
use super::items::{device_key, to_item};
use crate::clock::UnixTime;
use crate::model::TrustedDevice;
use crate::store::{DeviceStore, StoreError};

#[async_trait]
impl DeviceStore for DynamoStore {
    async fn add_device(&self, device: &TrustedDevice) -> Result<(), StoreError> {
        self.put_new_session_item(to_item(device, device_key(&device.token_hash))?)
            .await
    }

    async fn device(
        &self,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<Option<TrustedDevice>, StoreError> {
        let device: Option<TrustedDevice> = self
            .get_item(&self.sessions_table, device_key(token_hash))
            .await?;
        Ok(device.filter(|d| d.expires_at > now))
    }
}
