//! The epoch rule on both stores: whatever moves a user's epoch (a reset, a password change,
//! "log out everywhere", a confirmed address change, deactivation) ends every artifact issued
//! before it, of every kind; the session that made the change keeps working. Also what a reset
//! clears on an address that was never proven, fresh factors for sensitive changes, and the
//! re-authentication budget of a session. Black-box through the local server: the takeover
//! that started this.

use futures::future::join_all;
use integration_tests::{Harness, PASSWORD, app_links, on_both_stores};
use serde_json::json;
use shared::model::{LinkKind, SealedSecret};
use shared::service::AddressChange;
use shared::service::{MfaCode, SignIn};
use shared::store::AlongWithCode;
use shared::tokens::token_hash;
use shared::{AuthError, Clock, Password, SignedIn};
use uuid::Uuid;

const OWNER: &str = "owner@example.com";
const ATTACKER: &str = "attacker@example.com";
const NEW_PASSWORD: &str = "a brand new horse staple 2026";

on_both_stores!(
    a_reset_ends_an_address_change_the_attacker_asked_for,
    every_pending_artifact_dies_with_the_epoch,
    the_session_that_made_the_change_keeps_working,
    a_reset_of_an_unproven_address_clears_what_was_set_before,
    sensitive_changes_need_a_fresh_factor,
    reauthentication_is_charged_to_the_session_not_the_address,
    parallel_codes_on_one_challenge_get_exactly_five_checks,
    recovery_codes_are_stored_keyed_and_bound_to_their_user,
);

fn is_invalid_token<T: std::fmt::Debug>(result: &Result<T, AuthError>) -> bool {
    matches!(result, Err(AuthError::InvalidToken(_)))
}

/// The owner resets the password through the link mailed to `address`.
async fn reset(h: &Harness, address: &str, password: &str) {
    h.service
        .forgot_password(address, None, &app_links())
        .await
        .unwrap();
    let token = h.link_token(address, "reset-password").await;
    h.service
        .reset_password(&token, &Password::new(password))
        .await
        .expect("the owner's reset");
}

/// The attack this rule closes: with the password and a session, the attacker asks to move the
/// account to its own address; the owner, warned, resets and logs out everywhere; the
/// attacker's address-change link must then be dead.
async fn a_reset_ends_an_address_change_the_attacker_asked_for(h: Harness) {
    let owner = h.register_with_mail(OWNER).await;
    let attacker = h.sign_in(OWNER, PASSWORD).await;
    let principal = h.service.authorize(&attacker.access_token).await.unwrap();
    h.service
        .start_email_change(
            principal.user_id,
            principal.chain_id,
            AddressChange {
                new_email: ATTACKER,
                password: &Password::new(PASSWORD),
                code: None,
            },
            None,
            &app_links(),
        )
        .await
        .unwrap();
    let stolen = h.link_token(ATTACKER, "verify-email").await;
    assert_eq!(
        h.mail_to(OWNER).await[0].subject,
        "Your email address is about to change"
    );
    reset(&h, OWNER, NEW_PASSWORD).await;
    let fresh = h.sign_in(OWNER, NEW_PASSWORD).await;
    let mine = h.service.authorize(&fresh.access_token).await.unwrap();
    h.service
        .logout(mine.user_id, mine.chain_id, true)
        .await
        .unwrap();

    assert!(is_invalid_token(&h.service.verify_email(&stolen).await));
    let user = h.service.me(owner.user.id).await.unwrap();
    assert_eq!(user.email, OWNER, "the address stays the owner's");
    assert!(h.store.user_by_email(ATTACKER).await.unwrap().is_none());
    // And so forgot-password on the attacker's address reaches nothing.
    h.service
        .forgot_password(ATTACKER, None, &app_links())
        .await
        .unwrap();
    assert!(
        h.mail_to(ATTACKER)
            .await
            .iter()
            .all(|m| !m.text.contains("reset-password"))
    );
}

/// Everything pending at one moment, for a user signed in with the password.
struct Pending {
    verification: String,
    reset: String,
    change: String,
    mfa_token: String,
    device_token: String,
    session: SignedIn,
}

