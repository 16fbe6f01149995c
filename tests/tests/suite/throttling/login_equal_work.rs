//! A failed login for an address with an account and one for an address without: on DynamoDB
//! the same requests in the same order (two reads for the user either way), and about the same
//! time. The timing figure is printed; the bound held here is loose, since a test must not
//! hinge on a machine's load (the figure in the README comes from this test's output).

use std::time::Instant;

use integration_tests::{Backend, Harness, test_config};
use shared::{AuthError, Password};

const EMAIL: &str = "known@example.com";
const PASSWORD: &str = "correct horse battery staple";
const IP: Option<&str> = Some("198.51.100.20");

async fn failed_login(h: &Harness, email: &str) {
    let result = h
        .service
        .login(email, &Password::new("not the password"), IP)
        .await;
    assert!(
        matches!(result, Err(AuthError::InvalidCredentials)),
        "{result:?}"
    );
}

fn lenient_config() -> shared::Config {
    let mut config = test_config();
    config.login_max_failures = 10_000;
    config.ip_max_failed_logins = 10_000;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn existing_and_unknown_addresses_make_the_same_dynamodb_requests() {
    let (h, trips) = Harness::dynamo_recording(lenient_config()).await;
    h.service
        .register(EMAIL, &Password::new(PASSWORD), None)
        .await
        .unwrap();
    for round in 0..3 {
        trips.take();
        failed_login(&h, EMAIL).await;
        let existing = trips.take();
        failed_login(&h, &format!("nobody-{round}@example.com")).await;
        let unknown = trips.take();
        assert_eq!(existing, unknown, "round {round}");
        let reads = existing.iter().filter(|op| *op == "GetItem").count();
        assert!(
            reads >= 3,
            "the guard, the user and a counter: {existing:?}"
        );
    }
}

/// A login that presents a plausible `device_token` (here the token of a real sign-in, of
/// another account) makes the same requests whether or not the address has an account: the
/// device is looked up either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_token_makes_the_same_dynamodb_requests_for_existing_and_unknown_addresses() {
    let (h, trips) = Harness::dynamo_recording(lenient_config()).await;
    h.service
        .register(EMAIL, &Password::new(PASSWORD), None)
        .await
        .unwrap();
    let device = h
        .service
        .register("device-owner@example.com", &Password::new(PASSWORD), None)
        .await
        .unwrap()
        .device_token
        .expect("a device token");
    for round in 0..3 {
        let attempt = |email: String| {
            let (service, device) = (h.service.clone(), device.clone());
            async move {
                service
                    .login_from_device(
                        &email,
                        &Password::new("not the password"),
                        Some(&device),
                        IP,
                    )
                    .await
            }
        };
        trips.take();
        assert!(matches!(
            attempt(EMAIL.into()).await,
            Err(AuthError::InvalidCredentials)
        ));
        let existing = trips.take();
        assert!(matches!(
            attempt(format!("nobody-device-{round}@example.com")).await,
            Err(AuthError::InvalidCredentials)
        ));
        let unknown = trips.take();
        assert_eq!(existing, unknown, "round {round}");
        let reads = existing.iter().filter(|op| *op == "GetItem").count();
        assert!(
            reads >= 4,
            "the guard, the user, the device, a counter: {existing:?}"
        );
    }
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_login_takes_as_long_for_existing_and_unknown_addresses_dynamodb() {
    failed_login_timing(Backend::Dynamo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_login_takes_as_long_for_existing_and_unknown_addresses_embedded() {
    failed_login_timing(Backend::Embedded).await;
}

/// Tries alternate, so whatever else the machine does weighs on both alike.
async fn failed_login_timing(backend: Backend) {
    let h = Harness::new_with(backend, lenient_config()).await;
    h.service
        .register(EMAIL, &Password::new(PASSWORD), None)
        .await
        .unwrap();
    failed_login(&h, EMAIL).await; // warm connections and the hashing pool
    let mut existing = Vec::new();
    let mut unknown = Vec::new();
    for round in 0..41 {
        let unknown_email = format!("nobody-{round}@example.com");
        // Each goes first in every other round, so an order effect weighs on both alike.
        let mut pair = [(EMAIL, true), (unknown_email.as_str(), false)];
        if round % 2 == 1 {
            pair.reverse();
        }
        for (email, is_existing) in pair {
            let started = Instant::now();
            failed_login(&h, email).await;
            let took = started.elapsed().as_secs_f64();
            if is_existing {
                existing.push(took);
            } else {
                unknown.push(took);
            }
        }
    }
    let (existing, unknown) = (median(existing), median(unknown));
    eprintln!(
        "failed login medians over 41 tries each ({backend:?}): existing {:.2} ms, unknown {:.2} ms, unknown/existing {:.3}",
        existing * 1e3,
        unknown * 1e3,
        unknown / existing
    );
    let ratio = existing.max(unknown) / existing.min(unknown);
    assert!(ratio < 1.5, "existing {existing} s, unknown {unknown} s");
}
