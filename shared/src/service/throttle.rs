//! Throttling that does not reveal accounts.
//!
//! - Per normalised email, whether or not the account exists: consecutive failures. From the
//!   `LOGIN_MAX_FAILURES`-th on, further attempts wait 1 s, then 2 s, 4 s ... up to 15 minutes;
//!   a success resets the count. The attempt is charged *before* the password is checked (and
//!   the lock set by the attempt that reaches the limit), so a burst of parallel guesses cannot
//!   slip past the count, and a refused attempt costs no Argon2 work.
//! - Per source IP (IPv6 per /64): at most `IP_MAX_FAILED_LOGINS` failed logins and
//!   `IP_MAX_REGISTRATIONS` registrations per 5-minute window.
//!
//! - Per trusted device (see `devices`): a login presenting a device token that vouches for the
//!   user is charged to the device's own count instead of the email's, so failures elsewhere do
//!   not hold it back; from the `LOGIN_MAX_FAILURES`-th consecutive failure on, the device
//!   token stops counting.
//!
//! Counts live in the store with a TTL, so every Lambda instance sees the same numbers.

use std::net::IpAddr;

use tracing::{info, warn};

use super::contention_delay;
use super::{AuthError, AuthService};
use crate::clock::UnixTime;
use crate::model::TrustedDevice;
use crate::store::FailureCounter;

/// Length of the per-IP windows.
pub const WINDOW_SECS: i64 = 300;
/// The longest wait after repeated failures.
pub const MAX_LOCK_SECS: i64 = 900;
/// A failure count is forgotten a day after its last failure.
pub const FAILURE_MEMORY_SECS: i64 = 86_400;
/// Attempts to update a failure counter that concurrent attempts keep changing (with a growing,
/// jittered wait between them: a burst of guesses on one counter must not answer 503).
const COUNTER_ATTEMPTS: u32 = 12;

/// How long to wait after `failures` consecutive failures, given the threshold.
pub fn lock_secs(failures: u32, threshold: u32) -> i64 {
    if failures < threshold {
        return 0;
    }
    let doublings = (failures - threshold).min(20);
    (1i64 << doublings).min(MAX_LOCK_SECS)
}

/// The subject an IP address is counted under: the address, or its /64 for IPv6, since one
/// client commonly holds a whole /64.
pub fn ip_subject(ip: &str) -> Option<String> {
    match ip.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => Some(v4.to_string()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(v4.to_string()),
            None => {
                let s = v6.segments();
                Some(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
            }
        },
    }
}

/// The current window's index and end.
pub(super) fn window(now: UnixTime) -> (i64, UnixTime) {
    let index = now.div_euclid(WINDOW_SECS);
    (index, (index + 1) * WINDOW_SECS)
}

/// An attempt charged to a lockout counter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LockoutCharge {
    /// The count with this attempt.
    pub failures: u32,
    /// The counter's version this charge wrote.
    version: u64,
    /// The lock before this charge.
    locked_before: UnixTime,
}

/// A login attempt that has been charged and must be settled once the password is checked.
#[derive(Debug)]
pub(crate) struct Charged {
    email_key: String,
    ip_key: Option<String>,
    /// Set when the attempt was charged to a trusted device instead of the email.
    device_key: Option<String>,
    /// Whether this attempt, if it fails, locks the address's logins.
    pub(crate) locks: bool,
}

