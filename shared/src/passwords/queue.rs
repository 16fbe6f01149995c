//! The blocking work queue that Argon2 jobs wait in, drained by at most one blocking thread per
//! CPU. A thread that finishes a job starts the next one at once, instead of waking an async
//! task to hand the turn on, which on a busy machine left a core idle for a millisecond or more
//! per hash. A job whose caller went away (the request was dropped) is skipped.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// The job panicked; its answer is lost, the queue goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobFailed;

/// Jobs waiting for a thread, drained by at most `max_threads` blocking threads.
#[derive(Debug)]
pub struct WorkQueue {
    state: Mutex<QueueState>,
    max_threads: usize,
    /// Jobs that ran (skipped ones do not count).
    jobs_run: AtomicU64,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    threads: usize,
}

impl std::fmt::Debug for QueueState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueState")
            .field("jobs", &self.jobs.len())
            .field("threads", &self.threads)
            .finish()
    }
}

impl WorkQueue {
    pub fn new(max_threads: usize) -> Self {
        Self {
            state: Mutex::default(),
            max_threads: max_threads.max(1),
            jobs_run: AtomicU64::new(0),
        }
    }

    /// Runs `work` on a blocking thread and waits for its answer.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JobFailed> {
        let (sender, receiver) = oneshot::channel();
        let queue = self.clone();
        self.submit(Box::new(move || {
            // Nobody waits for the answer any more: skip the work.
            if !sender.is_closed() {
                queue.jobs_run.fetch_add(1, Ordering::Relaxed);
                let _ = sender.send(work());
            }
        }));
        // A job that panicked dropped its sender.
        receiver.await.map_err(|_| JobFailed)
    }

    pub fn jobs_run(&self) -> u64 {
        self.jobs_run.load(Ordering::Relaxed)
    }

    fn submit(self: &Arc<Self>, job: Job) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.jobs.push_back(job);
        if state.threads < self.max_threads {
            state.threads += 1;
            drop(state);
            let queue = self.clone();
            tokio::task::spawn_blocking(move || queue.drain());
        }
    }

    /// Runs jobs until none is left; a panicking job loses its answer, not the thread's turn.
    fn drain(&self) {
        loop {
            let job = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                match state.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        state.threads -= 1;
                        return;
                    }
                }
            };
            let _ = catch_unwind(AssertUnwindSafe(job));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn with_threads(max_threads: usize) -> Arc<WorkQueue> {
        Arc::new(WorkQueue::new(max_threads))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_jobs_run_at_once_than_threads_allowed_and_all_finish() {
        let queue = with_threads(2);
        let running = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for i in 0..12u64 {
            let (queue, running, most) = (queue.clone(), running.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                queue
                    .run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        running.fetch_sub(1, Ordering::SeqCst);
                        i
                    })
                    .await
                    .unwrap()
            }));
        }
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        assert_eq!(answers, (0..12).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 2);
        // A thread hands over its last answer before it sees the queue empty and leaves.
        for _ in 0..5_000 {
            if queue.state.lock().unwrap().threads == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let state = queue.state.lock().unwrap();
        assert_eq!((state.jobs.len(), state.threads), (0, 0), "{state:?}");
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_queue_keeps_working() {
        let queue = with_threads(1);
        let failed = queue.run(|| -> u32 { panic!("boom") }).await;
        assert!(matches!(failed, Err(JobFailed)));
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), queue.run(|| 7));
        assert_eq!(next.await.expect("the queue stalled").unwrap(), 7);
    }

    #[tokio::test]
    async fn a_job_nobody_waits_for_any_more_is_skipped() {
        let queue = with_threads(1);
        // Hold the only thread until the second job's caller has gone away.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let queue = queue.clone();
            async move { queue.run(move || held.recv().is_ok()).await }
        });
        let ran = Arc::new(AtomicBool::new(false));
        let abandoned = {
            let ran = ran.clone();
            queue.run(move || ran.store(true, Ordering::SeqCst))
        };
        // Polled once, so the job is queued; then dropped, as a cancelled request would be.
        assert!(poll_once(abandoned).await);
        release.send(()).unwrap();
        assert!(first.await.unwrap().unwrap());
        assert_eq!(queue.run(|| 1).await.unwrap(), 1);
        assert!(!ran.load(Ordering::SeqCst), "the abandoned job ran");
        assert_eq!(queue.jobs_run(), 2);
    }

    /// Polls `future` once and drops it; true when it was still pending.
    async fn poll_once<F: std::future::Future>(future: F) -> bool {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx).is_pending()))
            .await
    }
}
