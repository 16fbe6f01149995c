//! Lifecycle events for the rest of a team's system: `user.registered`, `user.deleted` and the
//! other types of [`EventKind::bus_type`], put on an Amazon EventBridge bus (`EVENT_BUS_NAME`)
//! after the answer, the way mail goes out.
//!
//! Each event is `{id, type, user_id, occurred_at, detail}`: the entry's id, its type, the
//! user, RFC 3339 UTC time, and small non-secret facts, never a token, code, password, hash or
//! address. On the bus its `source` is [`SOURCE`] and its `detail-type` the type. A failed put
//! is retried until [`DELIVERY_DEADLINE`]; what still fails is counted
//! ([`crate::metrics::EVENTS_NOT_DELIVERED`], which an alarm watches) and logged by type.

pub mod eventbridge;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use uuid::Uuid;

use crate::clock::rfc3339;
use crate::model::SecurityEvent;

/// The `source` of every event on the bus, for a rule's pattern.
pub const SOURCE: &str = "lambda-auth";

/// How long one event may take to go out, retries included.
pub const DELIVERY_DEADLINE: Duration = Duration::from_secs(6);
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// One lifecycle event, as it goes on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleEvent {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub user_id: Uuid,
    /// RFC 3339 UTC.
    pub occurred_at: String,
    pub detail: BTreeMap<String, String>,
}

impl LifecycleEvent {
    /// The bus's event for a history entry, if its kind is one.
    pub fn of(event: &SecurityEvent) -> Option<Self> {
        let kind = event.kind.bus_type()?;
        let mut detail = event.detail.clone();
        if let Some(actor) = event.actor_id {
            detail.insert("actor_id".into(), actor.to_string());
        }
        Some(Self {
            id: event.id,
            kind: kind.to_owned(),
            user_id: event.user_id,
            occurred_at: rfc3339(event.occurred_at),
            detail,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The bus could not take it now (network, throttling, its own errors): try again.
    #[error("event not delivered for now: {0}")]
    Transient(String),
    /// The bus refused it (no such bus, no permission): trying again won't help.
    #[error("event refused: {0}")]
    Rejected(String),
}

/// Where events go: EventBridge in AWS ([`eventbridge::EventBridgeSink`]), a folder the local
/// server serves at `GET /_dev/events`.
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn put(&self, event: &LifecycleEvent) -> Result<(), EventError>;
}

/// Events waiting to go out after the answer. In Lambda, the function's internal extension
/// waits for [`Events::idle`] before the execution environment may freeze.
#[derive(Clone)]
pub struct Events {
    sink: Arc<dyn EventSink>,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("pending", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Events {
    pub fn new(sink: Arc<dyn EventSink>) -> Self {
        Self {
            sink,
            tasks: TaskTracker::new(),
        }
    }

    /// Puts `event` on the bus in the background.
    pub fn publish(&self, event: LifecycleEvent) {
        use tracing::Instrument;
        let sink = self.sink.clone();
        self.tasks.spawn(
            async move {
                tokio::task::yield_now().await;
                deliver(&*sink, &event).await
            }
            .in_current_span(),
        );
    }

    /// Waits until every event handed over so far has gone out or given up.
    pub async fn idle(&self) {
        self.tasks.close();
        self.tasks.wait().await;
        self.tasks.reopen();
    }
}

/// Puts `event`, retrying transient failures until [`DELIVERY_DEADLINE`].
pub async fn deliver(sink: &dyn EventSink, event: &LifecycleEvent) {
    let attempts = async {
        let mut backoff = RETRY_BACKOFF;
        loop {
            match sink.put(event).await {
                Ok(()) => return Ok(()),
                Err(EventError::Transient(e)) => {
                    warn!(event = %event.kind, error = %e, "event not delivered; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(e @ EventError::Rejected(_)) => return Err(e.to_string()),
            }
        }
    };
    let failure = match tokio::time::timeout(DELIVERY_DEADLINE, attempts).await {
        Ok(Ok(())) => {
            info!(event = %event.kind, "event delivered");
            return;
        }
        Ok(Err(e)) => e,
        Err(_) => "delivery deadline passed".to_owned(),
    };
    crate::metrics::event_not_delivered();
    warn!(event = %event.kind, error = %failure, "event not delivered");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventKind;

    #[test]
    fn only_lifecycle_kinds_go_on_the_bus_with_their_admin() {
        let admin = Uuid::new_v4();
        let entry = SecurityEvent {
            id: Uuid::now_v7(),
            user_id: Uuid::new_v4(),
            kind: EventKind::Deactivated,
            occurred_at: 1_795_788_000,
            actor_id: Some(admin),
            ip_prefix: Some("203.0.113.0/24".into()),
            user_agent: Some("curl/8".into()),
            detail: BTreeMap::new(),
            expires_at: 1_795_788_000 + 90 * 86_400,
        };
        let event = LifecycleEvent::of(&entry).expect("a lifecycle event");
        assert_eq!(event.kind, "user.deactivated");
        assert_eq!(event.occurred_at, "2026-11-27T14:00:00Z");
        assert_eq!(event.detail["actor_id"], admin.to_string());
        // What the history keeps of the request stays out of what other systems see.
        let json = serde_json::to_string(&event).unwrap();
        assert!(
            !json.contains("203.0.113") && !json.contains("curl"),
            "{json}"
        );
        let signed_in = SecurityEvent {
            kind: EventKind::SignedIn,
            ..entry
        };
        assert!(LifecycleEvent::of(&signed_in).is_none());
    }
}
