//! Trusted devices on both stores: the owner signs in from a device while an attacker keeps
//! the address locked; a device token has its own failure budget, also under a burst of
//! parallel guesses, and stops counting after "log out everywhere", a password change and a
//! reset; it belongs to one user; a second factor comes first. Black-box through the local
//! server: the field in the answers and in the login body.

use futures::future::join_all;
use integration_tests::{Harness, PASSWORD, on_both_stores};
use serde_json::json;
use shared::service::{LinkBase, MfaCode, SignIn};
use shared::tokens::token_hash;
use shared::{AuthError, Clock, Password, SignedIn};

const EMAIL: &str = "owner@example.com";
const NEW_PASSWORD: &str = "a brand new horse staple 2026";

on_both_stores!(
    every_sign_in_answers_a_device_token_stored_only_as_a_hash,
    the_owner_signs_in_from_a_device_while_the_address_is_locked,
    a_device_token_stops_counting_after_its_own_failure_budget,
    a_burst_of_guesses_with_a_device_token_gets_no_more_than_its_budget,
    log_out_everywhere_revokes_device_tokens,
    a_password_change_revokes_device_tokens,
    a_password_reset_revokes_device_tokens,
    a_device_token_counts_only_for_its_own_user,
    a_device_token_does_not_skip_the_second_factor,
    the_local_server_carries_device_tokens,
);

async fn login(
    h: &Harness,
    email: &str,
    password: &str,
    device: Option<&str>,
) -> Result<SignIn, AuthError> {
    h.service
        .login_from_device(email, &Password::new(password), device, None)
        .await
}

fn device_of(signed_in: &SignedIn) -> String {
    signed_in
        .device_token
        .clone()
        .expect("a sign-in answers a device token")
}

/// Someone else's failures on the address until it is locked.
async fn lock_out(h: &Harness, email: &str) {
    for _ in 0..h.config.login_max_failures {
        let _ = login(h, email, "an attacker's guess", None).await;
    }
    // Whatever the password: a locked address refuses before checking it.
    for password in [PASSWORD, NEW_PASSWORD] {
        assert!(
            matches!(
                login(h, email, password, None).await,
                Err(AuthError::TooManyRequests { .. })
            ),
            "the address is locked for logins without a device token"
        );
    }
}

fn is_throttled(result: &Result<SignIn, AuthError>) -> bool {
    matches!(result, Err(AuthError::TooManyRequests { .. }))
}