/// Issues one artifact of every kind for `OWNER` (TOTP on, so a login answers a challenge).
async fn pending(h: &Harness, session: &SignedIn, secret: &[u8]) -> Pending {
    let principal = h.service.authorize(&session.access_token).await.unwrap();
    let user = h.service.me(principal.user_id).await.unwrap();
    // A verification link (the address is verified already: issue one through the store).
    let verification = Uuid::new_v4().simple().to_string();
    let link = shared::model::EmailLink {
        token_hash: token_hash(&verification),
        kind: LinkKind::VerifyEmail,
        user_id: user.id,
        email: user.email.clone(),
        created_at: h.clock.now(),
        expires_at: h.clock.now() + 3600,
        epoch: user.session_epoch,
        keep_chain: None,
    };
    assert!(h.store.issue_link(&link).await.unwrap());
    h.service
        .forgot_password(&user.email, None, &app_links())
        .await
        .unwrap();
    let reset = h.link_token(&user.email, "reset-password").await;
    h.clock.advance(31);
    let code = MfaCode::totp(&h.totp_code(secret), "code").unwrap();
    h.service
        .start_email_change(
            user.id,
            principal.chain_id,
            AddressChange {
                new_email: "elsewhere@example.com",
                password: &Password::new(PASSWORD),
                code: Some(&code),
            },
            None,
            &app_links(),
        )
        .await
        .unwrap();
    let change = h.link_token("elsewhere@example.com", "verify-email").await;
    let device_token = session.device_token.clone().expect("a device token");
    let SignIn::MfaRequired(required) = h
        .service
        .login(&user.email, &Password::new(PASSWORD), None)
        .await
        .unwrap()
    else {
        panic!("TOTP is on")
    };
    Pending {
        verification,
        reset,
        change,
        mfa_token: required.mfa_token,
        device_token,
        session: session.clone(),
    }
}

/// None of `pending` works any more.
async fn assert_all_dead(h: &Harness, pending: &Pending, secret: &[u8], what: &str) {
    let link = |token: &str| token_hash(token);
    let user = h
        .store
        .user_by_id(pending.session.user.id)
        .await
        .unwrap()
        .expect("the owner's account");
    let now = h.clock.now();
    assert!(
        is_invalid_token(&h.service.verify_email(&pending.verification).await),
        "{what}: verification link"
    );
    assert!(
        is_invalid_token(
            &h.service
                .reset_password(&pending.reset, &Password::new("one more horse staple 12"))
                .await
        ),
        "{what}: reset link"
    );
    assert!(
        is_invalid_token(&h.service.verify_email(&pending.change).await),
        "{what}: address-change link"
    );
    h.clock.advance(31);
    let code = MfaCode::totp(&h.totp_code(secret), "code").unwrap();
    let finished = h.service.verify_mfa(&pending.mfa_token, &code).await;
    assert!(
        is_invalid_token(&finished),
        "{what}: mfa_token {finished:?}"
    );
    let device = h
        .store
        .device(&link(&pending.device_token), now)
        .await
        .unwrap()
        .expect("the device item stays until it expires");
    assert!(!device.vouches_for(&user, now), "{what}: device token");
    assert!(
        is_invalid_token(&h.service.authorize(&pending.session.access_token).await),
        "{what}: session"
    );
    assert!(
        is_invalid_token(&h.service.refresh(&pending.session.refresh_token).await),
        "{what}: refresh token"
    );
}

