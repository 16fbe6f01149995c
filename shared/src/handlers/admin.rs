//! The admin API's routes (`/admin/*`, the `admin` role): users, one user and its change, its
//! sessions and ending them.

use lambda_http::http::StatusCode;
use lambda_http::{Request, RequestExt};
use serde::Serialize;
use uuid::Uuid;

use super::{Outcome, page_limit, query_parameters};
use crate::clock::rfc3339;
use crate::http::{
    Caching, HttpError, RequestError, SessionsView, json_object, json_response, no_content,
    principal,
};
use crate::model::User;
use crate::service::{AuthError, AuthService, Principal, UserChange};

/// A user as an admin sees it: no hash, no secret, counts of its ways in.
#[derive(Serialize)]
struct AdminUserView<'a> {
    id: Uuid,
    email: &'a str,
    email_verified: bool,
    is_active: bool,
    roles: &'a [String],
    has_password: bool,
    mfa_enabled: bool,
    passkeys: usize,
    identities: Vec<&'a str>,
    created_at: String,
    updated_at: String,
}

impl<'a> From<&'a User> for AdminUserView<'a> {
    fn from(user: &'a User) -> Self {
        Self {
            id: user.id,
            email: &user.email,
            email_verified: user.email_verified,
            is_active: user.is_active,
            roles: &user.roles,
            has_password: user.has_password(),
            mfa_enabled: user.mfa.mfa_enabled,
            passkeys: user.passkeys.len(),
            identities: user
                .identities
                .values()
                .map(|i| i.provider.as_str())
                .collect(),
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
        }
    }
}

#[derive(Serialize)]
struct UserWrapper<'a> {
    user: AdminUserView<'a>,
}

#[derive(Serialize)]
struct UsersPage<'a> {
    users: Vec<AdminUserView<'a>>,
    next_cursor: Option<&'a str>,
}

fn admin(service: &AuthService, request: &Request) -> Result<Principal, HttpError> {
    Ok(principal(request, &service.config().issuer)?)
}

/// The `{id}` of the route; one that is no user id is no user.
fn target(request: &Request) -> Result<Uuid, HttpError> {
    request
        .path_parameters_ref()
        .and_then(|p| p.first("id"))
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| AuthError::UserNotFound.into())
}

fn one(user: &User) -> lambda_http::Response<lambda_http::Body> {
    json_response(
        StatusCode::OK,
        &UserWrapper {
            user: AdminUserView::from(user),
        },
        Caching::NoStore,
    )
}

/// `GET /admin/users?email=&cursor=&limit=`: a page of users, `next_cursor` for the next.
pub async fn list_users(service: &AuthService, request: Request) -> Outcome {
    let admin = admin(service, &request)?;
    let [email, cursor, limit]: [Option<String>; 3] =
        query_parameters(&request, &["email", "cursor", "limit"])?
            .try_into()
            .map_err(|_| AuthError::Internal("parameter count".into()))?;
    let limit = page_limit(limit)?;
    let page = service
        .admin_list_users(&admin, email.as_deref(), cursor.as_deref(), limit)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &UsersPage {
            users: page.users.iter().map(AdminUserView::from).collect(),
            next_cursor: page.next.as_deref(),
        },
        Caching::NoStore,
    ))
}

/// `GET /admin/users/{id}`.
pub async fn user(service: &AuthService, request: Request) -> Outcome {
    let admin = admin(service, &request)?;
    let user = service.admin_user(&admin, target(&request)?).await?;
    Ok(one(&user))
}

/// `PATCH /admin/users/{id}`: `{"is_active"?, "roles"?}`.
pub async fn update_user(service: &AuthService, request: Request) -> Outcome {
    let admin = admin(service, &request)?;
    let id = target(&request)?;
    let body = json_object(&request)?.ok_or(RequestError::InvalidJson)?;
    body.only(&["is_active", "roles"])?;
    let is_active = body.optional_bool("is_active")?;
    let roles = body.optional_strings("roles")?;
    let user = service
        .admin_update_user(&admin, id, UserChange { is_active, roles })
        .await?;
    Ok(one(&user))
}

/// `GET /admin/users/{id}/sessions`.
pub async fn sessions(service: &AuthService, request: Request) -> Outcome {
    let admin = admin(service, &request)?;
    let sessions = service.admin_sessions(&admin, target(&request)?).await?;
    Ok(json_response(
        StatusCode::OK,
        &SessionsView::from(sessions.as_slice()),
        Caching::NoStore,
    ))
}

/// `POST /admin/users/{id}/sessions/revoke`: `204`; every session of the user ends.
pub async fn revoke_sessions(service: &AuthService, request: Request) -> Outcome {
    let admin = admin(service, &request)?;
    service
        .admin_revoke_sessions(&admin, target(&request)?)
        .await?;
    Ok(no_content())
}

/// `DELETE /admin/users/{id}`: `204`; the account and everything keyed to it is deleted, and
/// a notice goes to its address.
pub async fn delete_user(service: &AuthService, request: Request) -> Outcome {
    let admin = admin(service, &request)?;
    service.admin_delete_user(&admin, target(&request)?).await?;
    Ok(no_content())
}
