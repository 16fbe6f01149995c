//! `authctl deactivate` and `authctl reactivate`.

use std::path::PathBuf;
use std::sync::Arc;

use shared::store::Store;
use shared::validation::normalize_email;
use shared::{Clock, Config, Defaults, DynamoStore, EmbeddedStore, SystemClock};

use crate::USAGE;

/// Activates or deactivates the account of an email; deactivation ends all its sessions.
pub async fn set_active(args: &[String], active: bool) -> Result<String, String> {
    let mut email = None;
    let mut data_dir = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--data-dir" => {
                data_dir = Some(PathBuf::from(
                    args.next().ok_or("--data-dir needs a value")?,
                ))
            }
            other if email.is_none() && !other.starts_with("--") => email = Some(other.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let email = email.ok_or(format!("which email?\n{USAGE}"))?;
    let email = normalize_email(&email).map_err(|e| e.message)?;
    let store = open_store(data_dir).await?;

    let user = store
        .user_by_email(&email)
        .await
        .map_err(|e| e.to_string())?
        .ok_or(format!("no account for {email}"))?;
    store
        .set_active(user.id, active, SystemClock.now())
        .await
        .map_err(|e| e.to_string())?;
    Ok(if active {
        format!(
            "reactivated {email} (user {}): it can sign in again",
            user.id
        )
    } else {
        format!(
            "deactivated {email} (user {}): sign-in refused, every session ended",
            user.id
        )
    })
}

async fn open_store(data_dir: Option<PathBuf>) -> Result<Arc<dyn Store>, String> {
    if let Some(dir) = data_dir {
        let store = EmbeddedStore::open(dir.join("auth.redb")).map_err(|e| e.to_string())?;
        return Ok(Arc::new(store));
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let defaults = Defaults {
        issuer: Some("authctl".into()),
        audience: Some("authctl".into()),
        ..Defaults::default()
    };
    let config = Config::from_lookup(env, &defaults).map_err(|e| e.to_string())?;
    let client = match env("AWS_ENDPOINT_URL_DYNAMODB") {
        Some(endpoint) => DynamoStore::client_for_endpoint(&endpoint).await,
        None => DynamoStore::client_from_env().await,
    };
    Ok(Arc::new(DynamoStore::new(
        client,
        &config.users_table,
        &config.sessions_table,
    )))
}