async fn every_pending_artifact_dies_with_the_epoch(h: Harness) {
    let owner = h.register_with_mail(OWNER).await;
    let enrolled = h.enrol_totp(owner.user.id, PASSWORD).await;
    let secret = enrolled.secret;
    let id = owner.user.id;
    // A sign-in that keeps working through the changes a session makes, to make them from.
    let signed = |h: &Harness| {
        let service = h.service.clone();
        let clock = h.clock.clone();
        let secret = secret.clone();
        async move {
            let SignIn::MfaRequired(required) = service
                .login(OWNER, &Password::new(PASSWORD), None)
                .await
                .unwrap()
            else {
                panic!("TOTP is on")
            };
            clock.advance(31);
            let code = MfaCode::totp(
                &shared::mfa::TotpCode::new(&secret, "t", "t")
                    .unwrap()
                    .generate(Clock::now(&*clock) as u64),
                "code",
            )
            .unwrap();
            service
                .verify_mfa(&required.mfa_token, &code)
                .await
                .unwrap()
        }
    };
    let new_address = "moved@example.com";

    // "Log out everywhere".
    let session = signed(&h).await;
    let before = pending(&h, &session, &secret).await;
    let principal = h.service.authorize(&session.access_token).await.unwrap();
    h.service
        .logout(id, principal.chain_id, true)
        .await
        .unwrap();
    assert_all_dead(&h, &before, &secret, "log out everywhere").await;

    // Deactivation (and reactivation, which revives nothing).
    h.clock.advance(61);
    let session = signed(&h).await;
    let before = pending(&h, &session, &secret).await;
    let now = h.clock.now();
    assert!(h.store.set_active(id, false, now).await.unwrap());
    assert!(h.store.set_active(id, true, now).await.unwrap());
    assert_all_dead(&h, &before, &secret, "deactivation").await;

    // A password change (the session that made it is checked below).
    h.clock.advance(61);
    let session = signed(&h).await;
    let before = pending(&h, &session, &secret).await;
    let other = signed(&h).await;
    let principal = h.service.authorize(&other.access_token).await.unwrap();
    h.service
        .change_password(
            id,
            principal.chain_id,
            &Password::new(PASSWORD),
            &Password::new(NEW_PASSWORD),
        )
        .await
        .unwrap();
    assert_all_dead(&h, &before, &secret, "password change").await;
    h.service
        .change_password(
            id,
            principal.chain_id,
            &Password::new(NEW_PASSWORD),
            &Password::new(PASSWORD),
        )
        .await
        .unwrap();

    // A password reset.
    h.clock.advance(3601);
    let session = signed(&h).await;
    let before = pending(&h, &session, &secret).await;
    h.service
        .forgot_password(OWNER, None, &app_links())
        .await
        .unwrap();
    let token = h.link_token(OWNER, "reset-password").await;
    h.service
        .reset_password(&token, &Password::new(PASSWORD))
        .await
        .unwrap();
    assert_all_dead(&h, &before, &secret, "password reset").await;

    // A confirmed address change (a second one, asked for after the artifacts).
    h.clock.advance(61);
    let session = signed(&h).await;
    let before = pending(&h, &session, &secret).await;
    let other = signed(&h).await;
    let principal = h.service.authorize(&other.access_token).await.unwrap();
    h.clock.advance(61);
    let code = MfaCode::totp(&h.totp_code(&secret), "code").unwrap();
    h.service
        .start_email_change(
            id,
            principal.chain_id,
            AddressChange {
                new_email: new_address,
                password: &Password::new(PASSWORD),
                code: Some(&code),
            },
            None,
            &app_links(),
        )
        .await
        .unwrap();
    let token = h.link_token(new_address, "verify-email").await;
    h.service.verify_email(&token).await.unwrap();
    assert_eq!(h.service.me(id).await.unwrap().email, new_address);
    assert_all_dead(&h, &before, &secret, "address change").await;
}

async fn the_session_that_made_the_change_keeps_working(h: Harness) {
    let owner = h.register_with_mail(OWNER).await;
    let id = owner.user.id;
    let other = h.sign_in(OWNER, PASSWORD).await;
    let asking = h.service.authorize(&owner.access_token).await.unwrap();

    // An address change: the session that asked stays, with the new address.
    let new = "new@example.com";
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
    let token = h.link_token(new, "verify-email").await;
    h.service.verify_email(&token).await.unwrap();
    assert_eq!(
        h.service
            .authorize(&owner.access_token)
            .await
            .unwrap()
            .user_email,
        new
    );
    let refreshed = h.service.refresh(&owner.refresh_token).await.unwrap();
    assert!(h.service.authorize(&refreshed.access_token).await.is_ok());
    assert!(is_invalid_token(
        &h.service.authorize(&other.access_token).await
    ));

    // A session that ended meanwhile is not brought back by the change it asked for.
    let second = h.sign_in(new, PASSWORD).await;
    let second_principal = h.service.authorize(&second.access_token).await.unwrap();
    h.clock.advance(61);
    h.service
        .start_email_change(
            id,
            second_principal.chain_id,
            AddressChange {
                new_email: "third@example.com",
                password: &Password::new(PASSWORD),
                code: None,
            },
            None,
            &app_links(),
        )
        .await
        .unwrap();
    h.service
        .revoke_session(id, second_principal.chain_id)
        .await
        .unwrap();
    let token = h.link_token("third@example.com", "verify-email").await;
    h.service.verify_email(&token).await.unwrap();
    assert_eq!(h.service.me(id).await.unwrap().email, "third@example.com");
    assert!(is_invalid_token(
        &h.service.authorize(&second.access_token).await
    ));
    assert!(is_invalid_token(
        &h.service.authorize(&refreshed.access_token).await
    ));
}

