//! Two-factor sign-in on both stores: enrolment, sign-in with a TOTP or a recovery code, codes
//! that work once (sequentially and under races), challenges that die, the per-user budget of
//! wrong codes, the sealed secret, and `amr`/`mfa` end to end, through the service and
//! black-box through the local server.

use futures::future::join_all;
use integration_tests::{Harness, PASSWORD, on_both_stores};
use serde_json::json;
use shared::model::{Amr, TokenType};
use shared::service::{LinkBase, MfaCode, SignIn};
use shared::{AuthError, Clock, Password};

const EMAIL: &str = "ada@example.com";
/// The sign-in chain a signed-in change is made from: re-authentication is charged to it.
const CHAIN: uuid::Uuid = uuid::Uuid::from_u128(0x5e55_1011);

/// A sign-in that stops at the second factor: its `mfa_token`.
async fn challenge(h: &Harness) -> String {
    match h
        .service
        .login(EMAIL, &Password::new(PASSWORD), None)
        .await
        .unwrap()
    {
        SignIn::MfaRequired(required) => {
            assert_eq!(required.expires_in, 300);
            required.mfa_token
        }
        SignIn::SignedIn(_) => panic!("no second factor asked for"),
    }
}

fn totp(code: &str) -> MfaCode {
    MfaCode::totp(code, "code").unwrap()
}

fn recovery(code: &str) -> MfaCode {
    MfaCode::recovery(code, "recovery_code").unwrap()
}

fn a_wrong_code(right: &str) -> String {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
    .to_owned()
}

on_both_stores!(
    enrolment_needs_the_password_and_a_first_code,
    a_totp_code_finishes_a_sign_in_once,
    one_code_on_eight_challenges_at_once_signs_in_once,
    a_recovery_code_works_once_also_under_races,
    a_challenge_dies_after_five_wrong_codes,
    a_challenge_lives_five_minutes_and_belongs_to_its_user,
    wrong_codes_count_per_user_across_challenges,
    the_secret_is_sealed_in_the_store,
    amr_and_mfa_from_sign_in_to_refresh,
    turning_it_off_and_new_recovery_codes,
    a_password_reset_leaves_totp_on,
    the_flow_through_the_local_server,
);

