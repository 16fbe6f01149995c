//! The account lifecycle by email on both stores: verified addresses, password reset, address
//! change. Emailed links work once, expire, are superseded by newer ones of their kind, are
//! never accepted as another kind, and refused ones change nothing; the address change holds
//! uniqueness under a race.

use futures::future::join_all;
use integration_tests::{Harness, PASSWORD, app_links, on_both_stores};
use shared::model::TokenType;
use shared::service::AddressChange;
use shared::{AuthError, Password};

const EMAIL: &str = "ada@example.com";
const NEW_PASSWORD: &str = "a brand new horse staple 2026";

fn is_invalid_token<T: std::fmt::Debug>(result: &Result<T, AuthError>) -> bool {
    matches!(result, Err(AuthError::InvalidToken(_)))
}

on_both_stores!(
    registration_sends_a_link_that_verifies_once,
    a_newer_link_makes_older_ones_of_its_kind_invalid,
    links_expire,
    a_link_of_one_kind_is_never_accepted_as_another,
    concurrent_spends_of_one_link_succeed_once,
    verification_mails_are_limited_per_user,
    a_weak_password_leaves_the_reset_link_usable,
    a_reset_ends_every_session_and_verifies_the_address,
    forgot_password_answers_alike_and_mails_only_an_active_account,
    reset_mails_are_limited_per_address,
    forgot_password_does_the_same_work_before_answering_whatever_the_account,
    a_password_change_invalidates_an_outstanding_reset_link,
    an_address_change_takes_effect_only_with_its_link,
    a_taken_address_shows_only_at_confirmation,
    address_changes_have_a_budget_per_user,
    two_users_racing_for_one_address_exactly_one_wins,
    new_tokens_carry_the_verified_address,
);

async fn registration_sends_a_link_that_verifies_once(h: Harness) {
    let signed_in = h.register_with_mail(EMAIL).await;
    assert!(!signed_in.user.email_verified);
    let mail = h.mail_to(EMAIL).await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].subject, "Confirm your email address");
    assert!(
        mail[0]
            .text
            .contains("https://app.example.com/verify-email#token=")
    );
    assert!(
        mail[0]
            .html
            .contains("https://app.example.com/verify-email#token=")
    );

    let token = h.link_token(EMAIL, "verify-email").await;
    let user = h.service.verify_email(&token).await.unwrap();
    assert!(user.email_verified);
    assert!(h.service.me(user.id).await.unwrap().email_verified);
    assert!(is_invalid_token(&h.service.verify_email(&token).await));
}

async fn a_newer_link_makes_older_ones_of_its_kind_invalid(h: Harness) {
    let signed_in = h.register_with_mail(EMAIL).await;
    let first = h.link_token(EMAIL, "verify-email").await;
    h.service
        .request_verification(signed_in.user.id, &app_links())
        .await
        .unwrap();
    let second = h.link_token(EMAIL, "verify-email").await;
    assert_ne!(first, second);
    assert!(is_invalid_token(&h.service.verify_email(&first).await));
    assert!(h.service.verify_email(&second).await.is_ok());

    // Reset links likewise.
    h.service
        .forgot_password(EMAIL, None, &app_links())
        .await
        .unwrap();
    let old = h.link_token(EMAIL, "reset-password").await;
    h.service
        .forgot_password(EMAIL, None, &app_links())
        .await
        .unwrap();
    let new = h.link_token(EMAIL, "reset-password").await;
    assert_ne!(old, new);
    let password = Password::new(NEW_PASSWORD);
    assert!(is_invalid_token(
        &h.service.reset_password(&old, &password).await
    ));
    assert!(h.service.reset_password(&new, &password).await.is_ok());
}

async fn links_expire(h: Harness) {
    h.register_with_mail(EMAIL).await;
    let verification = h.link_token(EMAIL, "verify-email").await;
    h.service
        .forgot_password(EMAIL, None, &app_links())
        .await
        .unwrap();
    let reset = h.link_token(EMAIL, "reset-password").await;

    h.clock.advance(h.config.password_reset_ttl_secs + 1);
    assert!(is_invalid_token(
        &h.service
            .reset_password(&reset, &Password::new(NEW_PASSWORD))
            .await
    ));
    // Verification links live longer.
    h.clock
        .advance(h.config.email_verification_ttl_secs - h.config.password_reset_ttl_secs);
    assert!(is_invalid_token(
        &h.service.verify_email(&verification).await
    ));
    assert!(
        h.service
            .login(EMAIL, &Password::new(PASSWORD), None)
            .await
            .is_ok()
    );
}

