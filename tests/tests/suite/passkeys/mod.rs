//! Passkeys on both stores, with a soft authenticator: enrolment (a verified address and a
//! fresh factor first), sign-in with an email and without, with user verification and
//! without (then TOTP still asks for its code), the signature counter rule, ceremonies that
//! work once, expire and die with the epoch, answers for another RP ID or origin, removal and
//! the last way in, and a passkey as the second factor of a password sign-in.

mod browser;

use integration_tests::passkeys::SoftKey;
use integration_tests::{Harness, PASSWORD, on_both_stores};
use serde_json::{Value, json};
use shared::model::{Amr, TokenType};
use shared::service::SignIn;
use shared::store::PasskeyAdded;
use shared::{AuthError, Clock, Password};
use uuid::Uuid;

const EMAIL: &str = "grace@example.com";

on_both_stores!(
    a_passkey_is_added_after_a_fresh_factor_on_a_verified_address,
    it_signs_in_with_an_email_and_without,
    without_user_verification_totp_still_asks_for_its_code,
    a_counter_that_goes_backwards_refuses_and_tells_the_user,
    a_ceremony_works_once_lives_five_minutes_and_dies_with_the_epoch,
    an_answer_for_another_rp_id_or_origin_is_refused,
    removal_needs_a_fresh_factor_and_keeps_a_way_in,
    a_passkey_finishes_a_password_sign_in,
    one_credential_belongs_to_one_account,
);

/// The user's id and the chain of the sign-in that registered them (a fresh factor for ten
/// minutes).
async fn verified_user(h: &Harness) -> (Uuid, Uuid) {
    let signed_in = h.register(EMAIL).await;
    h.verify_address(signed_in.user.id).await;
    (signed_in.user.id, chain_of(h, &signed_in.access_token))
}

fn chain_of(h: &Harness, access_token: &str) -> Uuid {
    h.service
        .tokens()
        .verify(access_token, TokenType::Access, h.clock.now())
        .expect("own access token verifies")
        .sid
}

fn amr_of(h: &Harness, access_token: &str) -> Vec<Amr> {
    h.service
        .tokens()
        .verify(access_token, TokenType::Access, h.clock.now())
        .expect("own access token verifies")
        .amr
        .expect("amr")
}

/// Adds a passkey made by `key` to the user, confirmed with the password.
async fn add(h: &Harness, user: Uuid, chain: Uuid, key: &mut SoftKey) -> String {
    let password = Password::new(PASSWORD);
    let options = h
        .service
        .passkey_registration_options(user, chain, Some(&password))
        .await
        .expect("creation options");
    let answer = key.create(&options.public_key);
    h.service
        .register_passkey(user, &options.ceremony_id, &answer, Some("Laptop"))
        .await
        .expect("passkey added")
        .id
}

/// A sign-in ceremony: its id and what `key` answers to it.
async fn sign_in_answer(h: &Harness, email: Option<&str>, key: &mut SoftKey) -> (String, Value) {
    let options = h
        .service
        .passkey_sign_in_options(email, Some("192.0.2.7"))
        .await
        .expect("request options");
    let answer = key.get(&options.public_key);
    (options.ceremony_id, answer)
}

async fn sign_in(h: &Harness, email: Option<&str>, key: &mut SoftKey) -> Result<SignIn, AuthError> {
    let (ceremony, answer) = sign_in_answer(h, email, key).await;
    h.service.passkey_sign_in(&ceremony, &answer).await
}

async fn a_passkey_is_added_after_a_fresh_factor_on_a_verified_address(h: Harness) {
    let signed_in = h.register(EMAIL).await;
    let (user, chain) = (signed_in.user.id, chain_of(&h, &signed_in.access_token));
    let password = Password::new(PASSWORD);
    assert!(matches!(
        h.service
            .passkey_registration_options(user, chain, Some(&password))
            .await,
        Err(AuthError::EmailUnverified)
    ));
    h.verify_address(user).await;

    // Within ten minutes of the sign-in no password is needed; after, it is.
    let options = h
        .service
        .passkey_registration_options(user, chain, None)
        .await
        .expect("a fresh sign-in is a fresh factor");
    assert_eq!(options.public_key["rp"]["id"], "auth.test.example");
    assert_eq!(
        options.public_key["authenticatorSelection"]["residentKey"],
        "preferred"
    );
    h.clock.advance(601);
    assert!(matches!(
        h.service
            .passkey_registration_options(user, chain, None)
            .await,
        Err(AuthError::FreshFactorRequired)
    ));
    assert!(matches!(
        h.service
            .passkey_registration_options(user, chain, Some(&Password::new("wrong password 1")))
            .await,
        Err(AuthError::InvalidCredentials)
    ));

    let mut key = SoftKey::new(true);
    let id = add(&h, user, chain, &mut key).await;
    let listed = h.service.passkeys(user).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].name, "Laptop");
    assert_eq!(listed[0].last_used_at, None);
    let mail = h.mail_to(EMAIL).await;
    assert!(
        mail.iter().any(|m| m.subject.contains("passkey was added")),
        "the user is told"
    );

    // The exclusion list names it in the next creation options.
    let options = h
        .service
        .passkey_registration_options(user, chain, Some(&password))
        .await
        .unwrap();
    assert_eq!(options.public_key["excludeCredentials"][0]["id"], json!(id));

    let renamed = h.service.rename_passkey(user, &id, "Phone").await.unwrap();
    assert_eq!(renamed.name, "Phone");
    assert!(matches!(
        h.service.rename_passkey(user, "nope", "Phone").await,
        Err(AuthError::PasskeyNotFound)
    ));
}

