//! The account as a whole, on both stores: deletion by its owner and by an admin (everything
//! keyed to the user gone, its tokens refused at once, the address free, a notice sent), a
//! deletion that crashes halfway (no way in left, the sweep finishes it), the security history
//! after a scripted day, the lockout and new-device entries, and the new-device mail.

mod events;
mod local;

use integration_tests::{Harness, PASSWORD, on_both_stores};
use shared::model::EventKind;
use shared::service::{AccountDeletion, MfaCode};
use shared::{AuthError, Clock, Password, Principal, SignedIn};

on_both_stores!(
    an_owner_deletes_the_account_and_the_address_is_free,
    deletion_needs_the_password_and_with_totp_a_code,
    a_crash_halfway_leaves_no_way_in_and_the_sweep_finishes,
    an_admin_deletes_a_user,
    the_security_history_of_a_day,
    the_history_is_paged_newest_first,
    a_lockout_and_a_new_device_are_in_the_history,
    a_new_device_is_mailed_only_when_asked,
);

fn kinds(page: &shared::store::HistoryPage) -> Vec<EventKind> {
    page.events.iter().map(|e| e.kind).collect()
}

/// Every way the deleted `signed_in` could still get in, refused.
async fn no_way_in(h: &Harness, signed_in: &SignedIn, email: &str) {
    assert!(
        h.service.authorize(&signed_in.access_token).await.is_err(),
        "the access token is refused at once"
    );
    assert!(h.service.refresh(&signed_in.refresh_token).await.is_err());
    assert!(matches!(
        h.service.login(email, &Password::new(PASSWORD), None).await,
        Err(AuthError::InvalidCredentials)
    ));
}

