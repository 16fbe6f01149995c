//! Throttling on both stores: per-email consecutive failures with doubling waits, per-IP
//! budgets for failed logins and registrations, no Argon2 work for a refused attempt, and no
//! difference between accounts that exist and accounts that do not.
//!
//! Beside it, `edge`: whose address the per-IP budgets count behind the CloudFront edge; and
//! `login_equal_work`: a failed login for an unknown address does the same work as
//! one for an existing address.

mod edge;
mod login_equal_work;

use futures::future::join_all;
use integration_tests::{Harness, on_both_stores};
use shared::service::AuthError;
use shared::{Clock, Password};

const PASSWORD: &str = "correct horse battery staple";
const IP: Option<&str> = Some("203.0.113.9");

async fn login(
    h: &Harness,
    email: &str,
    password: &str,
    ip: Option<&str>,
) -> Result<(), AuthError> {
    h.service
        .login(email, &Password::new(password), ip)
        .await
        .map(|_| ())
}

fn retry_after(result: &Result<(), AuthError>) -> Option<u64> {
    match result {
        Err(AuthError::TooManyRequests { retry_after_secs }) => Some(*retry_after_secs),
        _ => None,
    }
}

on_both_stores!(
    failures_lock_an_email_with_doubling_waits,
    unknown_emails_are_throttled_exactly_like_real_ones,
    a_success_resets_the_count,
    a_burst_of_parallel_guesses_gets_no_more_than_the_threshold,
    the_wait_is_capped_at_fifteen_minutes,
    failed_logins_per_ip_are_limited,
    registrations_per_ip_are_limited,
);