async fn every_sign_in_answers_a_device_token_stored_only_as_a_hash(h: Harness) {
    let registered = h.register_with_mail(EMAIL).await;
    let first = device_of(&registered);
    let logged_in = login(&h, EMAIL, PASSWORD, None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let second = device_of(&logged_in);
    assert_ne!(first, second, "each device gets its own token");
    for token in [&first, &second] {
        assert!(token.len() >= 43, "256 random bits");
        let device = h
            .store
            .device(&token_hash(token), h.clock.now())
            .await
            .unwrap()
            .expect("stored under its hash");
        assert_eq!(device.user_id, registered.user.id);
        assert!(device.expires_at > h.clock.now());
        assert!(
            h.store
                .device(token, h.clock.now())
                .await
                .unwrap()
                .is_none(),
            "never under the token itself"
        );
    }
    // Presenting a device that vouches keeps its token; a rotation answers none.
    let again = login(&h, EMAIL, PASSWORD, Some(&first))
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    assert_eq!(again.device_token.as_deref(), Some(first.as_str()));
    let rotated = h.service.refresh(&again.refresh_token).await.unwrap();
    assert_eq!(rotated.device_token, None);
    // Device tokens expire with the longest a sign-in may live.
    h.clock.advance(h.config.session_max_lifetime_secs);
    assert!(
        h.store
            .device(&token_hash(&first), h.clock.now())
            .await
            .unwrap()
            .is_none()
    );
}

async fn the_owner_signs_in_from_a_device_while_the_address_is_locked(h: Harness) {
    let device = device_of(&h.register_with_mail(EMAIL).await);
    lock_out(&h, EMAIL).await;
    let work = h.service.passwords().work_done();
    let signed_in = login(&h, EMAIL, PASSWORD, Some(&device))
        .await
        .expect("the owner's device is not held back")
        .signed_in()
        .unwrap();
    assert!(h.service.passwords().work_done() > work);
    assert_eq!(signed_in.user.email, EMAIL);
    // A wrong password from the device is an ordinary failure, not a lockout.
    assert!(matches!(
        login(&h, EMAIL, "the owner's typo", Some(&device)).await,
        Err(AuthError::InvalidCredentials)
    ));
    // An unknown token, or garbage, counts as none.
    let stranger = "A".repeat(43);
    for token in [stranger.as_str(), "not a device token", ""] {
        assert!(is_throttled(&login(&h, EMAIL, PASSWORD, Some(token)).await));
    }
}

async fn a_device_token_stops_counting_after_its_own_failure_budget(h: Harness) {
    let device = device_of(&h.register_with_mail(EMAIL).await);
    lock_out(&h, EMAIL).await;
    for _ in 0..h.config.login_max_failures {
        assert!(matches!(
            login(&h, EMAIL, "a stolen device's guess", Some(&device)).await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    let work = h.service.passwords().work_done();
    assert!(
        is_throttled(&login(&h, EMAIL, PASSWORD, Some(&device)).await),
        "past its budget the device token counts for nothing"
    );
    assert_eq!(h.service.passwords().work_done(), work);

    // A success resets a device's budget: another device, below its budget.
    let h2 = Harness::new(h.backend).await;
    let device = device_of(&h2.register_with_mail(EMAIL).await);
    for _ in 0..h2.config.login_max_failures - 1 {
        let _ = login(&h2, EMAIL, "typo", Some(&device)).await;
    }
    assert!(login(&h2, EMAIL, PASSWORD, Some(&device)).await.is_ok());
    for _ in 0..h2.config.login_max_failures - 1 {
        let _ = login(&h2, EMAIL, "typo", Some(&device)).await;
    }
    lock_out(&h2, EMAIL).await;
    assert!(login(&h2, EMAIL, PASSWORD, Some(&device)).await.is_ok());
}

async fn a_burst_of_guesses_with_a_device_token_gets_no_more_than_its_budget(h: Harness) {
    let device = device_of(&h.register_with_mail(EMAIL).await);
    lock_out(&h, EMAIL).await;
    let guesses = (0..3 * h.config.login_max_failures)
        .map(|i| {
            let h = &h;
            let device = device.clone();
            async move { login(h, EMAIL, &format!("guess {i}"), Some(&device)).await }
        })
        .collect::<Vec<_>>();
    let results = join_all(guesses).await;
    let checked = results
        .iter()
        .filter(|r| matches!(r, Err(AuthError::InvalidCredentials)))
        .count();
    assert_eq!(checked, h.config.login_max_failures as usize, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(AuthError::InvalidCredentials)) || is_throttled(r))
    );
}

async fn log_out_everywhere_revokes_device_tokens(h: Harness) {
    let signed_in = h.register_with_mail(EMAIL).await;
    let device = device_of(&signed_in);
    let principal = h.service.authorize(&signed_in.access_token).await.unwrap();
    // Logging out of one session keeps the device.
    h.service
        .logout(principal.user_id, principal.chain_id, false)
        .await
        .unwrap();
    lock_out(&h, EMAIL).await;
    let again = login(&h, EMAIL, PASSWORD, Some(&device))
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let principal = h.service.authorize(&again.access_token).await.unwrap();
    h.service
        .logout(principal.user_id, principal.chain_id, true)
        .await
        .unwrap();
    lock_out(&h, EMAIL).await;
    assert!(is_throttled(
        &login(&h, EMAIL, PASSWORD, Some(&device)).await
    ));
}

async fn a_password_change_revokes_device_tokens(h: Harness) {
    let signed_in = h.register_with_mail(EMAIL).await;
    let device = device_of(&signed_in);
    let principal = h.service.authorize(&signed_in.access_token).await.unwrap();
    h.service
        .change_password(
            principal.user_id,
            principal.chain_id,
            &Password::new(PASSWORD),
            &Password::new(NEW_PASSWORD),
        )
        .await
        .unwrap();
    lock_out(&h, EMAIL).await;
    assert!(is_throttled(
        &login(&h, EMAIL, NEW_PASSWORD, Some(&device)).await
    ));
}

async fn a_password_reset_revokes_device_tokens(h: Harness) {
    let device = device_of(&h.register_with_mail(EMAIL).await);
    h.service
        .forgot_password(EMAIL, None, &LinkBase("https://app.example.com".into()))
        .await
        .unwrap();
    let reset = h.link_token(EMAIL, "reset-password").await;
    h.service
        .reset_password(&reset, &Password::new(NEW_PASSWORD))
        .await
        .unwrap();
    lock_out(&h, EMAIL).await;
    assert!(is_throttled(
        &login(&h, EMAIL, NEW_PASSWORD, Some(&device)).await
    ));
}

async fn a_device_token_counts_only_for_its_own_user(h: Harness) {
    let mallory = device_of(&h.register_with_mail("mallory@example.com").await);
    h.register_with_mail(EMAIL).await;
    lock_out(&h, EMAIL).await;
    assert!(is_throttled(
        &login(&h, EMAIL, PASSWORD, Some(&mallory)).await
    ));
    // And for an address with no account, exactly as without a token.
    assert!(matches!(
        login(&h, "nobody@example.com", PASSWORD, Some(&mallory)).await,
        Err(AuthError::InvalidCredentials)
    ));
}

async fn a_device_token_does_not_skip_the_second_factor(h: Harness) {
    let device = device_of(&h.register_with_mail(EMAIL).await);
    let user = h.store.user_by_email(EMAIL).await.unwrap().unwrap();
    let enrolled = h.enrol_totp(user.id, PASSWORD).await;
    lock_out(&h, EMAIL).await;
    let required = match login(&h, EMAIL, PASSWORD, Some(&device)).await {
        Ok(SignIn::MfaRequired(required)) => required,
        other => panic!("a second factor is still asked for: {other:?}"),
    };
    // The sign-in the second factor finishes answers a new device token.
    let code = MfaCode::totp(&h.totp_code(&enrolled.secret), "code").unwrap();
    let signed_in = h
        .service
        .verify_mfa(&required.mfa_token, &code)
        .await
        .unwrap();
    let new_device = device_of(&signed_in);
    assert_ne!(new_device, device);
}

async fn the_local_server_carries_device_tokens(h: Harness) {
    let api = h.serve_local_api().await;
    let registered = api
        .post_json(
            "/auth/register",
            &json!({"email": EMAIL, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(registered.status, 201);
    let device = registered.json()["device_token"]
        .as_str()
        .expect("register answers a device_token")
        .to_owned();
    for _ in 0..h.config.login_max_failures {
        api.post_json(
            "/auth/login",
            &json!({"email": EMAIL, "password": "an attacker's guess"}),
            None,
        )
        .await;
    }
    let locked = api
        .post_json(
            "/auth/login",
            &json!({"email": EMAIL, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(locked.status, 429);
    let from_device = api
        .post_json(
            "/auth/login",
            &json!({"email": EMAIL, "password": PASSWORD, "device_token": device}),
            None,
        )
        .await;
    assert_eq!(from_device.status, 200, "{:?}", from_device.json());
    assert_eq!(from_device.json()["device_token"], json!(device));
    let refreshed = api
        .post_json(
            "/auth/refresh",
            &json!({"refresh_token": from_device.json()["refresh_token"]}),
            None,
        )
        .await;
    assert_eq!(refreshed.status, 200);
    assert!(refreshed.json().get("device_token").is_none());
    // Anything but a string is refused, and refused before any work.
    let work = h.service.passwords().work_done();
    for bad in [json!(null), json!(7), json!([device])] {
        let answer = api
            .post_json(
                "/auth/login",
                &json!({"email": EMAIL, "password": PASSWORD, "device_token": bad}),
                None,
            )
            .await;
        assert_eq!(answer.status, 400, "{bad}");
        assert_eq!(answer.code().as_deref(), Some("invalid_request"));
    }
    assert_eq!(h.service.passwords().work_done(), work);
}
