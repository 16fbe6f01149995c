//! The account itself: deleting it (`DELETE /auth/account`) and its security history
//! (`GET /auth/security-events`).

use lambda_http::Request;
use lambda_http::http::StatusCode;
use serde::Serialize;
use uuid::Uuid;

use super::{Outcome, page_limit, query_parameters};
use crate::clock::rfc3339;
use crate::http::{Caching, json_object, json_response, no_content, principal};
use crate::model::{EventKind, SecurityEvent};
use crate::passwords::Password;
use crate::service::{AccountDeletion, AuthError, AuthService, MfaCode};

/// `DELETE /auth/account`: `{"password"?, "code"?}`: the password (an account without one
/// confirms with a sign-in of the last ten minutes instead) and, with TOTP on, a code. `204`.
pub async fn delete_account(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    // An empty body is a passwordless account's whole confirmation.
    let body = json_object(&request)?;
    let (password, code) = match &body {
        Some(body) => {
            body.only(&["password", "code"])?;
            let password = body.optional_string("password")?.map(Password::new);
            let code = body
                .optional_string("code")?
                .map(|code| MfaCode::either(code, "code"))
                .transpose()?;
            (password, code)
        }
        None => (None, None),
    };
    service
        .delete_account(
            principal.user_id,
            principal.chain_id,
            AccountDeletion {
                password: password.as_ref(),
                code: code.as_ref(),
            },
        )
        .await?;
    Ok(no_content())
}

#[derive(Serialize)]
struct EventView<'a> {
    id: Uuid,
    #[serde(rename = "type")]
    kind: EventKind,
    occurred_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_prefix: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    detail: &'a std::collections::BTreeMap<String, String>,
}

impl<'a> From<&'a SecurityEvent> for EventView<'a> {
    fn from(event: &'a SecurityEvent) -> Self {
        Self {
            id: event.id,
            kind: event.kind,
            occurred_at: rfc3339(event.occurred_at),
            actor_id: event.actor_id,
            ip_prefix: event.ip_prefix.as_deref(),
            user_agent: event.user_agent.as_deref(),
            detail: &event.detail,
        }
    }
}

#[derive(Serialize)]
struct EventsPage<'a> {
    events: Vec<EventView<'a>>,
    next_cursor: Option<&'a str>,
}

/// `GET /auth/security-events?cursor=&limit=`: the user's history, newest first.
pub async fn security_events(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let [cursor, limit]: [Option<String>; 2] = query_parameters(&request, &["cursor", "limit"])?
        .try_into()
        .map_err(|_| AuthError::Internal("parameter count".into()))?;
    let limit = page_limit(limit)?;
    let page = service
        .security_events(principal.user_id, cursor.as_deref(), limit)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &EventsPage {
            events: page.events.iter().map(EventView::from).collect(),
            next_cursor: page.next.as_deref(),
        },
        Caching::NoStore,
    ))
}