/// Pre-hijacking: someone registers the victim's address first and sets up a second factor
/// (here straight through the store, as an account from before enrolment needed a verified
/// address would have it). The victim's reset proves the mailbox and clears it all.
async fn a_reset_of_an_unproven_address_clears_what_was_set_before(h: Harness) {
    let squatter = h.register_with_mail(OWNER).await;
    let id = squatter.user.id;
    let now = h.clock.now();
    let pending = SealedSecret {
        kid: "k".into(),
        nonce: "n".into(),
        ciphertext: "c".into(),
    };
    assert!(h.store.set_pending_totp(id, &pending, now).await.unwrap());
    assert!(
        h.store
            .enable_totp(id, &pending, 1, &["k.hash".into()], now)
            .await
            .unwrap()
    );
    assert!(h.service.me(id).await.unwrap().mfa.mfa_enabled);
    // Enrolling through the service would have been refused.
    assert!(matches!(
        h.service
            .totp_setup(id, Uuid::new_v4(), &Password::new(PASSWORD))
            .await,
        Err(AuthError::MfaAlreadyEnabled | AuthError::EmailUnverified)
    ));

    reset(&h, OWNER, NEW_PASSWORD).await;
    let user = h.service.me(id).await.unwrap();
    assert!(user.email_verified, "the reset proved the mailbox");
    assert!(!user.mfa.mfa_enabled && user.mfa.totp.is_none() && user.mfa.recovery_codes.is_empty());
    assert!(is_invalid_token(
        &h.service.authorize(&squatter.access_token).await
    ));
    let device = h
        .store
        .device(
            &token_hash(squatter.device_token.as_deref().unwrap()),
            h.clock.now(),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!device.vouches_for(&user, h.clock.now()));
    // The owner signs in with the new password alone.
    assert!(matches!(
        h.service
            .login(OWNER, &Password::new(NEW_PASSWORD), None)
            .await
            .unwrap(),
        SignIn::SignedIn(_)
    ));

    // On a verified address, a reset leaves TOTP on.
    let verified = h.register_with_mail("verified@example.com").await;
    h.enrol_totp(verified.user.id, PASSWORD).await;
    h.clock.advance(3601);
    reset(&h, "verified@example.com", NEW_PASSWORD).await;
    assert!(
        h.service
            .me(verified.user.id)
            .await
            .unwrap()
            .mfa
            .mfa_enabled
    );
}

