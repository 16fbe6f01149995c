//! Argon2id computations per second with N threads and nothing else: the ceiling for logins.
//! Each thread computes on its own with its own working memory, no runtime and no queue.
//!
//! `cargo run --release -p shared --example argon2_throughput -- [THREADS] [SECONDS]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use shared::passwords::{OWASP_M_COST, OWASP_P_COST, OWASP_T_COST};

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2)
    });
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let params = Params::new(OWASP_M_COST, OWASP_T_COST, OWASP_P_COST, None).expect("params");

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, done, params) = (stop.clone(), done.clone(), params.clone());
            std::thread::spawn(move || {
                let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
                let mut memory = vec![Block::default(); params.block_count()];
                let mut output = [0u8; 32];
                while !stop.load(Ordering::Relaxed) {
                    argon2
                        .hash_password_into_with_memory(
                            b"correct horse battery staple",
                            b"sixteen byte salt",
                            &mut output,
                            &mut memory,
                        )
                        .expect("argon2");
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
        "argon2id (m=19456, t=2, p=1) alone: {threads} threads, {count} in {elapsed:.1} s = {:.1}/s",
        count as f64 / elapsed
    );
}
