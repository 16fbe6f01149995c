//! The admin API: users (a page at a time), one user, their activity and roles, their sessions.
//! The authorizer admits only tokens holding the `admin` role to these routes; each call checks
//! it again, and logs the admin and the user it acted on.

use std::collections::BTreeSet;

use tracing::info;
use uuid::Uuid;

use super::history::Happened;
use super::{AuthError, AuthService, Principal, SessionInfo};
use crate::model::{ADMIN_ROLE, EventKind, MAX_ROLES, User, is_role_name};
use crate::store::UserPage;
use crate::validation::normalize_email;

/// Users per page unless the request says otherwise, and the most it may ask for.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 100;

/// What `PATCH /admin/users/{id}` may change.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub is_active: Option<bool>,
    pub roles: Option<Vec<String>>,
}

fn require_admin(admin: &Principal) -> Result<(), AuthError> {
    if admin.roles.iter().any(|r| r == ADMIN_ROLE) {
        Ok(())
    } else {
        Err(AuthError::Forbidden)
    }
}

/// A role list as stored: valid names, each once, sorted, at most [`MAX_ROLES`].
fn checked_roles(roles: Vec<String>) -> Result<Vec<String>, AuthError> {
    let set: BTreeSet<String> = roles.into_iter().collect();
    if set.len() > MAX_ROLES || set.iter().any(|r| !is_role_name(r)) {
        return Err(AuthError::InvalidField {
            field: "roles",
            message: format!(
                "roles must be at most {MAX_ROLES} names matching [a-z][a-z0-9_-]{{0,31}}."
            ),
        });
    }
    Ok(set.into_iter().collect())
}

impl AuthService {
    /// `GET /admin/users`: one page of users, or the user of `email`.
    pub async fn admin_list_users(
        &self,
        admin: &Principal,
        email: Option<&str>,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<UserPage, AuthError> {
        require_admin(admin)?;
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AuthError::InvalidField {
                field: "limit",
                message: format!("limit must be 1 to {MAX_PAGE}."),
            });
        }
        if let Some(email) = email {
            let email = normalize_email(email).map_err(AuthError::InvalidEmail)?;
            let users = self
                .store
                .user_by_email(&email)
                .await?
                .into_iter()
                .collect();
            return Ok(UserPage { users, next: None });
        }
        Ok(self.store.list_users(cursor, limit).await?)
    }

    pub(super) async fn admin_target(
        &self,
        admin: &Principal,
        id: Uuid,
    ) -> Result<User, AuthError> {
        require_admin(admin)?;
        self.store
            .user_by_id(id)
            .await?
            .ok_or(AuthError::UserNotFound)
    }

    /// `GET /admin/users/{id}`.
    pub async fn admin_user(&self, admin: &Principal, id: Uuid) -> Result<User, AuthError> {
        self.admin_target(admin, id).await
    }

    /// `PATCH /admin/users/{id}`: activity and roles. Deactivation ends every session at once;
    /// new roles show in the user's tokens from their next refresh.
    pub async fn admin_update_user(
        &self,
        admin: &Principal,
        id: Uuid,
        change: UserChange,
    ) -> Result<User, AuthError> {
        let user = self.admin_target(admin, id).await?;
        let now = self.clock.now();
        if let Some(roles) = change.roles {
            let roles = checked_roles(roles)?;
            if roles != user.roles {
                self.store.set_roles(id, &roles, now).await?;
                info!(admin_id = %admin.user_id, user_id = %id, roles = %roles.join(","), "admin set roles");
                let changed = Happened::new(id, EventKind::RolesChanged)
                    .by(admin.user_id)
                    .with("roles", roles.join(","));
                self.record(changed).await;
            }
        }
        if let Some(active) = change.is_active.filter(|a| *a != user.is_active) {
            self.store.set_active(id, active, now).await?;
            info!(admin_id = %admin.user_id, user_id = %id, active, "admin set activity");
            let kind = if active {
                EventKind::Activated
            } else {
                EventKind::Deactivated
            };
            self.record(Happened::new(id, kind).by(admin.user_id)).await;
        }
        self.admin_target(admin, id).await
    }

    /// `GET /admin/users/{id}/sessions`: the user's live sessions.
    pub async fn admin_sessions(
        &self,
        admin: &Principal,
        id: Uuid,
    ) -> Result<Vec<SessionInfo>, AuthError> {
        let user = self.admin_target(admin, id).await?;
        self.live_sessions(&user, None).await
    }

    /// `POST /admin/users/{id}/sessions/revoke`: ends every session of the user at once.
    pub async fn admin_revoke_sessions(
        &self,
        admin: &Principal,
        id: Uuid,
    ) -> Result<(), AuthError> {
        self.admin_target(admin, id).await?;
        self.store.revoke_all_sessions(id).await?;
        info!(admin_id = %admin.user_id, user_id = %id, "admin ended every session");
        let ended = Happened::new(id, EventKind::SessionsEnded)
            .by(admin.user_id)
            .with("by", "admin");
        self.record(ended).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_checked_deduplicated_and_sorted() {
        let roles = checked_roles(vec!["support".into(), "admin".into(), "support".into()]);
        assert_eq!(roles.unwrap(), ["admin", "support"]);
        assert!(checked_roles(vec!["Admin".into()]).is_err());
        assert!(checked_roles((0..21).map(|i| format!("r{i}")).collect()).is_err());
        assert!(checked_roles(vec![]).unwrap().is_empty());
    }
}