async fn enrolment_needs_the_password_and_a_first_code(h: Harness) {
    let id = h.register(EMAIL).await.user.id;
    assert!(
        matches!(
            h.service
                .totp_setup(id, CHAIN, &Password::new(PASSWORD))
                .await,
            Err(AuthError::EmailUnverified)
        ),
        "an unverified address cannot enrol"
    );
    h.verify_address(id).await;
    assert!(matches!(
        h.service.totp_confirm(id, &totp("123456")).await,
        Err(AuthError::MfaSetupRequired)
    ));
    assert!(matches!(
        h.service
            .totp_setup(id, CHAIN, &Password::new("wrong password entirely"))
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    let enrolment = h
        .service
        .totp_setup(id, CHAIN, &Password::new(PASSWORD))
        .await
        .unwrap();
    assert!(
        enrolment
            .otpauth_uri
            .starts_with("otpauth://totp/auth.test.example:")
    );
    assert!(
        enrolment
            .otpauth_uri
            .contains(&format!("secret={}", enrolment.secret))
    );
    assert!(enrolment.qr_svg.starts_with("<?xml") || enrolment.qr_svg.starts_with("<svg"));
    // Nothing is on yet: a login still signs in.
    assert!(!h.service.me(id).await.unwrap().mfa.mfa_enabled);
    assert!(matches!(
        h.service
            .login(EMAIL, &Password::new(PASSWORD), None)
            .await
            .unwrap(),
        SignIn::SignedIn(_)
    ));
    let secret = base32::decode(
        base32::Alphabet::Rfc4648 { padding: false },
        &enrolment.secret,
    )
    .unwrap();
    let right = h.totp_code(&secret);
    assert!(matches!(
        h.service
            .totp_confirm(id, &totp(&a_wrong_code(&right)))
            .await,
        Err(AuthError::InvalidCode)
    ));
    let codes = h.service.totp_confirm(id, &totp(&right)).await.unwrap();
    assert_eq!(codes.len(), 10);
    let user = h.service.me(id).await.unwrap();
    assert!(user.mfa.mfa_enabled);
    assert_eq!(user.mfa.recovery_codes.len(), 10);
    assert!(
        codes
            .iter()
            .all(|c| !user.mfa.recovery_codes.contains_key(c)),
        "stored only as hashes"
    );
    assert!(matches!(
        h.service
            .totp_setup(id, CHAIN, &Password::new(PASSWORD))
            .await,
        Err(AuthError::MfaAlreadyEnabled)
    ));
    assert!(matches!(
        h.service.totp_confirm(id, &totp(&right)).await,
        Err(AuthError::MfaAlreadyEnabled)
    ));
}

async fn a_totp_code_finishes_a_sign_in_once(h: Harness) {
    let id = h.register(EMAIL).await.user.id;
    let enrolled = h.enrol_totp(id, PASSWORD).await;
    let code = h.totp_code(&enrolled.secret);

    let first = challenge(&h).await;
    let wrong = a_wrong_code(&code);
    assert!(matches!(
        h.service.verify_mfa(&first, &totp(&wrong)).await,
        Err(AuthError::InvalidCode)
    ));
    let signed_in = h.service.verify_mfa(&first, &totp(&code)).await.unwrap();
    assert!(h.service.authorize(&signed_in.access_token).await.is_ok());
    assert!(
        matches!(
            h.service.verify_mfa(&first, &totp(&code)).await,
            Err(AuthError::InvalidToken(_))
        ),
        "the mfa_token works once"
    );

    // The same code on a fresh challenge: its step was spent.
    let second = challenge(&h).await;
    assert!(matches!(
        h.service.verify_mfa(&second, &totp(&code)).await,
        Err(AuthError::InvalidCode)
    ));
    // The previous step's code is older than the accepted one: refused too.
    h.clock.advance(-30);
    let older = h.totp_code(&enrolled.secret);
    h.clock.advance(30);
    assert!(matches!(
        h.service.verify_mfa(&second, &totp(&older)).await,
        Err(AuthError::InvalidCode)
    ));
    // The next step's code works.
    h.clock.advance(30);
    let next = h.totp_code(&enrolled.secret);
    assert!(h.service.verify_mfa(&second, &totp(&next)).await.is_ok());
}

async fn one_code_on_eight_challenges_at_once_signs_in_once(h: Harness) {
    let id = h.register(EMAIL).await.user.id;
    let enrolled = h.enrol_totp(id, PASSWORD).await;
    let mut tokens = Vec::new();
    for _ in 0..8 {
        tokens.push(challenge(&h).await);
    }
    let code = h.totp_code(&enrolled.secret);
    let attempts = tokens.into_iter().map(|token| {
        let (service, code) = (h.service.clone(), code.clone());
        tokio::spawn(async move { service.verify_mfa(&token, &totp(&code)).await })
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
    // Each attempt is counted before its code is checked, so a burst this size may also reach
    // the wait; none signs in twice.
    assert!(
        results.iter().filter(|r| r.is_err()).all(|r| matches!(
            r,
            Err(AuthError::InvalidCode | AuthError::TooManyRequests { .. })
        )),
        "{results:?}"
    );
}

async fn a_recovery_code_works_once_also_under_races(h: Harness) {
    let id = h.register(EMAIL).await.user.id;
    let enrolled = h.enrol_totp(id, PASSWORD).await;
    let code = &enrolled.recovery_codes[0];

    let first = challenge(&h).await;
    let signed_in = h.service.verify_mfa(&first, &recovery(code)).await.unwrap();
    let claims = h
        .service
        .tokens()
        .verify(&signed_in.access_token, TokenType::Access, h.clock.now())
        .unwrap();
    assert_eq!(claims.amr, Some(vec![Amr::Pwd, Amr::Otp]));
    let again = challenge(&h).await;
    assert!(matches!(
        h.service.verify_mfa(&again, &recovery(code)).await,
        Err(AuthError::InvalidCode)
    ));
    // Typed differently, still the same spent code.
    assert!(matches!(
        h.service
            .verify_mfa(&again, &recovery(&code.to_uppercase().replace('-', " ")))
            .await,
        Err(AuthError::InvalidCode)
    ));

    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(challenge(&h).await);
    }
    let racing = enrolled.recovery_codes[1].clone();
    let attempts = tokens.into_iter().map(|token| {
        let (service, code) = (h.service.clone(), racing.clone());
        tokio::spawn(async move { service.verify_mfa(&token, &recovery(&code)).await })
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
    assert_eq!(h.service.me(id).await.unwrap().mfa.recovery_codes.len(), 8);
}

async fn a_challenge_dies_after_five_wrong_codes(h: Harness) {
    let id = h.register(EMAIL).await.user.id;
    let enrolled = h.enrol_totp(id, PASSWORD).await;
    let token = challenge(&h).await;
    let right = h.totp_code(&enrolled.secret);
    for _ in 0..5 {
        assert!(matches!(
            h.service
                .verify_mfa(&token, &totp(&a_wrong_code(&right)))
                .await,
            Err(AuthError::InvalidCode)
        ));
    }
    assert!(matches!(
        h.service.verify_mfa(&token, &totp(&right)).await,
        Err(AuthError::InvalidToken(_))
    ));
    // The fifth wrong code in a row tells the user, and the next code waits a minute.
    let warning = &h.mail_to(EMAIL).await[0];
    assert_eq!(warning.subject, "Someone may have your password");
    let fresh = challenge(&h).await;
    assert!(matches!(
        h.service.verify_mfa(&fresh, &totp(&right)).await,
        Err(AuthError::TooManyRequests {
            retry_after_secs: 1..=60
        })
    ));
    // Then the right code still works: it was never spent.
    h.clock.advance(60);
    let right = h.totp_code(&enrolled.secret);
    assert!(h.service.verify_mfa(&fresh, &totp(&right)).await.is_ok());
}

async fn a_challenge_lives_five_minutes_and_belongs_to_its_user(h: Harness) {
    let id = h.register(EMAIL).await.user.id;
    let enrolled = h.enrol_totp(id, PASSWORD).await;
    let token = challenge(&h).await;
    h.clock.advance(301);
    let code = h.totp_code(&enrolled.secret);
    assert!(matches!(
        h.service.verify_mfa(&token, &totp(&code)).await,
        Err(AuthError::InvalidToken(_))
    ));

    // Another user's code does not finish this user's sign-in.
    let other = h
        .service
        .register("other@example.com", &Password::new(PASSWORD), None)
        .await
        .unwrap();
    let other_enrolled = h.enrol_totp(other.user.id, PASSWORD).await;
    let token = challenge(&h).await;
    let other_code = h.totp_code(&other_enrolled.secret);
    if other_code != h.totp_code(&enrolled.secret) {
        assert!(matches!(
            h.service.verify_mfa(&token, &totp(&other_code)).await,
            Err(AuthError::InvalidCode)
        ));
    }
    // Tokens of other kinds are not mfa_tokens.
    let link_like = "A".repeat(43);
    for not_a_challenge in [
        other.access_token.as_str(),
        &other.refresh_token,
        &link_like,
        "",
    ] {
        assert!(
            matches!(
                h.service.verify_mfa(not_a_challenge, &totp("123456")).await,
                Err(AuthError::InvalidToken(_))
            ),
            "{not_a_challenge}"
        );
    }
}

async fn wrong_codes_count_per_user_across_challenges(h: Harness) {
    let id = h.register(EMAIL).await.user.id;
    let enrolled = h.enrol_totp(id, PASSWORD).await;
    let wrong = || a_wrong_code(&h.totp_code(&enrolled.secret));
    // Four wrong codes on two challenges: no wait yet.
    for _ in 0..2 {
        let token = challenge(&h).await;
        for _ in 0..2 {
            assert!(matches!(
                h.service.verify_mfa(&token, &totp(&wrong())).await,
                Err(AuthError::InvalidCode)
            ));
        }
    }
    assert!(
        h.mail_to(EMAIL)
            .await
            .iter()
            .all(|m| m.subject != "Someone may have your password")
    );
    // The fifth, on a third challenge, sets a minute's wait for every route and challenge.
    let token = challenge(&h).await;
    assert!(matches!(
        h.service.verify_mfa(&token, &totp(&wrong())).await,
        Err(AuthError::InvalidCode)
    ));
    assert_eq!(
        h.mail_to(EMAIL).await[0].subject,
        "Someone may have your password"
    );
    let right = h.totp_code(&enrolled.secret);
    match h.service.verify_mfa(&token, &totp(&right)).await {
        Err(AuthError::TooManyRequests { retry_after_secs }) => {
            assert!((1..=60).contains(&retry_after_secs), "{retry_after_secs}")
        }
        other => panic!("a code right after the fifth wrong one: {other:?}"),
    }
    h.clock.advance(60);
    let right = h.totp_code(&enrolled.secret);
    assert!(h.service.verify_mfa(&token, &totp(&right)).await.is_ok());
    // A right code does not wipe the count: the next wrong one waits twice as long.
    h.clock.advance(30);
    let token = challenge(&h).await;
    assert!(matches!(
        h.service.verify_mfa(&token, &totp(&wrong())).await,
        Err(AuthError::InvalidCode)
    ));
    match h.service.verify_mfa(&token, &totp(&wrong())).await {
        Err(AuthError::TooManyRequests { retry_after_secs }) => {
            assert!((61..=120).contains(&retry_after_secs), "{retry_after_secs}")
        }
        other => panic!("the sixth wrong code: {other:?}"),
    }
}

async fn the_secret_is_sealed_in_the_store(h: Harness) {
    let id = h.register(EMAIL).await.user.id;
    let enrolled = h.enrol_totp(id, PASSWORD).await;
    let stored = h.store.user_by_id(id).await.unwrap().unwrap();
    let sealed = stored.mfa.totp.clone().expect("a sealed secret");
    let encoded = [
        base32::encode(
            base32::Alphabet::Rfc4648 { padding: false },
            &enrolled.secret,
        ),
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            &enrolled.secret,
        ),
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &enrolled.secret),
    ];
    let everything = format!("{sealed:?}");
    for form in &encoded {
        assert!(
            !everything.contains(form.as_str()),
            "the plain secret is in the item"
        );
    }
    // Without the key, what the table holds opens nothing.
    let other_keys = integration_tests::test_mfa_keys();
    assert!(other_keys.open(id, &sealed).is_err());
    assert!(
        format!("{:?}", stored.mfa)
            .find(&sealed.ciphertext)
            .is_none(),
        "Debug hides it"
    );
}

async fn amr_and_mfa_from_sign_in_to_refresh(h: Harness) {
    let id = h.register(EMAIL).await.user.id;
    let plain = h
        .service
        .login(EMAIL, &Password::new(PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let claims = h
        .service
        .tokens()
        .verify(&plain.access_token, TokenType::Access, h.clock.now())
        .unwrap();
    assert_eq!(claims.amr, Some(vec![Amr::Pwd]));
    assert!(!h.service.authorize(&plain.access_token).await.unwrap().mfa);

    let enrolled = h.enrol_totp(id, PASSWORD).await;
    let token = challenge(&h).await;
    let code = h.totp_code(&enrolled.secret);
    let signed_in = h.service.verify_mfa(&token, &totp(&code)).await.unwrap();
    assert!(
        h.service
            .authorize(&signed_in.access_token)
            .await
            .unwrap()
            .mfa
    );
    h.clock.advance(h.config.refresh_reuse_grace_secs + 1);
    let refreshed = h.service.refresh(&signed_in.refresh_token).await.unwrap();
    let claims = h
        .service
        .tokens()
        .verify(&refreshed.access_token, TokenType::Access, h.clock.now())
        .unwrap();
    assert_eq!(
        claims.amr,
        Some(vec![Amr::Pwd, Amr::Otp]),
        "refreshes keep the chain's"
    );
    assert!(
        h.service
            .authorize(&refreshed.access_token)
            .await
            .unwrap()
            .mfa
    );
    // The session started before TOTP was on keeps its own.
    assert!(!h.service.authorize(&plain.access_token).await.unwrap().mfa);
}

async fn turning_it_off_and_new_recovery_codes(h: Harness) {
    let id = h.register(EMAIL).await.user.id;
    assert!(matches!(
        h.service
            .regenerate_recovery_codes(id, CHAIN, &Password::new(PASSWORD), &totp("123456"))
            .await,
        Err(AuthError::MfaNotEnabled)
    ));
    let enrolled = h.enrol_totp(id, PASSWORD).await;
    let fresh = h
        .service
        .regenerate_recovery_codes(
            id,
            CHAIN,
            &Password::new(PASSWORD),
            &totp(&h.totp_code(&enrolled.secret)),
        )
        .await
        .unwrap();
    assert_eq!(fresh.len(), 10);
    h.clock.advance(30);
    let token = challenge(&h).await;
    assert!(
        matches!(
            h.service
                .verify_mfa(&token, &recovery(&enrolled.recovery_codes[2]))
                .await,
            Err(AuthError::InvalidCode)
        ),
        "the old set stopped working"
    );
    let code = MfaCode::either(&fresh[0], "code").unwrap();
    assert!(matches!(
        h.service
            .totp_disable(id, CHAIN, &Password::new("wrong password entirely"), &code)
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    h.service
        .totp_disable(id, CHAIN, &Password::new(PASSWORD), &code)
        .await
        .unwrap();
    let user = h.service.me(id).await.unwrap();
    assert!(!user.mfa.mfa_enabled && user.mfa.totp.is_none() && user.mfa.recovery_codes.is_empty());
    assert!(matches!(
        h.service
            .login(EMAIL, &Password::new(PASSWORD), None)
            .await
            .unwrap(),
        SignIn::SignedIn(_)
    ));
    assert!(matches!(
        h.service
            .totp_disable(id, CHAIN, &Password::new(PASSWORD), &code)
            .await,
        Err(AuthError::MfaNotEnabled)
    ));
}

async fn a_password_reset_leaves_totp_on(h: Harness) {
    let id = h.register(EMAIL).await.user.id;
    let enrolled = h.enrol_totp(id, PASSWORD).await;
    let links = LinkBase("https://app.example.com".into());
    h.service
        .forgot_password(EMAIL, None, &links)
        .await
        .unwrap();
    let token = h.link_token(EMAIL, "reset-password").await;
    let new_password = "a brand new horse staple 2026";
    h.service
        .reset_password(&token, &Password::new(new_password))
        .await
        .unwrap();
    assert!(matches!(
        h.service
            .login(EMAIL, &Password::new(new_password), None)
            .await
            .unwrap(),
        SignIn::MfaRequired(_)
    ));
    assert!(h.service.me(id).await.unwrap().mfa.mfa_enabled);
    assert!(!enrolled.secret.is_empty());
}

async fn the_flow_through_the_local_server(h: Harness) {
    let api = h.serve_local_api().await;
    let creds = json!({"email": EMAIL, "password": PASSWORD});
    let registered = api.post_json("/auth/register", &creds, None).await;
    let access = registered.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = api
        .post_json(
            "/auth/mfa/totp/setup",
            &json!({"password": PASSWORD}),
            Some(&access),
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.code().as_deref(), Some("email_unverified"));
    let token = h.link_token(EMAIL, "verify-email").await;
    let verified = api
        .post_json("/auth/email/verify", &json!({"token": token}), None)
        .await;
    assert_eq!(verified.status, 200);
    let setup = api
        .post_json(
            "/auth/mfa/totp/setup",
            &json!({"password": PASSWORD}),
            Some(&access),
        )
        .await;
    assert_eq!(setup.status, 200);
    let secret = base32::decode(
        base32::Alphabet::Rfc4648 { padding: false },
        setup.json()["secret"].as_str().unwrap(),
    )
    .unwrap();
    for malformed in ["12345", "1234567", "12345a", "١٢٣٤٥٦", ""] {
        let refused = api
            .post_json(
                "/auth/mfa/totp/confirm",
                &json!({ "code": malformed }),
                Some(&access),
            )
            .await;
        assert_eq!(refused.status, 400, "{malformed:?}");
        assert_eq!(refused.json()["code"], "invalid_request");
    }
    let confirmed = api
        .post_json(
            "/auth/mfa/totp/confirm",
            &json!({ "code": h.totp_code(&secret) }),
            Some(&access),
        )
        .await;
    assert_eq!(confirmed.status, 200);
    let me = api.get("/auth/me", Some(&access)).await;
    assert_eq!(me.json()["user"]["mfa_enabled"], true);
    h.clock.advance(30);

    let login = api.post_json("/auth/login", &creds, None).await;
    assert_eq!(login.status, 200);
    assert_eq!(login.header("cache-control"), Some("no-store"));
    let body = login.json();
    assert_eq!(body["mfa_required"], true);
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    assert!(body.get("access_token").is_none() && body.get("device_token").is_none());
    let mfa_token = body["mfa_token"].as_str().unwrap();
    for (case, request) in [
        (
            "both",
            json!({"mfa_token": mfa_token, "code": "123456", "recovery_code": "abcd-efgh-ijkm"}),
        ),
        ("neither", json!({"mfa_token": mfa_token})),
        (
            "a malformed recovery code",
            json!({"mfa_token": mfa_token, "recovery_code": "abc"}),
        ),
    ] {
        let refused = api.post_json("/auth/mfa/verify", &request, None).await;
        assert_eq!(refused.status, 400, "{case}");
    }
    let verified = api
        .post_json(
            "/auth/mfa/verify",
            &json!({"mfa_token": mfa_token, "code": h.totp_code(&secret)}),
            None,
        )
        .await;
    assert_eq!(verified.status, 200);
    let second_factor_access = verified.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.get("/auth/me", Some(&second_factor_access))
            .await
            .status,
        200
    );
}
