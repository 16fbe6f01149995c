//! Mail, locally: nothing is sent; each message is kept as a JSON file in the data directory's
//! `mail/` folder and served at `GET /_dev/mail` (JSON, newest first, `?to=ADDRESS` filters)
//! and `GET /_dev/inbox` (an HTML inbox whose links can be clicked). Only the local server
//! serves `/_dev/`; no Lambda function does. `sent_at` is RFC 3339 UTC, as every time in the API
//! is; the file's name, `{milliseconds since the epoch}-{id}.json`, orders the inbox.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use shared::clock::rfc3339;
use shared::mail::{MailError, Mailer, Message};

/// A kept message, as `/_dev/mail` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// When it was kept, RFC 3339 UTC with second precision (`2026-12-03T12:00:00Z`), as every
    /// time in the API. The inbox is ordered by the file's name, which has the milliseconds.
    pub sent_at: String,
}

/// Keeps every message as a file in one folder.
#[derive(Debug, Clone)]
pub struct FolderMailer {
    dir: PathBuf,
}

impl FolderMailer {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every kept message, newest first; only those to `to` when given.
    pub fn messages(&self, to: Option<&str>) -> std::io::Result<Vec<StoredMessage>> {
        let mut messages = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path)?;
                if let Ok(message) = serde_json::from_str::<StoredMessage>(&text) {
                    messages.push((sent_at_millis(&path), message));
                }
            }
        }
        messages.retain(|(_, m)| to.is_none_or(|to| m.to.eq_ignore_ascii_case(to)));
        messages.sort_by(|(a_ms, a), (b_ms, b)| b_ms.cmp(a_ms).then(b.id.cmp(&a.id)));
        Ok(messages.into_iter().map(|(_, m)| m).collect())
    }
}

/// The milliseconds a kept message's file name starts with (`{milliseconds}-{id}.json`).
fn sent_at_millis(path: &Path) -> u128 {
    path.file_stem()
        .and_then(|stem| stem.to_str())
        .and_then(|stem| stem.split_once('-'))
        .and_then(|(millis, _)| millis.parse().ok())
        .unwrap_or_default()
}

#[async_trait]
impl Mailer for FolderMailer {
    async fn send(&self, message: &Message) -> Result<(), MailError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let millis = now.as_millis();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let stored = StoredMessage {
            id: id.clone(),
            to: message.to.clone(),
            subject: message.subject.clone(),
            text: message.text.clone(),
            html: message.html.clone(),
            sent_at: rfc3339(now.as_secs() as i64),
        };
        let json =
            serde_json::to_vec_pretty(&stored).map_err(|e| MailError::Rejected(e.to_string()))?;
        let (dir, path) = (
            self.dir.clone(),
            self.dir.join(format!("{millis}-{id}.json")),
        );
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            // Written aside and renamed, so a listing never sees half a message.
            let partial = path.with_extension("part");
            std::fs::write(&partial, json)?;
            std::fs::rename(partial, path)
        })
        .await
        .map_err(|e| MailError::Transient(e.to_string()))?
        .map_err(|e| MailError::Transient(e.to_string()))
    }
}

/// `/_dev/inbox`: each message with its text, every link in it clickable.
pub fn inbox_page(messages: &[StoredMessage]) -> String {
    use html_escape::encode_text as text;
    let mut page = String::from(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Local inbox</title>\n</head>\n<body>\n<main>\n<h1>Local inbox</h1>\n",
    );
    if messages.is_empty() {
        page.push_str("<p>No mail yet.</p>\n");
    }
    for message in messages {
        page.push_str(&format!(
            "<article>\n<h2>{}</h2>\n<p>To: {}</p>\n<pre>",
            text(&message.subject),
            text(&message.to)
        ));
        for (i, line) in message.text.lines().enumerate() {
            if i > 0 {
                page.push('\n');
            }
            let trimmed = line.trim();
            if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
                let href = html_escape::encode_double_quoted_attribute(trimmed);
                page.push_str(&format!("<a href=\"{href}\">{}</a>", text(trimmed)));
            } else {
                page.push_str(&text(line));
            }
        }
        page.push_str("</pre>\n</article>\n");
    }
    page.push_str("</main>\n</body>\n</html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_messages_and_lists_them_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = FolderMailer::new(dir.path().join("mail"));
        assert!(mailer.messages(None).unwrap().is_empty());
        for to in ["a@example.com", "b@example.com"] {
            let message = Message {
                to: to.into(),
                subject: format!("to {to}"),
                text: "Open\nhttps://x.example/verify-email#token=t&u\n".into(),
                html: "<p>hi</p>".into(),
            };
            mailer.send(&message).await.unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let all = mailer.messages(None).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].to, "b@example.com");
        for message in &all {
            // RFC 3339 UTC with second precision, as every time in the API.
            let t = time::OffsetDateTime::parse(
                &message.sent_at,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap_or_else(|e| panic!("sent_at {:?}: {e}", message.sent_at));
            assert_eq!(message.sent_at, rfc3339(t.unix_timestamp()));
        }
        let only_a = mailer.messages(Some("A@example.com")).unwrap();
        assert_eq!(only_a.len(), 1);
        assert_eq!(only_a[0].subject, "to a@example.com");
        let page = inbox_page(&all);
        assert!(page.contains("<a href=\"https://x.example/verify-email#token=t&amp;u\">"));
    }
}