async fn it_signs_in_with_an_email_and_without(h: Harness) {
    let (user, chain) = verified_user(&h).await;
    let mut key = SoftKey::new(true);
    let id = add(&h, user, chain, &mut key).await;

    for email in [Some(EMAIL), None] {
        let signed_in = sign_in(&h, email, &mut key)
            .await
            .expect("a passkey signs in")
            .signed_in()
            .expect("no second step after user verification");
        assert_eq!(signed_in.user.id, user);
        assert!(signed_in.device_token.is_some());
        assert_eq!(amr_of(&h, &signed_in.access_token), [Amr::Pop, Amr::Mfa]);
        let principal = h
            .service
            .authorize(&signed_in.access_token)
            .await
            .expect("the authorizer admits it");
        assert!(principal.mfa, "user verification counts as a second factor");
    }
    let listed = h.service.passkeys(user).await.unwrap();
    assert_eq!(listed[0].id, id);
    assert!(listed[0].last_used_at.is_some(), "its use is recorded");

    // Options say nothing about an address: the same shape for a stranger.
    let known = h
        .service
        .passkey_sign_in_options(Some(EMAIL), None)
        .await
        .unwrap();
    let unknown = h
        .service
        .passkey_sign_in_options(Some("nobody@example.com"), None)
        .await
        .unwrap();
    let shape = |v: &Value| {
        let mut v = v.clone();
        v["challenge"] = json!("");
        v
    };
    assert_eq!(shape(&known.public_key), shape(&unknown.public_key));
    assert_eq!(known.public_key["allowCredentials"], json!([]));
    // Another address's ceremony takes no passkey of this account.
    let other = h.register("other@example.com").await;
    assert_ne!(other.user.id, user);
    assert!(matches!(
        sign_in(&h, Some("other@example.com"), &mut key).await,
        Err(AuthError::PasskeyRefused)
    ));
    assert!(matches!(
        sign_in(&h, Some("nobody@example.com"), &mut key).await,
        Err(AuthError::PasskeyRefused)
    ));
}