impl AuthService {
    /// Charges an attempt to sign in as `email` from `source_ip`, presenting `device` (one
    /// that vouches for the email's user), or refuses it.
    pub(crate) async fn charge_login(
        &self,
        email: &str,
        source_ip: Option<&str>,
        device: Option<&TrustedDevice>,
        now: UnixTime,
    ) -> Result<Charged, AuthError> {
        let (index, window_end) = window(now);
        let ip_key = source_ip
            .and_then(ip_subject)
            .map(|ip| format!("login-ip:{ip}:{index}"));
        if let Some(key) = &ip_key {
            let limit = self.config.ip_max_failed_logins;
            if !self.store.take_from_window(key, limit, window_end).await? {
                info!(reason = "ip failed-login budget spent", "login throttled");
                return Err(AuthError::TooManyRequests {
                    retry_after_secs: (window_end - now) as u64,
                });
            }
        }
        let email_key = format!("login-email:{email}");
        if let Some(device) = device {
            let device_key = format!("login-device:{}", device.token_hash);
            if self.charge_device(&device_key, now).await? {
                return Ok(Charged {
                    email_key,
                    ip_key,
                    device_key: Some(device_key),
                    locks: false,
                });
            }
            info!(
                reason = "device failure budget spent",
                "device token not counted"
            );
        }
        match self.charge_email(&email_key, now).await {
            Ok(locks) => Ok(Charged {
                email_key,
                ip_key,
                device_key: None,
                locks,
            }),
            Err(e) => {
                // Refused before any password work: it is not a failed login of this IP.
                if let Some(key) = &ip_key {
                    self.give_back(key).await;
                }
                Err(e)
            }
        }
    }

    /// Adds a failure to the email's count unless it is locked; the attempt that reaches the
    /// threshold sets the lock, so concurrent attempts see it at once.
    /// Whether this attempt, failing, sets a lock.
    async fn charge_email(&self, key: &str, now: UnixTime) -> Result<bool, AuthError> {
        let threshold = self.config.login_max_failures;
        let charged = self
            .charge_lockout(key, |f| lock_secs(f, threshold), FAILURE_MEMORY_SECS, now)
            .await;
        if let Err(AuthError::TooManyRequests { .. }) = &charged {
            info!(
                reason = "email locked after repeated failures",
                "login throttled"
            );
        }
        charged.map(|charge| lock_secs(charge.failures, threshold) > 0)
    }