async fn an_owner_deletes_the_account_and_the_address_is_free(h: Harness) {
    let email = "leaving@example.com";
    let first = h.register_with_mail(email).await;
    let second = h.sign_in(email, PASSWORD).await;
    let principal = h.service.authorize(&second.access_token).await.unwrap();
    // A reset link outstanding: it must die with the account.
    h.service
        .forgot_password(email, None, &integration_tests::app_links())
        .await
        .unwrap();
    let reset = h.link_token(email, "reset-password").await;
    assert!(h.stored_items_of(first.user.id).await > 0);

    let wrong = Password::new("not the password at all");
    assert!(matches!(
        h.service
            .delete_account(
                principal.user_id,
                principal.chain_id,
                AccountDeletion {
                    password: Some(&wrong),
                    code: None,
                },
            )
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(
        h.service.authorize(&first.access_token).await.is_ok(),
        "nothing changed"
    );

    let password = Password::new(PASSWORD);
    h.service
        .delete_account(
            principal.user_id,
            principal.chain_id,
            AccountDeletion {
                password: Some(&password),
                code: None,
            },
        )
        .await
        .expect("deleted");
    no_way_in(&h, &first, email).await;
    no_way_in(&h, &second, email).await;
    assert!(
        h.service
            .reset_password(&reset, &Password::new("a brand new long passphrase"))
            .await
            .is_err(),
        "the reset link died with the account"
    );
    assert!(h.store.user_by_id(first.user.id).await.unwrap().is_none());
    assert_eq!(
        h.stored_items_of(first.user.id).await,
        0,
        "nothing of the user is left"
    );
    let notice = h.mail_to(email).await;
    assert!(
        notice
            .iter()
            .any(|m| m.subject == "Your account was deleted"),
        "a notice went to the address"
    );
    // The address is free at once, for a new account that shares nothing with the old.
    let again = h.register(email).await;
    assert_ne!(again.user.id, first.user.id);
    assert!(h.service.authorize(&again.access_token).await.is_ok());
    assert!(h.service.authorize(&first.access_token).await.is_err());
    let history = h
        .service
        .security_events(again.user.id, None, None)
        .await
        .unwrap();
    assert_eq!(
        kinds(&history),
        [EventKind::SignedIn, EventKind::Registered]
    );
}

async fn deletion_needs_the_password_and_with_totp_a_code(h: Harness) {
    let email = "careful@example.com";
    let signed_in = h.register(email).await;
    let enrolled = h.enrol_totp(signed_in.user.id, PASSWORD).await;
    let principal = h.service.authorize(&signed_in.access_token).await.unwrap();
    let password = Password::new(PASSWORD);
    let delete = |password: Option<&'static str>, code: Option<MfaCode>| {
        let (h, principal) = (&h, principal.clone());
        async move {
            let password = password.map(Password::new);
            h.service
                .delete_account(
                    principal.user_id,
                    principal.chain_id,
                    AccountDeletion {
                        password: password.as_ref(),
                        code: code.as_ref(),
                    },
                )
                .await
        }
    };
    assert!(matches!(
        delete(None, None).await,
        Err(AuthError::InvalidField {
            field: "password",
            ..
        })
    ));
    assert!(matches!(
        delete(Some(PASSWORD), None).await,
        Err(AuthError::MalformedCode { field: "code" })
    ));
    let wrong = MfaCode::totp("000000", "code").unwrap();
    let right_now = h.totp_code(&enrolled.secret);
    let wrong = if right_now == "000000" {
        MfaCode::totp("111111", "code").unwrap()
    } else {
        wrong
    };
    assert!(delete(Some(PASSWORD), Some(wrong)).await.is_err());
    assert!(
        h.store
            .user_by_id(signed_in.user.id)
            .await
            .unwrap()
            .is_some()
    );
    let code = MfaCode::totp(&h.totp_code(&enrolled.secret), "code").unwrap();
    h.service
        .delete_account(
            principal.user_id,
            principal.chain_id,
            AccountDeletion {
                password: Some(&password),
                code: Some(&code),
            },
        )
        .await
        .expect("deleted with the password and a code");
    no_way_in(&h, &signed_in, email).await;
}

/// The store's first step alone, as when the function dies before its sweep: no way in is
/// left, the address is free, and a later sweep removes the rest.
async fn a_crash_halfway_leaves_no_way_in_and_the_sweep_finishes(h: Harness) {
    let email = "crashed@example.com";
    let first = h.register_with_mail(email).await;
    let second = h.sign_in(email, PASSWORD).await;
    h.service
        .forgot_password(email, None, &integration_tests::app_links())
        .await
        .unwrap();
    let reset = h.link_token(email, "reset-password").await;
    let user = h.store.user_by_id(first.user.id).await.unwrap().unwrap();
    let now = h.clock.now();
    let lockout = format!("login-email:{email}");
    // A failure counted on the address, which must not greet the next account.
    let _ = h
        .service
        .login(email, &Password::new("wrong wrong wrong"), None)
        .await;
    assert_eq!(
        h.store
            .failure_counter(&lockout, now)
            .await
            .unwrap()
            .failures,
        1
    );

    assert!(
        h.store
            .delete_user(&user, std::slice::from_ref(&lockout), now)
            .await
            .unwrap()
    );
    let counted = h
        .store
        .failure_counter(&lockout, now)
        .await
        .unwrap()
        .failures;
    match h.backend {
        integration_tests::Backend::Dynamo => assert_eq!(counted, 1, "left for the sweep"),
        integration_tests::Backend::Embedded => assert_eq!(counted, 0, "gone at once"),
    }
    no_way_in(&h, &first, email).await;
    no_way_in(&h, &second, email).await;
    assert!(
        h.service
            .reset_password(&reset, &Password::new("a brand new long passphrase"))
            .await
            .is_err()
    );
    let again = h.register(email).await;
    assert!(h.service.authorize(&again.access_token).await.is_ok());

    // DynamoDB left the rest for the sweep; the embedded store deletes all in one transaction.
    let left = h.stored_items_of(first.user.id).await;
    match h.backend {
        integration_tests::Backend::Dynamo => assert!(left > 0, "the sweep has work"),
        integration_tests::Backend::Embedded => assert_eq!(left, 0),
    }
    let finished = h.store.sweep_deletions(h.clock.now()).await.unwrap();
    assert!(finished <= 1);
    assert_eq!(
        h.stored_items_of(first.user.id).await,
        0,
        "the sweep finished it"
    );
    assert_eq!(h.store.sweep_deletions(h.clock.now()).await.unwrap(), 0);
    // The new account kept its own sessions and history; the sweep took the lockout count
    // (with the failures the refused logins above added to it).
    assert!(h.service.authorize(&again.access_token).await.is_ok());
    if h.backend == integration_tests::Backend::Dynamo {
        assert_eq!(
            h.store
                .failure_counter(&lockout, now)
                .await
                .unwrap()
                .failures,
            0
        );
    }
    assert!(h.stored_items_of(again.user.id).await > 0);
}

/// A signed-in admin.
async fn admin(h: &Harness, email: &str) -> Principal {
    let signed_in = h.register(email).await;
    h.store
        .set_roles(signed_in.user.id, &["admin".to_owned()], h.clock.now())
        .await
        .unwrap();
    let refreshed = h.service.refresh(&signed_in.refresh_token).await.unwrap();
    h.service.authorize(&refreshed.access_token).await.unwrap()
}

async fn an_admin_deletes_a_user(h: Harness) {
    let admin = admin(&h, "boss@example.com").await;
    let plain = h.register("plain@example.com").await;
    let victim = h.register("target@example.com").await;
    let principal = h.service.authorize(&plain.access_token).await.unwrap();
    assert!(matches!(
        h.service
            .admin_delete_user(&principal, victim.user.id)
            .await,
        Err(AuthError::Forbidden)
    ));
    h.service
        .admin_delete_user(&admin, victim.user.id)
        .await
        .expect("deleted");
    no_way_in(&h, &victim, "target@example.com").await;
    assert_eq!(h.stored_items_of(victim.user.id).await, 0);
    assert!(matches!(
        h.service.admin_delete_user(&admin, victim.user.id).await,
        Err(AuthError::UserNotFound)
    ));
    assert!(
        h.mail_to("target@example.com")
            .await
            .iter()
            .any(|m| m.subject == "Your account was deleted")
    );
    assert!(h.service.authorize(&plain.access_token).await.is_ok());
}

async fn the_security_history_of_a_day(h: Harness) {
    let admin = admin(&h, "boss@example.com").await;
    let email = "day@example.com";
    let origin = shared::service::RequestOrigin {
        source_ip: Some("203.0.113.77".into()),
        user_agent: Some("Firefox/140 on Linux".into()),
    };
    // Morning: registered; a sign-in on a second device.
    let first = origin.clone().scope(h.register(email)).await;
    h.clock.advance(3600);
    let phone = origin.clone().scope(h.sign_in(email, PASSWORD)).await;
    // Noon: the password changes; a second factor goes on.
    let principal = h.service.authorize(&phone.access_token).await.unwrap();
    h.clock.advance(3600);
    h.service
        .change_password(
            principal.user_id,
            principal.chain_id,
            &Password::new(PASSWORD),
            &Password::new("another quite long passphrase"),
        )
        .await
        .unwrap();
    h.enrol_totp(first.user.id, "another quite long passphrase")
        .await;
    // Evening: an admin gives a role; the user signs out.
    h.clock.advance(3600);
    h.service
        .admin_update_user(
            &admin,
            first.user.id,
            shared::service::UserChange {
                roles: Some(vec!["support".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    h.service
        .logout(principal.user_id, principal.chain_id, false)
        .await
        .unwrap();

    let history = h
        .service
        .security_events(first.user.id, None, None)
        .await
        .unwrap();
    assert_eq!(
        kinds(&history),
        [
            EventKind::SessionEnded,
            EventKind::RolesChanged,
            EventKind::MfaEnabled,
            EventKind::PasswordChanged,
            EventKind::NewDevice,
            EventKind::SignedIn,
            EventKind::SignedIn,
            EventKind::Registered,
        ],
        "newest first"
    );
    let by_admin = &history.events[1];
    assert_eq!(by_admin.actor_id, Some(admin.user_id));
    assert_eq!(by_admin.detail["roles"], "support");
    let sign_in = &history.events[5];
    assert_eq!(sign_in.ip_prefix.as_deref(), Some("203.0.113.0/24"));
    assert_eq!(sign_in.user_agent.as_deref(), Some("Firefox/140 on Linux"));
    assert_eq!(sign_in.detail["amr"], "pwd");
    assert_eq!(sign_in.detail["session"], principal.chain_id.to_string());
    // Nothing secret in it.
    let shown = format!("{history:?}");
    for secret in [
        PASSWORD,
        "another quite long passphrase",
        &first.refresh_token,
    ] {
        assert!(!shown.contains(secret));
    }
    assert!(
        !shown.contains("203.0.113.77"),
        "the address only as a prefix"
    );
    // The admin's own history holds none of it.
    let admins = h
        .service
        .security_events(admin.user_id, None, None)
        .await
        .unwrap();
    assert!(!kinds(&admins).contains(&EventKind::RolesChanged));
}

async fn the_history_is_paged_newest_first(h: Harness) {
    let email = "pages@example.com";
    let first = h.register(email).await;
    for _ in 0..4 {
        h.clock.advance(120);
        h.sign_in(email, PASSWORD).await;
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = h
            .service
            .security_events(first.user.id, cursor.as_deref(), Some(2))
            .await
            .unwrap();
        assert!(page.events.len() <= 2);
        seen.extend(page.events.iter().map(|e| (e.occurred_at, e.id)));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // Registered, its sign-in, and four sign-ins each from a new device: 10 entries.
    assert_eq!(seen.len(), 10);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, none twice"
    );
    assert!(matches!(
        h.service
            .security_events(first.user.id, Some("not-a-cursor"), None)
            .await,
        Err(AuthError::InvalidField {
            field: "cursor",
            ..
        })
    ));
    assert!(matches!(
        h.service
            .security_events(first.user.id, None, Some(0))
            .await,
        Err(AuthError::InvalidField { field: "limit", .. })
    ));
    // Kept 90 days.
    h.clock.advance(91 * 86_400);
    let page = h
        .service
        .security_events(first.user.id, None, None)
        .await
        .unwrap();
    assert!(page.events.is_empty(), "entries expire after 90 days");
}

async fn a_lockout_and_a_new_device_are_in_the_history(h: Harness) {
    let email = "locked@example.com";
    let signed_in = h.register(email).await;
    // A sign-in with the device token of the registration: a known device.
    let known = h
        .service
        .login_from_device(
            email,
            &Password::new(PASSWORD),
            signed_in.device_token.as_deref(),
            None,
        )
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    assert_eq!(known.device_token, signed_in.device_token);
    let history = h
        .service
        .security_events(signed_in.user.id, None, None)
        .await
        .unwrap();
    assert!(!kinds(&history).contains(&EventKind::NewDevice));
    for _ in 0..h.config.login_max_failures {
        let _ = h
            .service
            .login(email, &Password::new("wrong guess number one"), None)
            .await;
    }
    h.service.outbox_idle().await;
    let history = h
        .service
        .security_events(signed_in.user.id, None, None)
        .await
        .unwrap();
    assert_eq!(kinds(&history)[0], EventKind::LoginLockedOut);
    assert_eq!(
        kinds(&history)
            .iter()
            .filter(|k| **k == EventKind::LoginLockedOut)
            .count(),
        1
    );
}

async fn a_new_device_is_mailed_only_when_asked(h: Harness) {
    let quiet = "quiet@example.com";
    h.register(quiet).await;
    h.clock.advance(120);
    h.sign_in(quiet, PASSWORD).await;
    assert!(
        !h.mail_to(quiet)
            .await
            .iter()
            .any(|m| m.subject.contains("new sign-in")),
        "off by default"
    );

    let mut config = (*h.config).clone();
    config.notify_new_device = true;
    let h = Harness::new_with(h.backend, config).await;
    let email = "watchful@example.com";
    let registered = h.register(email).await;
    assert!(
        !h.mail_to(email)
            .await
            .iter()
            .any(|m| m.subject.contains("new sign-in")),
        "the registration's own session is no new device"
    );
    let origin = shared::service::RequestOrigin {
        source_ip: Some("198.51.100.23".into()),
        user_agent: Some("Safari on iPhone".into()),
    };
    h.clock.advance(120);
    origin.scope(h.sign_in(email, PASSWORD)).await;
    let mail = h.mail_to(email).await;
    let notice = mail
        .iter()
        .find(|m| m.subject == "A new sign-in to your account")
        .expect("a new-device mail");
    assert!(notice.text.contains("Safari on iPhone"));
    assert!(notice.text.contains("198.51.100.0/24"));
    assert!(!notice.text.contains("198.51.100.23"));
    // The same device again (its token): no mail.
    h.service
        .login_from_device(
            email,
            &Password::new(PASSWORD),
            registered.device_token.as_deref(),
            None,
        )
        .await
        .unwrap();
    let count = |mail: &[local_api::mail::StoredMessage]| {
        mail.iter()
            .filter(|m| m.subject == "A new sign-in to your account")
            .count()
    };
    assert_eq!(count(&h.mail_to(email).await), 1);
}
