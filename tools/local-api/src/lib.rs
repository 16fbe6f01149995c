//! The local API: the whole API on one command, served the way API Gateway serves it, on the
//! embedded store (or DynamoDB), with no AWS account, no Docker and no Java.
//!
//! [`gateway`] turns HTTP requests into the API Gateway events the Lambda handlers take, routes
//! them by the one route table (`shared::routes::ROUTES`, which tests hold equal to
//! `template.yaml`) and runs the authorizer first on protected routes; [`server`] is the HTTP
//! server around it; [`runtime_api`] runs other teams' Lambda binaries behind the same
//! authorizer (`--extra-route`). Behind [`gateway`], which is the dispatch, sit `events` (HTTP
//! to API Gateway's event shapes), `extra_routes` (the `--extra-route` functions) and `dev` (the
//! `/_dev/` pages); none of them uses `gateway`.

mod dev;
mod events;
mod extra_routes;
pub mod gateway;
pub mod lifecycle;
pub mod mail;
pub mod runtime_api;
pub mod server;

use std::path::Path;
use std::sync::Arc;

use shared::mfa::MfaKeys;
use shared::store::Store;
use shared::tokens::JwkSet;
use shared::{DynamoStore, EmbeddedStore, KeyRing, SigningKey};

pub use gateway::{ExtraRouteSpec, Gateway};

/// Where the development signing key is kept, inside the data directory.
pub const SIGNING_KEY_FILE: &str = "signing-key.json";
/// The embedded store's file, inside the data directory.
pub const STORE_FILE: &str = "auth.redb";
/// Where the mail is kept, inside the data directory.
pub const MAIL_DIR: &str = "mail";
/// The file under the data directory that keeps the lifecycle events (`GET /_dev/events`).
pub const EVENTS_FILE: &str = "events.jsonl";
/// The development key that seals TOTP secrets, inside the data directory.
pub const MFA_KEY_FILE: &str = "mfa-key.txt";

/// The development signing key of `data_dir`, created on first run (readable by its owner
/// only), and the key ring around it.
pub fn load_or_create_keys(data_dir: &Path) -> Result<(KeyRing, bool), String> {
    let path = data_dir.join(SIGNING_KEY_FILE);
    let (key, created) = match std::fs::read_to_string(&path) {
        Ok(jwk) => {
            let key = SigningKey::from_private_jwk(jwk.trim())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            (key, false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate("local-dev").map_err(|e| e.to_string())?;
            let jwk = key.private_jwk_json().map_err(|e| e.to_string())?;
            write_private(&path, &jwk).map_err(|e| format!("{}: {e}", path.display()))?;
            (key, true)
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let ring = KeyRing::new(Some(key), &JwkSet::default()).map_err(|e| e.to_string())?;
    Ok((ring, created))
}

/// The keys that seal TOTP secrets: `MFA_ENCRYPTION_KEY` when set, else the development key of
/// `data_dir`, created on first run (readable by its owner only).
pub fn load_or_create_mfa_keys(data_dir: &Path) -> Result<MfaKeys, String> {
    if let Some(value) = std::env::var("MFA_ENCRYPTION_KEY")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        return MfaKeys::parse(value.trim()).map_err(|e| e.to_string());
    }
    let path = data_dir.join(MFA_KEY_FILE);
    let entry = match std::fs::read_to_string(&path) {
        Ok(entry) => entry,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let entry = MfaKeys::generate_entry("local-dev").map_err(|e| e.to_string())?;
            write_private(&path, &entry).map_err(|e| format!("{}: {e}", path.display()))?;
            entry
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    MfaKeys::parse(entry.trim()).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

/// The store the local server runs on.
pub enum LocalStore {
    Embedded(EmbeddedStore),
    Dynamo(DynamoStore),
}

impl LocalStore {
    /// DynamoDB at `endpoint` (tables created if missing), else the embedded store in
    /// `data_dir`.
    pub async fn open(
        data_dir: &Path,
        dynamodb_endpoint: Option<&str>,
        users_table: &str,
        sessions_table: &str,
        history_table: &str,
    ) -> Result<Self, String> {
        match dynamodb_endpoint {
            Some(endpoint) => {
                let client = DynamoStore::client_for_endpoint(endpoint).await;
                let store = DynamoStore::new(client, users_table, sessions_table, history_table);
                store
                    .create_tables()
                    .await
                    .map_err(|e| format!("DynamoDB at {endpoint}: {e}"))?;
                Ok(Self::Dynamo(store))
            }
            None => {
                let store =
                    EmbeddedStore::open(data_dir.join(STORE_FILE)).map_err(|e| e.to_string())?;
                Ok(Self::Embedded(store))
            }
        }
    }

    pub fn as_store(&self) -> Arc<dyn Store> {
        match self {
            Self::Embedded(store) => Arc::new(store.clone()),
            Self::Dynamo(store) => Arc::new(store.clone()),
        }
    }

    /// Makes the embedded store's lazy writes durable (DynamoDB writes always are).
    pub async fn flush(&self) {
        if let Self::Embedded(store) = self
            && let Err(e) = store.flush().await
        {
            tracing::warn!(error = %e, "could not flush the store");
        }
    }
}