async fn sensitive_changes_need_a_fresh_factor(h: Harness) {
    let owner = h.register_with_mail(OWNER).await;
    let id = owner.user.id;
    let chain = h
        .service
        .authorize(&owner.access_token)
        .await
        .unwrap()
        .chain_id;
    let enrolled = h.enrol_totp(id, PASSWORD).await;
    let code = |h: &Harness| {
        h.clock.advance(31);
        MfaCode::totp(&h.totp_code(&enrolled.secret), "code").unwrap()
    };
    let change = |password: &'static str, code: Option<MfaCode>| {
        let service = h.service.clone();
        async move {
            service
                .start_email_change(
                    id,
                    chain,
                    AddressChange {
                        new_email: "new@example.com",
                        password: &Password::new(password),
                        code: code.as_ref(),
                    },
                    None,
                    &app_links(),
                )
                .await
        }
    };
    // With TOTP on, an address change needs the password and a code.
    assert!(matches!(
        change(PASSWORD, None).await,
        Err(AuthError::MalformedCode { field: "code" })
    ));
    let wrong = MfaCode::totp("000000", "code").unwrap();
    let right_now = h.totp_code(&enrolled.secret);
    if right_now != "000000" {
        assert!(matches!(
            change(PASSWORD, Some(wrong)).await,
            Err(AuthError::InvalidCode)
        ));
    }
    assert!(matches!(
        change("not the password at all", Some(code(&h))).await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(
        h.mail_to("new@example.com").await.is_empty(),
        "nothing sent"
    );
    change(PASSWORD, Some(code(&h))).await.unwrap();
    assert_eq!(h.mail_to("new@example.com").await.len(), 1);

    // New recovery codes need the password and a code.
    assert!(matches!(
        h.service
            .regenerate_recovery_codes(
                id,
                chain,
                &Password::new("not the password at all"),
                &code(&h)
            )
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    assert_eq!(
        h.service
            .regenerate_recovery_codes(id, chain, &Password::new(PASSWORD), &code(&h))
            .await
            .unwrap()
            .len(),
        10
    );
    // Turning TOTP off needs both too.
    assert!(matches!(
        h.service
            .totp_disable(
                id,
                chain,
                &Password::new("not the password at all"),
                &code(&h)
            )
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(h.service.me(id).await.unwrap().mfa.mfa_enabled);
    h.service
        .totp_disable(id, chain, &Password::new(PASSWORD), &code(&h))
        .await
        .unwrap();
    assert!(!h.service.me(id).await.unwrap().mfa.mfa_enabled);
}

async fn reauthentication_is_charged_to_the_session_not_the_address(h: Harness) {
    let owner = h.register_with_mail(OWNER).await;
    let id = owner.user.id;
    let mine = h.service.authorize(&owner.access_token).await.unwrap();
    // Someone fails logins on the address until it is locked.
    let mut locked = false;
    for _ in 0..8 {
        if let Err(AuthError::TooManyRequests { .. }) = h
            .service
            .login(OWNER, &Password::new("a wrong guess entirely"), None)
            .await
        {
            locked = true;
        }
    }
    assert!(locked, "the address is locked");
    // The signed-in owner still changes the password.
    h.service
        .change_password(
            id,
            mine.chain_id,
            &Password::new(PASSWORD),
            &Password::new(NEW_PASSWORD),
        )
        .await
        .expect("not held back by the address's lockout");

    // A session guessing the password waits as a login would, and only that session does.
    let thief = sign_in_after_lock(&h).await;
    let stolen = h.service.authorize(&thief.access_token).await.unwrap();
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(
            h.service
                .change_password(
                    id,
                    stolen.chain_id,
                    &Password::new("guess guess guess 1"),
                    &Password::new("whatever new horse staple 5"),
                )
                .await,
        );
    }
    assert!(
        answers[..5]
            .iter()
            .all(|a| matches!(a, Err(AuthError::InvalidCredentials))),
        "{answers:?}"
    );
    assert!(
        matches!(answers[5], Err(AuthError::TooManyRequests { .. })),
        "{answers:?}"
    );
    h.service
        .change_password(
            id,
            mine.chain_id,
            &Password::new(NEW_PASSWORD),
            &Password::new(PASSWORD),
        )
        .await
        .expect("the owner's session has a budget of its own");
}

/// A second session of the owner, once the address's lockout has passed.
async fn sign_in_after_lock(h: &Harness) -> SignedIn {
    h.clock.advance(16 * 60);
    h.sign_in(OWNER, NEW_PASSWORD).await
}

async fn parallel_codes_on_one_challenge_get_exactly_five_checks(h: Harness) {
    let owner = h.register_with_mail(OWNER).await;
    let enrolled = h.enrol_totp(owner.user.id, PASSWORD).await;
    let SignIn::MfaRequired(required) = h
        .service
        .login(OWNER, &Password::new(PASSWORD), None)
        .await
        .unwrap()
    else {
        panic!("TOTP is on")
    };
    let right = h.totp_code(&enrolled.secret);
    let wrong = format!(
        "{:06}",
        (right.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    let guesses = (0..20).map(|_| {
        let (service, token) = (h.service.clone(), required.mfa_token.clone());
        let code = MfaCode::totp(&wrong, "code").unwrap();
        tokio::spawn(async move { service.verify_mfa(&token, &code).await })
    });
    let answers: Vec<_> = join_all(guesses)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let checked = answers
        .iter()
        .filter(|a| matches!(a, Err(AuthError::InvalidCode)))
        .count();
    let refused = answers
        .iter()
        .filter(|a| matches!(a, Err(AuthError::InvalidToken(_))))
        .count();
    assert_eq!((checked, refused), (5, 15), "{answers:?}");
}

async fn recovery_codes_are_stored_keyed_and_bound_to_their_user(h: Harness) {
    let owner = h.register_with_mail(OWNER).await;
    let enrolled = h.enrol_totp(owner.user.id, PASSWORD).await;
    let stored = h.store.user_by_id(owner.user.id).await.unwrap().unwrap();
    for code in &enrolled.recovery_codes {
        let normal = shared::mfa::normalize_recovery_code(code).unwrap();
        let bare: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, normal.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            !stored.mfa.recovery_codes.contains_key(&bare),
            "not a bare SHA-256"
        );
        assert!(
            !stored
                .mfa
                .recovery_codes
                .keys()
                .any(|k| k.contains(&normal))
        );
    }
    assert!(stored.mfa.recovery_codes.keys().all(|k| {
        k.split_once('.')
            .is_some_and(|(kid, mac)| !kid.is_empty() && mac.len() == 64)
    }));
    // Another user's code set, copied onto this user's item, opens nothing: codes are bound to
    // their user.
    let other = h.register_with_mail("other@example.com").await;
    let theirs = h.enrol_totp(other.user.id, PASSWORD).await;
    let theirs_stored = h.store.user_by_id(other.user.id).await.unwrap().unwrap();
    let hash = theirs_stored
        .mfa
        .recovery_codes
        .keys()
        .next()
        .unwrap()
        .clone();
    let copied = shared::store::SpentCode::Recovery { hash };
    assert!(
        !h.store
            .spend_code(
                owner.user.id,
                &copied,
                AlongWithCode::Nothing,
                h.clock.now()
            )
            .await
            .unwrap(),
        "another user's hash is not in this user's set"
    );
    let SignIn::MfaRequired(required) = h
        .service
        .login(OWNER, &Password::new(PASSWORD), None)
        .await
        .unwrap()
    else {
        panic!("TOTP is on")
    };
    let code = MfaCode::recovery(&theirs.recovery_codes[0], "recovery_code").unwrap();
    assert!(matches!(
        h.service.verify_mfa(&required.mfa_token, &code).await,
        Err(AuthError::InvalidCode)
    ));
    let mine = MfaCode::recovery(&enrolled.recovery_codes[0], "recovery_code").unwrap();
    assert!(
        h.service
            .verify_mfa(&required.mfa_token, &mine)
            .await
            .is_ok()
    );
}

/// Black-box: the takeover attempt through the local server, as two HTTP clients would make it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_takeover_fails_through_the_local_server() {
    let h = Harness::embedded();
    let api = h.serve_local_api().await;
    let registered = api
        .post_json(
            "/auth/register",
            &json!({"email": OWNER, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(registered.status, 201);
    let login = api
        .post_json(
            "/auth/login",
            &json!({"email": OWNER, "password": PASSWORD}),
            None,
        )
        .await;
    let attacker = login.json()["access_token"].as_str().unwrap().to_owned();
    // The attacker asks; the answer is the same as for any address.
    let asked = api
        .post_json(
            "/auth/email",
            &json!({"email": ATTACKER, "password": PASSWORD}),
            Some(&attacker),
        )
        .await;
    assert_eq!(asked.status, 202);
    let stolen = h.link_token(ATTACKER, "verify-email").await;
    // The owner resets and logs out everywhere.
    assert_eq!(
        api.post_json("/auth/password/forgot", &json!({"email": OWNER}), None)
            .await
            .status,
        202
    );
    let reset = h.link_token(OWNER, "reset-password").await;
    assert_eq!(
        api.post_json(
            "/auth/password/reset",
            &json!({"token": reset, "password": NEW_PASSWORD}),
            None
        )
        .await
        .status,
        204
    );
    // The attacker's session ended with the reset; its link too.
    assert_eq!(api.get("/auth/me", Some(&attacker)).await.status, 403);
    let confirm = api
        .post_json("/auth/email/verify", &json!({"token": stolen}), None)
        .await;
    assert_eq!(confirm.status, 401);
    assert_eq!(confirm.code().as_deref(), Some("invalid_token"));
    let relogin = api
        .post_json(
            "/auth/login",
            &json!({"email": OWNER, "password": NEW_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(relogin.status, 200);
    let me = api
        .get(
            "/auth/me",
            Some(relogin.json()["access_token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(me.json()["user"]["email"], OWNER);
    // An address change to a taken address answers as any other.
    api.post_json(
        "/auth/register",
        &json!({"email": ATTACKER, "password": PASSWORD}),
        None,
    )
    .await;
    let owner_access = relogin.json()["access_token"].as_str().unwrap().to_owned();
    h.clock.advance(61); // one address change a minute per user
    let taken = api
        .post_json(
            "/auth/email",
            &json!({"email": ATTACKER, "password": NEW_PASSWORD}),
            Some(&owner_access),
        )
        .await;
    assert_eq!((taken.status, taken.json()), (asked.status, asked.json()));
}
