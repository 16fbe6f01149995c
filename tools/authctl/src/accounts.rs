//! `authctl deactivate`, `authctl reactivate`, `authctl grant-role` and `authctl revoke-role`.

use std::path::PathBuf;
use std::sync::Arc;

use shared::model::{MAX_ROLES, is_role_name};
use shared::store::Store;
use shared::validation::normalize_email;
use shared::{Clock, Config, Defaults, DynamoStore, EmbeddedStore, SystemClock};

use crate::USAGE;

/// The positional arguments (`EMAIL`, and `ROLE` where asked for) and `--data-dir`.
fn parse(args: &[String], positional: usize) -> Result<(Vec<String>, Option<PathBuf>), String> {
    let mut values = Vec::new();
    let mut data_dir = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--data-dir" => {
                data_dir = Some(PathBuf::from(
                    args.next().ok_or("--data-dir needs a value")?,
                ))
            }
            other if values.len() < positional && !other.starts_with("--") => {
                values.push(other.to_owned())
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if values.len() < positional {
        return Err(format!(
            "which email{}?\n{USAGE}",
            if positional > 1 { " and role" } else { "" }
        ));
    }
    Ok((values, data_dir))
}

/// Grants or revokes a role of the account of an email. Tokens carry the change from the
/// user's next refresh on.
pub async fn change_role(args: &[String], grant: bool) -> Result<String, String> {
    let (values, data_dir) = parse(args, 2)?;
    let email = normalize_email(&values[0]).map_err(|e| e.message)?;
    let role = &values[1];
    if !is_role_name(role) {
        return Err(format!(
            "{role:?} is not a role name: [a-z][a-z0-9_-]{{0,31}}"
        ));
    }
    let store = open_store(data_dir).await?;
    let user = store
        .user_by_email(&email)
        .await
        .map_err(|e| e.to_string())?
        .ok_or(format!("no account for {email}"))?;
    let mut roles = user.roles.clone();
    roles.retain(|r| r != role);
    if grant {
        if roles.len() >= MAX_ROLES {
            return Err(format!(
                "{email} holds the most roles a user may ({MAX_ROLES})"
            ));
        }
        roles.push(role.clone());
        roles.sort();
    }
    store
        .set_roles(user.id, &roles, SystemClock.now())
        .await
        .map_err(|e| e.to_string())?;
    let verb = if grant { "granted" } else { "revoked" };
    Ok(format!(
        "{verb} {role} for {email} (user {}): roles now [{}]; tokens carry it from the next refresh",
        user.id,
        roles.join(", ")
    ))
}

/// Activates or deactivates the account of an email; deactivation ends all its sessions.
pub async fn set_active(args: &[String], active: bool) -> Result<String, String> {
    let (values, data_dir) = parse(args, 1)?;
    let email = normalize_email(&values[0]).map_err(|e| e.message)?;
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
        &config.history_table,
    )))
}