    /// Charges one attempt to the lockout counter `key`, before whatever it attempts is checked,
    /// or refuses it while the counter is locked. `lock` gives the wait after a number of
    /// failures; the counter is forgotten `memory_secs` after its last lock ends. Answers the
    /// charge: the count with this attempt, and the lock it replaced.
    pub(crate) async fn charge_lockout(
        &self,
        key: &str,
        lock: impl Fn(u32) -> i64,
        memory_secs: i64,
        now: UnixTime,
    ) -> Result<LockoutCharge, AuthError> {
        for attempt in 0..COUNTER_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(contention_delay(attempt - 1)).await;
            }
            let counter = self.store.failure_counter(key, now).await?;
            if counter.locked_until > now {
                return Err(AuthError::TooManyRequests {
                    retry_after_secs: (counter.locked_until - now) as u64,
                });
            }
            let failures = counter.failures.saturating_add(1);
            let wait = lock(failures);
            let next = FailureCounter {
                failures,
                locked_until: if wait > 0 { now + wait } else { 0 },
                version: counter.version + 1,
            };
            if self
                .store
                .replace_failure_counter(key, counter.version, &next, now + wait + memory_secs, now)
                .await?
            {
                return Ok(LockoutCharge {
                    failures,
                    version: next.version,
                    locked_before: counter.locked_until,
                });
            }
        }
        Err(AuthError::Unavailable(
            "failure counter kept changing".into(),
        ))
    }

    /// Takes back the charge of an attempt that succeeded, leaving every other failure counted:
    /// a success must not hand a guesser fresh attempts. The wait this charge set goes too,
    /// unless another attempt was charged since.
    pub(crate) async fn refund_lockout(
        &self,
        key: &str,
        charge: &LockoutCharge,
        memory_secs: i64,
        now: UnixTime,
    ) {
        for attempt in 0..COUNTER_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(contention_delay(attempt - 1)).await;
            }
            let counter = match self.store.failure_counter(key, now).await {
                Ok(counter) => counter,
                Err(e) => return warn!(error = %e, "could not refund an attempt"),
            };
            if counter.failures == 0 {
                return;
            }
            let locked_until = if counter.version == charge.version {
                charge.locked_before
            } else {
                counter.locked_until
            };
            let next = FailureCounter {
                failures: counter.failures - 1,
                locked_until,
                version: counter.version + 1,
            };
            let expires_at = next.locked_until.max(now) + memory_secs;
            match self
                .store
                .replace_failure_counter(key, counter.version, &next, expires_at, now)
                .await
            {
                Ok(true) => return,
                Ok(false) => continue,
                Err(e) => return warn!(error = %e, "could not refund an attempt"),
            }
        }
    }

    /// Adds a failure to a trusted device's count; `false` (nothing charged) once its budget
    /// is spent, when the device no longer counts.
    async fn charge_device(&self, key: &str, now: UnixTime) -> Result<bool, AuthError> {
        for attempt in 0..COUNTER_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(contention_delay(attempt - 1)).await;
            }
            let counter = self.store.failure_counter(key, now).await?;
            if counter.failures >= self.config.login_max_failures {
                return Ok(false);
            }
            let next = FailureCounter {
                failures: counter.failures + 1,
                locked_until: 0,
                version: counter.version + 1,
            };
            if self
                .store
                .replace_failure_counter(
                    key,
                    counter.version,
                    &next,
                    now + FAILURE_MEMORY_SECS,
                    now,
                )
                .await?
            {
                return Ok(true);
            }
        }
        Err(AuthError::Unavailable(
            "failure counter kept changing".into(),
        ))
    }

    /// Settles a charged attempt: a success resets the count it was charged to (the device's
    /// or the email's) and does not count against the IP; a failure stays charged. A device's
    /// success leaves the email's count alone, so the owner signing in does not hand whoever
    /// locked the address a fresh set of guesses.
    pub(crate) async fn settle_login(&self, charged: Charged, succeeded: bool) {
        if !succeeded {
            return;
        }
        let key = charged.device_key.as_ref().unwrap_or(&charged.email_key);
        if let Err(e) = self.store.clear_failure_counter(key).await {
            warn!(error = %e, "could not reset a failure count");
        }
        if let Some(key) = &charged.ip_key {
            self.give_back(key).await;
        }
    }

    async fn give_back(&self, key: &str) {
        if let Err(e) = self.store.give_back_to_window(key).await {
            warn!(error = %e, "could not give back a throttle unit");
        }
    }

    /// Charges a registration to `source_ip`, or refuses it.
    pub(crate) async fn charge_registration(
        &self,
        source_ip: Option<&str>,
        now: UnixTime,
    ) -> Result<(), AuthError> {
        let Some(ip) = source_ip.and_then(ip_subject) else {
            return Ok(());
        };
        let (index, window_end) = window(now);
        let key = format!("register-ip:{ip}:{index}");
        if self
            .store
            .take_from_window(&key, self.config.ip_max_registrations, window_end)
            .await?
        {
            Ok(())
        } else {
            info!(
                reason = "ip registration budget spent",
                "registration throttled"
            );
            Err(AuthError::TooManyRequests {
                retry_after_secs: (window_end - now) as u64,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_from_one_second_to_fifteen_minutes() {
        let waits: Vec<i64> = (1..=18).map(|f| lock_secs(f, 5)).collect();
        assert_eq!(
            waits,
            [
                0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900, 900
            ]
        );
        assert_eq!(lock_secs(u32::MAX, 5), MAX_LOCK_SECS);
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        assert_eq!(ip_subject("203.0.113.7").as_deref(), Some("203.0.113.7"));
        assert_eq!(
            ip_subject("2001:db8:1:2:aaaa::1").as_deref(),
            Some("2001:db8:1:2::/64")
        );
        assert_eq!(
            ip_subject("2001:db8:1:2:bbbb::9"),
            ip_subject("2001:db8:1:2:aaaa::1")
        );
        assert_eq!(
            ip_subject("::ffff:198.51.100.4").as_deref(),
            Some("198.51.100.4")
        );
        assert_eq!(ip_subject("not an ip"), None);
        assert_eq!(ip_subject(""), None);
    }

    #[test]
    fn windows_are_five_minutes() {
        assert_eq!(window(0), (0, 300));
        assert_eq!(window(299), (0, 300));
        assert_eq!(window(300), (1, 600));
    }
}
