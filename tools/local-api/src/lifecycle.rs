//! Lifecycle events, locally: nothing goes to EventBridge; each event is appended as one JSON
//! line to the data directory's `events.jsonl` and served at `GET /_dev/events` (newest first,
//! `?type=user.deleted` filters), beside the mail.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use shared::events::{EventError, EventSink, LifecycleEvent};

/// Keeps every event as a line of one file.
#[derive(Debug, Clone)]
pub struct FolderEvents {
    file: PathBuf,
    /// One writer at a time, so lines never interleave.
    lock: Arc<std::sync::Mutex<()>>,
}

impl FolderEvents {
    pub fn new(file: impl Into<PathBuf>) -> Self {
        Self {
            file: file.into(),
            lock: Arc::default(),
        }
    }

    /// Every kept event, newest first; only those of type `kind` when given.
    pub fn events(&self, kind: Option<&str>) -> std::io::Result<Vec<LifecycleEvent>> {
        let text = match std::fs::read_to_string(&self.file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut events: Vec<LifecycleEvent> = text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .filter(|e: &LifecycleEvent| kind.is_none_or(|kind| e.kind == kind))
            .collect();
        events.reverse();
        Ok(events)
    }
}

#[async_trait]
impl EventSink for FolderEvents {
    async fn put(&self, event: &LifecycleEvent) -> Result<(), EventError> {
        let mut line =
            serde_json::to_vec(event).map_err(|e| EventError::Rejected(e.to_string()))?;
        line.push(b'\n');
        let (file, lock) = (self.file.clone(), self.lock.clone());
        tokio::task::spawn_blocking(move || {
            let _one_writer = lock.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)?
                .write_all(&line)
        })
        .await
        .map_err(|e| EventError::Transient(e.to_string()))?
        .map_err(|e| EventError::Transient(e.to_string()))
    }
}
