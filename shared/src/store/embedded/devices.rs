//! Trusted devices.

use super::*;

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