/// Runs the lockout sequence for `email` and returns the waits that were demanded.
async fn lockout_sequence(h: &Harness, email: &str) -> Vec<u64> {
    let mut waits = Vec::new();
    for _ in 0..4 {
        assert!(matches!(
            login(h, email, "wrong password", None).await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    for _ in 0..4 {
        // The attempt that reaches the threshold is still checked...
        assert!(matches!(
            login(h, email, "wrong password", None).await,
            Err(AuthError::InvalidCredentials)
        ));
        // ...and the next one is refused without any Argon2 work, even with the right password.
        let work = h.service.passwords().work_done();
        let refused = login(h, email, PASSWORD, None).await;
        assert_eq!(
            h.service.passwords().work_done(),
            work,
            "a refused attempt does no Argon2 work"
        );
        let wait = retry_after(&refused).unwrap_or_else(|| panic!("not throttled: {refused:?}"));
        waits.push(wait);
        h.clock.advance(wait as i64);
    }
    waits
}

async fn failures_lock_an_email_with_doubling_waits(h: Harness) {
    h.service
        .register("lock@example.com", &Password::new(PASSWORD), None)
        .await
        .unwrap();
    assert_eq!(lockout_sequence(&h, "lock@example.com").await, [1, 2, 4, 8]);
}

async fn unknown_emails_are_throttled_exactly_like_real_ones(h: Harness) {
    h.service
        .register("real@example.com", &Password::new(PASSWORD), None)
        .await
        .unwrap();
    let real = lockout_sequence(&h, "real@example.com").await;
    let unknown = lockout_sequence(&h, "nobody@example.com").await;
    assert_eq!(real, unknown);
    // The address is counted normalised.
    let shouting = login(&h, "  NOBODY@Example.com ", "wrong password", None).await;
    assert!(
        matches!(shouting, Err(AuthError::InvalidCredentials)),
        "{shouting:?}"
    );
    assert!(retry_after(&login(&h, "nobody@example.com", "wrong password", None).await).is_some());
}

async fn a_success_resets_the_count(h: Harness) {
    h.service
        .register("reset@example.com", &Password::new(PASSWORD), None)
        .await
        .unwrap();
    for _ in 0..4 {
        login(&h, "reset@example.com", "wrong password", None)
            .await
            .unwrap_err();
    }
    login(&h, "reset@example.com", PASSWORD, None)
        .await
        .unwrap();
    // Four more failures are allowed again before the lock.
    for _ in 0..4 {
        let result = login(&h, "reset@example.com", "wrong password", None).await;
        assert!(
            matches!(result, Err(AuthError::InvalidCredentials)),
            "{result:?}"
        );
    }
}

async fn a_burst_of_parallel_guesses_gets_no_more_than_the_threshold(h: Harness) {
    h.service
        .register("burst@example.com", &Password::new(PASSWORD), None)
        .await
        .unwrap();
    let work = h.service.passwords().work_done();
    let guesses = (0..20).map(|i| {
        let service = h.service.clone();
        tokio::spawn(async move {
            service
                .login(
                    "burst@example.com",
                    &Password::new(format!("guess {i}")),
                    None,
                )
                .await
                .map(|_| ())
        })
    });
    let results: Vec<_> = join_all(guesses)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let checked = results
        .iter()
        .filter(|r| matches!(r, Err(AuthError::InvalidCredentials)))
        .count();
    let refused = results.iter().filter(|r| retry_after(r).is_some()).count();
    assert_eq!(checked as u32, h.config.login_max_failures, "{results:?}");
    assert_eq!(checked + refused, 20, "{results:?}");
    assert_eq!(h.service.passwords().work_done() - work, checked as u64);
}

async fn the_wait_is_capped_at_fifteen_minutes(h: Harness) {
    let mut last = 0;
    for _ in 0..30 {
        match login(&h, "cap@example.com", "wrong password", None).await {
            Err(AuthError::TooManyRequests { retry_after_secs }) => {
                last = retry_after_secs;
                h.clock.advance(retry_after_secs as i64);
            }
            Err(AuthError::InvalidCredentials) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(last, 900);
}

async fn failed_logins_per_ip_are_limited(h: Harness) {
    h.service
        .register("ip@example.com", &Password::new(PASSWORD), None)
        .await
        .unwrap();
    // Successes do not use the budget.
    for _ in 0..3 {
        login(&h, "ip@example.com", PASSWORD, IP).await.unwrap();
    }
    // 30 failures, spread over many emails so no email lock gets in the way.
    for i in 0..h.config.ip_max_failed_logins {
        let result = login(&h, &format!("victim{i}@example.com"), "wrong password", IP).await;
        assert!(
            matches!(result, Err(AuthError::InvalidCredentials)),
            "{i}: {result:?}"
        );
    }
    let work = h.service.passwords().work_done();
    let refused = login(&h, "fresh@example.com", "wrong password", IP).await;
    let wait = retry_after(&refused).unwrap_or_else(|| panic!("{refused:?}"));
    assert!(wait <= 300, "{wait}");
    assert_eq!(h.service.passwords().work_done(), work);
    // Another address is not affected; nor is this one in the next window.
    assert!(matches!(
        login(
            &h,
            "fresh@example.com",
            "wrong password",
            Some("198.51.100.1")
        )
        .await,
        Err(AuthError::InvalidCredentials)
    ));
    h.clock.advance(wait as i64);
    assert!(matches!(
        login(&h, "fresh@example.com", "wrong password", IP).await,
        Err(AuthError::InvalidCredentials)
    ));
}

async fn registrations_per_ip_are_limited(h: Harness) {
    for i in 0..h.config.ip_max_registrations {
        let email = format!("new{i}@example.com");
        h.service
            .register(&email, &Password::new(PASSWORD), IP)
            .await
            .unwrap();
    }
    let work = h.service.passwords().work_done();
    let refused = h
        .service
        .register("one.more@example.com", &Password::new(PASSWORD), IP)
        .await;
    assert!(
        matches!(refused, Err(AuthError::TooManyRequests { .. })),
        "{refused:?}"
    );
    assert_eq!(
        h.service.passwords().work_done(),
        work,
        "refused before hashing"
    );
    assert!(
        h.store
            .user_by_email("one.more@example.com")
            .await
            .unwrap()
            .is_none()
    );
    // An IPv6 client is counted per /64, another /64 is not.
    let other = h
        .service
        .register(
            "v6@example.com",
            &Password::new(PASSWORD),
            Some("2001:db8::1"),
        )
        .await;
    assert!(other.is_ok());
    let now = h.clock.now();
    h.clock.set((now / 300 + 1) * 300);
    assert!(
        h.service
            .register("one.more@example.com", &Password::new(PASSWORD), IP)
            .await
            .is_ok()
    );
}
