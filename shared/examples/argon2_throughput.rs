//! Argon2id verifications per second with N threads and nothing else: the ceiling for logins.
//!
//! `cargo run --release -p shared --example argon2_throughput -- [THREADS] [SECONDS]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shared::{Password, Passwords};

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2)
    });
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let password = Password::new("correct horse battery staple");
    let hash = runtime
        .block_on(Passwords::new().hash(&password))
        .expect("hash");

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, done, hash, password) =
                (stop.clone(), done.clone(), hash.clone(), password.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                // One verification per thread at a time, like a single-core request path.
                let passwords = Passwords::new();
                while !stop.load(Ordering::Relaxed) {
                    runtime
                        .block_on(passwords.verify(&password, Some(&hash)))
                        .expect("verify");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("worker");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let count = done.load(Ordering::Relaxed);
    println!(
        "argon2id verify (m=19456, t=2, p=1): {threads} threads, {count} in {elapsed:.1} s = {:.1}/s",
        count as f64 / elapsed
    );
}
