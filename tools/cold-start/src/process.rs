//! A started function's process: its log, kept for a failure's report, and waiting on it
//! unless it exits.

use super::*;

/// The last lines a function wrote, stdout and stderr together.
#[derive(Clone, Default)]
pub(super) struct Log(Arc<Mutex<VecDeque<String>>>);

impl Log {
    pub(super) fn follow(
        &self,
        stream: impl AsyncRead + Unpin + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let log = self.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut tail = log.0.lock().unwrap();
                if tail.len() == LOG_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        })
    }

    pub(super) fn tail(&self) -> String {
        let tail = self.0.lock().unwrap();
        if tail.is_empty() {
            return "    (nothing)".to_owned();
        }
        tail.iter()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs `step` unless the process exits first, or `limit` passes.
pub(super) async fn unless_exited<T>(
    child: &mut tokio::process::Child,
    what: &str,
    limit: Duration,
    step: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::select! {
        result = tokio::time::timeout(limit, step) => {
            result.unwrap_or_else(|_| Err(format!("{what}: nothing after {limit:?}")))
        }
        status = child.wait() => Err(match status {
            Ok(status) => format!("{what}: the process exited ({status})"),
            Err(e) => format!("{what}: {e}"),
        }),
    }
}