async fn without_user_verification_totp_still_asks_for_its_code(h: Harness) {
    let (user, chain) = verified_user(&h).await;
    let mut key = SoftKey::new(false);
    add(&h, user, chain, &mut key).await;

    let signed_in = sign_in(&h, None, &mut key)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    assert_eq!(amr_of(&h, &signed_in.access_token), [Amr::Pop]);
    let principal = h.service.authorize(&signed_in.access_token).await.unwrap();
    assert!(!principal.mfa, "presence alone is one factor");

    let enrolled = h.enrol_totp(user, PASSWORD).await;
    let required = match sign_in(&h, Some(EMAIL), &mut key).await.unwrap() {
        SignIn::MfaRequired(required) => required,
        SignIn::SignedIn(_) => panic!("a passkey without user verification is one factor"),
    };
    assert_eq!(required.methods, ["totp", "recovery_code"]);
    let code = h.totp_code(&enrolled.secret);
    let signed_in = h
        .service
        .verify_mfa(
            &required.mfa_token,
            &shared::service::MfaCode::totp(&code, "code").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(amr_of(&h, &signed_in.access_token), [Amr::Pop, Amr::Otp]);
}

async fn a_counter_that_goes_backwards_refuses_and_tells_the_user(h: Harness) {
    let (user, chain) = verified_user(&h).await;
    let mut key = SoftKey::new(true);
    let id = add(&h, user, chain, &mut key).await;
    sign_in(&h, None, &mut key).await.expect("first sign-in");

    // As if a copy of the key had signed in many times: the stored counter is ahead.
    let stored = h.store.user_by_id(user).await.unwrap().unwrap().passkeys[&id].clone();
    let mut credential: Value = serde_json::from_str(&stored.credential).unwrap();
    assert_eq!(credential["counter"], 1, "the soft key counts");
    credential["counter"] = json!(1000);
    assert!(
        h.store
            .use_passkey(
                user,
                &id,
                &stored.credential,
                &credential.to_string(),
                false,
                h.clock.now()
            )
            .await
            .unwrap()
    );
    assert!(matches!(
        sign_in(&h, None, &mut key).await,
        Err(AuthError::PasskeyRefused)
    ));
    let mail = h.mail_to(EMAIL).await;
    assert!(
        mail.iter().any(|m| m.subject.contains("was refused")),
        "the user is told"
    );
}

async fn a_ceremony_works_once_lives_five_minutes_and_dies_with_the_epoch(h: Harness) {
    let (user, chain) = verified_user(&h).await;
    let mut key = SoftKey::new(true);
    add(&h, user, chain, &mut key).await;

    // Once.
    let (ceremony, answer) = sign_in_answer(&h, Some(EMAIL), &mut key).await;
    h.service.passkey_sign_in(&ceremony, &answer).await.unwrap();
    assert!(matches!(
        h.service.passkey_sign_in(&ceremony, &answer).await,
        Err(AuthError::InvalidToken(_))
    ));

    // Five minutes.
    let (ceremony, answer) = sign_in_answer(&h, Some(EMAIL), &mut key).await;
    h.clock.advance(301);
    assert!(matches!(
        h.service.passkey_sign_in(&ceremony, &answer).await,
        Err(AuthError::InvalidToken(_))
    ));

    // A ceremony started before "log out everywhere" is dead after it, for a sign-in and for
    // an enrolment.
    let signed_in = h.sign_in(EMAIL, PASSWORD).await;
    let chain = chain_of(&h, &signed_in.access_token);
    let (ceremony, answer) = sign_in_answer(&h, Some(EMAIL), &mut key).await;
    let enrolment = h
        .service
        .passkey_registration_options(user, chain, Some(&Password::new(PASSWORD)))
        .await
        .unwrap();
    let mut second = SoftKey::new(true);
    let created = second.create(&enrolment.public_key);
    h.service.logout(user, chain, true).await.unwrap();
    assert!(matches!(
        h.service.passkey_sign_in(&ceremony, &answer).await,
        Err(AuthError::InvalidToken(_))
    ));
    assert!(matches!(
        h.service
            .register_passkey(user, &enrolment.ceremony_id, &created, None)
            .await,
        Err(AuthError::InvalidToken(_))
    ));

    // And one started before a password reset is dead after it.
    let (ceremony, answer) = sign_in_answer(&h, Some(EMAIL), &mut key).await;
    h.service
        .forgot_password(EMAIL, None, &integration_tests::app_links())
        .await
        .unwrap();
    let token = h.link_token(EMAIL, "reset-password").await;
    h.service
        .reset_password(&token, &Password::new("a brand new horse staple 2026"))
        .await
        .unwrap();
    assert!(matches!(
        h.service.passkey_sign_in(&ceremony, &answer).await,
        Err(AuthError::InvalidToken(_))
    ));

    // A ceremony of one kind finishes no other, and a made-up id is no ceremony.
    let (ceremony, answer) = sign_in_answer(&h, None, &mut key).await;
    assert!(matches!(
        h.service
            .register_passkey(user, &ceremony, &answer, None)
            .await,
        Err(AuthError::InvalidToken(_))
    ));
    assert!(matches!(
        h.service.passkey_sign_in("not-a-ceremony", &answer).await,
        Err(AuthError::InvalidToken(_))
    ));
}

async fn an_answer_for_another_rp_id_or_origin_is_refused(h: Harness) {
    let (user, chain) = verified_user(&h).await;
    let mut key = SoftKey::new(true);
    add(&h, user, chain, &mut key).await;
    // The same key, used from a page on a subdomain (a registrable suffix, so the key signs),
    // and for the parent domain as RP ID.
    for (origin, rp_id) in [
        ("https://evil.auth.test.example", "auth.test.example"),
        ("https://auth.test.example", "test.example"),
    ] {
        let options = h.service.passkey_sign_in_options(None, None).await.unwrap();
        let mut public_key = options.public_key.clone();
        public_key["rpId"] = json!(rp_id);
        let answer = key.get_from(origin, &public_key);
        assert!(
            matches!(
                h.service
                    .passkey_sign_in(&options.ceremony_id, &answer)
                    .await,
                Err(AuthError::PasskeyRefused)
            ),
            "{origin} {rp_id}"
        );
    }
    // And the right one still signs in.
    sign_in(&h, None, &mut key).await.expect("the right origin");
}

async fn removal_needs_a_fresh_factor_and_keeps_a_way_in(h: Harness) {
    let (user, chain) = verified_user(&h).await;
    let mut key = SoftKey::new(true);
    let id = add(&h, user, chain, &mut key).await;
    h.clock.advance(601);
    assert!(matches!(
        h.service.remove_passkey(user, chain, &id, None).await,
        Err(AuthError::FreshFactorRequired)
    ));
    let password = Password::new(PASSWORD);
    h.service
        .remove_passkey(user, chain, &id, Some(&password))
        .await
        .expect("removed with the password");
    assert!(h.service.passkeys(user).await.unwrap().is_empty());
    assert!(matches!(
        sign_in(&h, None, &mut key).await,
        Err(AuthError::PasskeyRefused)
    ));
    assert!(matches!(
        h.service
            .remove_passkey(user, chain, &id, Some(&password))
            .await,
        Err(AuthError::PasskeyNotFound)
    ));

    // An account without a password keeps its last passkey.
    let id = add(&h, user, chain, &mut key).await;
    assert!(
        h.store
            .set_password_hash(user, "", h.clock.now())
            .await
            .unwrap()
    );
    let signed_in = sign_in(&h, None, &mut key)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let chain = chain_of(&h, &signed_in.access_token);
    assert!(matches!(
        h.service.remove_passkey(user, chain, &id, None).await,
        Err(AuthError::LastCredential)
    ));
    assert!(
        !h.store
            .remove_passkey(user, &id, h.clock.now())
            .await
            .unwrap()
    );
    assert_eq!(h.service.passkeys(user).await.unwrap().len(), 1);
}

async fn a_passkey_finishes_a_password_sign_in(h: Harness) {
    let (user, chain) = verified_user(&h).await;
    let mut key = SoftKey::new(false);
    add(&h, user, chain, &mut key).await;
    h.enrol_totp(user, PASSWORD).await;

    let required = match h
        .service
        .login(EMAIL, &Password::new(PASSWORD), None)
        .await
        .unwrap()
    {
        SignIn::MfaRequired(required) => required,
        SignIn::SignedIn(_) => panic!("TOTP is on"),
    };
    assert_eq!(required.methods, ["totp", "recovery_code", "passkey"]);
    let options = h
        .service
        .second_factor_passkey_options(&required.mfa_token)
        .await
        .unwrap();
    assert_eq!(
        options.public_key["allowCredentials"][0]["id"],
        json!(key.credential_id.clone().unwrap())
    );
    let answer = key.get(&options.public_key);
    let signed_in = h
        .service
        .verify_mfa_passkey(&required.mfa_token, &answer)
        .await
        .expect("the passkey finishes it");
    assert_eq!(
        amr_of(&h, &signed_in.access_token),
        [Amr::Pwd, Amr::Pop, Amr::Mfa]
    );
    // The challenge and its ceremony are spent.
    assert!(matches!(
        h.service
            .verify_mfa_passkey(&required.mfa_token, &answer)
            .await,
        Err(AuthError::InvalidToken(_))
    ));
}

async fn one_credential_belongs_to_one_account(h: Harness) {
    let (first, _) = verified_user(&h).await;
    let second = h.register("second@example.com").await.user.id;
    let passkey = shared::model::StoredPasskey {
        name: "Key".into(),
        created_at: h.clock.now(),
        last_used_at: None,
        backed_up: false,
        transports: vec![],
        credential: "{}".into(),
    };
    let add = |user| {
        let (store, passkey) = (h.store.clone(), passkey.clone());
        async move { store.add_passkey(user, 0, "the-same-id", &passkey).await }
    };
    let (a, b) = tokio::join!(add(first), add(second));
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| *o != PasskeyAdded::Added);
    assert_eq!(outcomes, [PasskeyAdded::Added, PasskeyAdded::Taken]);
    assert!(
        h.store
            .passkey_owner("the-same-id")
            .await
            .unwrap()
            .is_some(),
        "one owner"
    );
    // A user at another epoch is refused.
    assert_eq!(
        h.store
            .add_passkey(first, 7, "another-id", &passkey)
            .await
            .unwrap(),
        PasskeyAdded::Refused
    );
    assert_eq!(h.store.passkey_owner("another-id").await.unwrap(), None);
}