async fn a_link_of_one_kind_is_never_accepted_as_another(h: Harness) {
    let signed_in = h.register_with_mail(EMAIL).await;
    let verification = h.link_token(EMAIL, "verify-email").await;
    h.service
        .forgot_password(EMAIL, None, &app_links())
        .await
        .unwrap();
    let reset = h.link_token(EMAIL, "reset-password").await;

    let writes = h.calls.writes();
    assert!(is_invalid_token(
        &h.service
            .reset_password(&verification, &Password::new(NEW_PASSWORD))
            .await
    ));
    assert!(is_invalid_token(&h.service.verify_email(&reset).await));
    assert!(is_invalid_token(
        &h.service
            .reset_password(&signed_in.access_token, &Password::new(NEW_PASSWORD))
            .await
    ));
    assert_eq!(h.calls.writes(), writes, "refusals change nothing");
    // Both still work for what they are.
    assert!(h.service.verify_email(&verification).await.is_ok());
    assert!(
        h.service
            .reset_password(&reset, &Password::new(NEW_PASSWORD))
            .await
            .is_ok()
    );
}

async fn concurrent_spends_of_one_link_succeed_once(h: Harness) {
    h.register_with_mail(EMAIL).await;
    let token = h.link_token(EMAIL, "verify-email").await;
    let attempts = (0..8).map(|_| {
        let (service, token) = (h.service.clone(), token.clone());
        tokio::spawn(async move { service.verify_email(&token).await })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results.iter().filter(|r| r.is_err()).all(is_invalid_token));

    h.service
        .forgot_password(EMAIL, None, &app_links())
        .await
        .unwrap();
    let reset = h.link_token(EMAIL, "reset-password").await;
    let attempts = (0..6).map(|i| {
        let (service, reset) = (h.service.clone(), reset.clone());
        tokio::spawn(async move {
            let password = Password::new(format!("{NEW_PASSWORD} number {i}"));
            service.reset_password(&reset, &password).await
        })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
}

async fn verification_mails_are_limited_per_user(h: Harness) {
    let signed_in = h.register_with_mail(EMAIL).await;
    let id = signed_in.user.id;
    h.service
        .request_verification(id, &app_links())
        .await
        .unwrap();
    match h.service.request_verification(id, &app_links()).await {
        Err(AuthError::TooManyRequests { retry_after_secs }) => {
            assert!((1..=60).contains(&retry_after_secs))
        }
        other => panic!("a second one within the minute: {other:?}"),
    }
    for _ in 1..10 {
        h.clock.advance(61);
        h.service
            .request_verification(id, &app_links())
            .await
            .unwrap();
    }
    h.clock.advance(61);
    assert!(matches!(
        h.service.request_verification(id, &app_links()).await,
        Err(AuthError::TooManyRequests { .. })
    ));
    // One from registration and ten asked for.
    assert_eq!(h.mail_to(EMAIL).await.len(), 11);
    // A verified address gets no more.
    let token = h.link_token(EMAIL, "verify-email").await;
    h.service.verify_email(&token).await.unwrap();
    h.clock.advance(86_400);
    h.service
        .request_verification(id, &app_links())
        .await
        .unwrap();
    assert_eq!(h.mail_to(EMAIL).await.len(), 11);
}

async fn a_weak_password_leaves_the_reset_link_usable(h: Harness) {
    h.register_with_mail(EMAIL).await;
    h.service
        .forgot_password(EMAIL, None, &app_links())
        .await
        .unwrap();
    let token = h.link_token(EMAIL, "reset-password").await;
    for weak in ["short", "password123", "ada@example.com"] {
        match h.service.reset_password(&token, &Password::new(weak)).await {
            Err(AuthError::WeakPassword(reasons)) => assert!(!reasons.is_empty()),
            other => panic!("{weak}: {other:?}"),
        }
    }
    assert!(
        h.service
            .login(EMAIL, &Password::new(PASSWORD), None)
            .await
            .is_ok()
    );
    h.service
        .reset_password(&token, &Password::new(NEW_PASSWORD))
        .await
        .unwrap();
}

async fn a_reset_ends_every_session_and_verifies_the_address(h: Harness) {
    let first = h.register_with_mail(EMAIL).await;
    let second = h
        .service
        .login(EMAIL, &Password::new(PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    h.service
        .forgot_password(EMAIL, None, &app_links())
        .await
        .unwrap();
    let token = h.link_token(EMAIL, "reset-password").await;
    h.service
        .reset_password(&token, &Password::new(NEW_PASSWORD))
        .await
        .unwrap();

    for signed_in in [&first, &second] {
        assert!(h.service.authorize(&signed_in.access_token).await.is_err());
        assert!(h.service.refresh(&signed_in.refresh_token).await.is_err());
    }
    assert!(h.service.me(first.user.id).await.unwrap().email_verified);
    assert!(matches!(
        h.service.login(EMAIL, &Password::new(PASSWORD), None).await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(
        h.service
            .login(EMAIL, &Password::new(NEW_PASSWORD), None)
            .await
            .is_ok()
    );
    let notice = &h.mail_to(EMAIL).await[0];
    assert_eq!(notice.subject, "Your password was reset");
    assert!(!notice.text.contains("#token="));
}

async fn forgot_password_answers_alike_and_mails_only_an_active_account(h: Harness) {
    let active = h.register_with_mail("active@example.com").await;
    let disabled = h.register_with_mail("disabled@example.com").await;
    // The registration's mail goes out in the background: deactivating before it is out would
    // kill its link (a new epoch) and race the count below.
    assert_eq!(h.mail_to("disabled@example.com").await.len(), 1);
    h.store
        .set_active(disabled.user.id, false, shared::Clock::now(&*h.clock))
        .await
        .unwrap();
    let before = h.mail_to("active@example.com").await.len();
    for email in [
        "active@example.com",
        "disabled@example.com",
        "nobody@example.com",
    ] {
        assert!(
            h.service
                .forgot_password(email, None, &app_links())
                .await
                .is_ok(),
            "{email}"
        );
    }
    assert_eq!(h.mail_to("active@example.com").await.len(), before + 1);
    assert_eq!(
        h.mail_to("disabled@example.com").await.len(),
        1,
        "only the registration's"
    );
    assert!(h.mail_to("nobody@example.com").await.is_empty());
    assert!(active.user.is_active);
}

async fn reset_mails_are_limited_per_address(h: Harness) {
    h.register_with_mail(EMAIL).await;
    for _ in 0..5 {
        h.service
            .forgot_password(EMAIL, None, &app_links())
            .await
            .unwrap();
    }
    let resets = h
        .mail_to(EMAIL)
        .await
        .into_iter()
        .filter(|m| m.subject == "Reset your password")
        .count();
    assert_eq!(resets, 3);
    h.clock.advance(3600);
    h.service
        .forgot_password(EMAIL, None, &app_links())
        .await
        .unwrap();
    let resets = h
        .mail_to(EMAIL)
        .await
        .into_iter()
        .filter(|m| m.subject == "Reset your password")
        .count();
    assert_eq!(resets, 4, "a new hour, a new budget");
}

async fn forgot_password_does_the_same_work_before_answering_whatever_the_account(h: Harness) {
    h.register_with_mail("exists@example.com").await;
    let disabled = h.register_with_mail("disabled@example.com").await;
    // The registration's mail goes out in the background: deactivating before it is out would
    // kill its link (a new epoch) and race the count below.
    assert_eq!(h.mail_to("disabled@example.com").await.len(), 1);
    h.store
        .set_active(disabled.user.id, false, shared::Clock::now(&*h.clock))
        .await
        .unwrap();
    h.service.outbox_idle().await;
    // Run each request alone on a runtime of one thread: the work it hands to the outbox cannot
    // start before the answer, so what the store saw until then is the request's own work.
    let mut work = Vec::new();
    for email in [
        "exists@example.com",
        "nobody@example.com",
        "disabled@example.com",
    ] {
        let service = h.service.clone();
        let calls = h.calls.clone();
        let email = email.to_owned();
        let seen = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let (reads, writes) = (calls.reads(), calls.writes());
                    service
                        .forgot_password(&email, Some("203.0.113.9"), &app_links())
                        .await
                        .unwrap();
                    (calls.reads() - reads, calls.writes() - writes)
                })
        })
        .join()
        .unwrap();
        work.push(seen);
    }
    assert!(work.windows(2).all(|w| w[0] == w[1]), "{work:?}");
}

async fn a_password_change_invalidates_an_outstanding_reset_link(h: Harness) {
    let signed_in = h.register_with_mail(EMAIL).await;
    let principal = h.service.authorize(&signed_in.access_token).await.unwrap();
    h.service
        .forgot_password(EMAIL, None, &app_links())
        .await
        .unwrap();
    let token = h.link_token(EMAIL, "reset-password").await;
    h.service
        .change_password(
            principal.user_id,
            principal.chain_id,
            &Password::new(PASSWORD),
            &Password::new(NEW_PASSWORD),
        )
        .await
        .unwrap();
    assert!(is_invalid_token(
        &h.service
            .reset_password(&token, &Password::new("yet another horse staple 99"))
            .await
    ));
}

async fn an_address_change_takes_effect_only_with_its_link(h: Harness) {
    let signed_in = h.register_with_mail(EMAIL).await;
    let id = signed_in.user.id;
    let asking = h.service.authorize(&signed_in.access_token).await.unwrap();
    let other = h
        .service
        .login(EMAIL, &Password::new(PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let new = "ada.lovelace@example.com";
    assert!(matches!(
        h.service
            .start_email_change(
                id,
                asking.chain_id,
                AddressChange {
                    new_email: new,
                    password: &Password::new("wrong password here"),
                    code: None
                },
                None,
                &app_links()
            )
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    h.register_with_mail("taken@example.com").await;
    // A taken address answers as a free one does: the owner of the address gets a notice and
    // no link, so the answer tells nobody which addresses have accounts.
    for taken in ["taken@example.com", "TAKEN@example.com"] {
        h.clock.advance(61);
        h.service
            .start_email_change(
                id,
                asking.chain_id,
                AddressChange {
                    new_email: taken,
                    password: &Password::new(PASSWORD),
                    code: None,
                },
                None,
                &app_links(),
            )
            .await
            .unwrap_or_else(|e| panic!("{taken}: {e:?}"));
    }
    let notices = h.mail_to("taken@example.com").await;
    assert_eq!(notices.len(), 3, "the registration's link and two notices");
    for notice in &notices[..2] {
        assert_eq!(
            notice.subject,
            "Someone tried to move an account to this address"
        );
        assert!(!notice.text.contains("#token="), "a notice, not a link");
    }
    h.clock.advance(61);
    h.service
        .start_email_change(
            id,
            asking.chain_id,
            AddressChange {
                new_email: new,
                password: &Password::new(PASSWORD),
                code: None,
            },
            None,
            &app_links(),
        )
        .await
        .unwrap();
    let notice = &h.mail_to(EMAIL).await[0];
    assert_eq!(notice.subject, "Your email address is about to change");
    assert!(notice.text.contains(new));
    assert!(!notice.text.contains("#token="));
    // Nothing changed yet.
    assert_eq!(h.service.me(id).await.unwrap().email, EMAIL);
    assert!(
        h.service
            .login(EMAIL, &Password::new(PASSWORD), None)
            .await
            .is_ok()
    );

    let token = h.link_token(new, "verify-email").await;
    let user = h.service.verify_email(&token).await.unwrap();
    assert_eq!(user.email, new);
    assert!(user.email_verified);
    // The epoch moved: the session that asked stays signed in and speaks for the new address;
    // every other session ended.
    let principal = h.service.authorize(&signed_in.access_token).await.unwrap();
    assert_eq!(principal.user_email, new);
    assert!(is_invalid_token(
        &h.service.authorize(&other.access_token).await
    ));
    assert!(is_invalid_token(
        &h.service.refresh(&other.refresh_token).await
    ));
    assert!(
        h.service
            .login(new, &Password::new(PASSWORD), None)
            .await
            .is_ok()
    );
    assert!(matches!(
        h.service.login(EMAIL, &Password::new(PASSWORD), None).await,
        Err(AuthError::InvalidCredentials)
    ));
    // The old address is free again.
    h.register_with_mail(EMAIL).await;
    assert!(is_invalid_token(&h.service.verify_email(&token).await));
}

async fn a_taken_address_shows_only_at_confirmation(h: Harness) {
    let signed_in = h.register_with_mail(EMAIL).await;
    let asking = h.service.authorize(&signed_in.access_token).await.unwrap();
    let wanted = "wanted@example.com";
    h.service
        .start_email_change(
            signed_in.user.id,
            asking.chain_id,
            AddressChange {
                new_email: wanted,
                password: &Password::new(PASSWORD),
                code: None,
            },
            None,
            &app_links(),
        )
        .await
        .unwrap();
    let token = h.link_token(wanted, "verify-email").await;
    h.register_with_mail(wanted).await;
    assert!(matches!(
        h.service.verify_email(&token).await,
        Err(AuthError::EmailTaken)
    ));
    assert_eq!(h.service.me(signed_in.user.id).await.unwrap().email, EMAIL);
}

async fn address_changes_have_a_budget_per_user(h: Harness) {
    let signed_in = h.register_with_mail(EMAIL).await;
    let asking = h.service.authorize(&signed_in.access_token).await.unwrap();
    let change = |to: &'static str| {
        let service = h.service.clone();
        async move {
            service
                .start_email_change(
                    signed_in.user.id,
                    asking.chain_id,
                    AddressChange {
                        new_email: to,
                        password: &Password::new(PASSWORD),
                        code: None,
                    },
                    None,
                    &app_links(),
                )
                .await
        }
    };
    change("one@example.com").await.unwrap();
    assert!(matches!(
        change("two@example.com").await,
        Err(AuthError::TooManyRequests { .. })
    ));
    for _ in 0..9 {
        h.clock.advance(61);
        change("three@example.com").await.unwrap();
    }
    h.clock.advance(61);
    assert!(
        matches!(
            change("four@example.com").await,
            Err(AuthError::TooManyRequests { .. })
        ),
        "ten a day"
    );
}

async fn two_users_racing_for_one_address_exactly_one_wins(h: Harness) {
    let contested = "contested@example.com";
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for email in ["first@example.com", "second@example.com"] {
        let signed_in = h.register_with_mail(email).await;
        let asking = h.service.authorize(&signed_in.access_token).await.unwrap();
        h.service
            .start_email_change(
                signed_in.user.id,
                asking.chain_id,
                AddressChange {
                    new_email: contested,
                    password: &Password::new(PASSWORD),
                    code: None,
                },
                None,
                &app_links(),
            )
            .await
            .unwrap();
        ids.push(signed_in.user.id);
        let mail = h.mail_to(contested).await;
        let (_, rest) = mail[0].text.split_once("#token=").unwrap();
        tokens.push(rest.split_whitespace().next().unwrap().to_owned());
    }
    let attempts = tokens.iter().map(|token| {
        let (service, token) = (h.service.clone(), token.clone());
        tokio::spawn(async move { service.verify_email(&token).await })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(AuthError::EmailTaken))),
        "{results:?}"
    );
    let winner = winners[0].id;
    let loser = *ids.iter().find(|id| **id != winner).unwrap();
    assert_eq!(h.service.me(winner).await.unwrap().email, contested);
    assert_ne!(h.service.me(loser).await.unwrap().email, contested);
    let by_address = h.store.user_by_email(contested).await.unwrap().unwrap();
    assert_eq!(by_address.id, winner);
}

async fn new_tokens_carry_the_verified_address(h: Harness) {
    let signed_in = h.register_with_mail(EMAIL).await;
    let claims = h
        .service
        .tokens()
        .verify(
            &signed_in.access_token,
            TokenType::Access,
            shared::Clock::now(&*h.clock),
        )
        .unwrap();
    assert_eq!(claims.email_verified, Some(false));
    let principal = h.service.authorize(&signed_in.access_token).await.unwrap();
    assert!(!principal.email_verified);

    let token = h.link_token(EMAIL, "verify-email").await;
    h.service.verify_email(&token).await.unwrap();
    // The next request already sees it, with the same token...
    let principal = h.service.authorize(&signed_in.access_token).await.unwrap();
    assert!(principal.email_verified);
    // ...and new tokens carry it.
    h.clock.advance(h.config.refresh_reuse_grace_secs + 1);
    let refreshed = h.service.refresh(&signed_in.refresh_token).await.unwrap();
    let claims = h
        .service
        .tokens()
        .verify(
            &refreshed.access_token,
            TokenType::Access,
            shared::Clock::now(&*h.clock),
        )
        .unwrap();
    assert_eq!(claims.email_verified, Some(true));
}
