//! What happened to an account: each change is written to the user's security history (read
//! back at `GET /auth/security-events`) and, for the lifecycle kinds, put on the EventBridge bus
//! after the answer.
//!
//! The history is written before the answer (one `PutItem`), so a change is listed as soon as
//! it is answered. A failed write is logged and counted, never the caller's failure: the change
//! itself has happened. Where the entry's request came from (its source address cut to a
//! prefix, its `User-Agent`) is taken from the request being served ([`RequestOrigin::scope`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use tracing::warn;
use uuid::Uuid;

use super::{AuthError, AuthService};
use crate::events::{Events, LifecycleEvent};
use crate::model::{EventKind, HISTORY_RETENTION_SECS, SecurityEvent};
use crate::store::{HistoryPage, Store};

/// Entries per page unless the request says otherwise, and the most it may ask for.
pub const HISTORY_PAGE: usize = 50;
pub const MAX_HISTORY_PAGE: usize = 100;
/// A `User-Agent` is kept to this many characters.
const MAX_USER_AGENT_CHARS: usize = 200;

/// Where the request being served came from, as its history entries show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

tokio::task_local! {
    static ORIGIN: RequestOrigin;
}

impl RequestOrigin {
    /// Runs `work` (a request's handler) with this origin.
    pub async fn scope<F: std::future::Future>(self, work: F) -> F::Output {
        ORIGIN.scope(self, work).await
    }

    pub(crate) fn current() -> Self {
        ORIGIN.try_with(Clone::clone).unwrap_or_default()
    }
}

/// An address as the history shows it: its /24 (IPv4) or /48 (IPv6), enough to tell a country
/// or provider, not a household.
pub fn ip_prefix(ip: &str) -> Option<String> {
    match ip.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            Some(format!("{a}.{b}.{c}.0/24"))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => ip_prefix(&v4.to_string()),
            None => {
                let s = v6.segments();
                Some(format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]))
            }
        },
    }
}

/// One thing that happened to a user, being recorded.
#[derive(Debug, Clone)]
pub(crate) struct Happened {
    user_id: Uuid,
    kind: EventKind,
    actor_id: Option<Uuid>,
    detail: BTreeMap<String, String>,
}

impl Happened {
    pub(crate) fn new(user_id: Uuid, kind: EventKind) -> Self {
        Self {
            user_id,
            kind,
            actor_id: None,
            detail: BTreeMap::new(),
        }
    }

    /// Done by this admin.
    pub(crate) fn by(mut self, admin: Uuid) -> Self {
        self.actor_id = Some(admin);
        self
    }

    /// A small, non-secret fact about it.
    pub(crate) fn with(mut self, name: &str, value: impl ToString) -> Self {
        self.detail.insert(name.to_owned(), value.to_string());
        self
    }
}

impl AuthService {
    /// Records `happened` in the user's history and, for a lifecycle kind, on the bus.
    pub(crate) async fn record(&self, happened: Happened) {
        let event = self.entry(happened);
        write(&*self.store, self.events.as_ref(), event).await;
    }

    /// [`Self::record`] after the answer, where the function has work after its answers:
    /// for what must not change a refused request's timing (a lockout of an address that may
    /// or may not have an account).
    pub(crate) fn record_later(&self, happened: Happened) {
        let event = self.entry(happened);
        match &self.outbox {
            Some(outbox) => {
                let (store, events) = (self.store.clone(), self.events.clone());
                outbox.spawn(async move { write(&*store, events.as_ref(), event).await });
            }
            None => warn!(kind = ?event.kind, "security history entry not written: no outbox"),
        }
    }

    fn entry(&self, happened: Happened) -> SecurityEvent {
        let now = self.clock.now();
        let origin = RequestOrigin::current();
        SecurityEvent {
            id: Uuid::now_v7(),
            user_id: happened.user_id,
            kind: happened.kind,
            occurred_at: now,
            actor_id: happened.actor_id,
            ip_prefix: origin.source_ip.as_deref().and_then(ip_prefix),
            user_agent: origin
                .user_agent
                .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect()),
            detail: happened.detail,
            expires_at: now + HISTORY_RETENTION_SECS,
        }
    }

    /// `GET /auth/security-events`: the signed-in user's history, newest first.
    pub async fn security_events(
        &self,
        user_id: Uuid,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<HistoryPage, AuthError> {
        let limit = limit.unwrap_or(HISTORY_PAGE);
        if !(1..=MAX_HISTORY_PAGE).contains(&limit) {
            return Err(AuthError::InvalidField {
                field: "limit",
                message: format!("limit must be 1 to {MAX_HISTORY_PAGE}."),
            });
        }
        self.active_user(user_id).await?;
        let now = self.clock.now();
        Ok(self.store.history(user_id, cursor, limit, now).await?)
    }
}

/// Writes `event` to the history (unless its kind is the bus's alone) and hands a lifecycle
/// event to the bus.
async fn write(store: &dyn Store, events: Option<&Events>, event: SecurityEvent) {
    if event.kind.in_history()
        && let Err(e) = store.record_event(&event).await
    {
        warn!(kind = ?event.kind, error = %e, "security history entry not written");
    }
    if let (Some(events), Some(lifecycle)) = (events, LifecycleEvent::of(&event)) {
        events.publish(lifecycle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_cut_to_a_prefix() {
        assert_eq!(ip_prefix("203.0.113.77").as_deref(), Some("203.0.113.0/24"));
        assert_eq!(
            ip_prefix("2001:db8:1234:5678::1").as_deref(),
            Some("2001:db8:1234::/48")
        );
        assert_eq!(
            ip_prefix("::ffff:198.51.100.9").as_deref(),
            Some("198.51.100.0/24")
        );
        assert_eq!(ip_prefix("not an address"), None);
    }
}
