//! What an attacker or a broken provider can send, on both stores: a wrong, missing, replayed
//! or expired `state`, a callback from another browser, a mix-up of issuers, ID tokens that
//! must not pass (`alg: none`, HS256 with the client secret, expired, for another audience or
//! client, a wrong nonce, an unknown key, a bad signature), replayed codes, a wrong verifier,
//! and a `redirect_uri` off the list.

use integration_tests::fake_oidc::{FAKE_CLIENT_SECRET, IssParam, Tamper};
use integration_tests::oidc::provider_url;
use shared::AuthError;
use shared::service::{
    Callback, CallbackRequest, EXCHANGE_CODE_TTL_SECS, LOGIN_STATE_TTL_SECS, StartRequest,
};

use super::{APP, Oidc, challenge_of, error_of, fragment};

oidc_on_both_stores!(
    a_redirect_uri_off_the_list_is_refused_never_redirected_to,
    the_app_must_send_an_s256_challenge,
    a_wrong_missing_or_replayed_state_is_refused,
    a_state_expires_after_ten_minutes,
    a_callback_from_another_browser_is_refused,
    an_answer_naming_another_issuer_is_refused,
    id_tokens_that_must_not_pass,
    an_hs256_id_token_of_the_real_provider_is_refused,
    the_providers_code_works_once,
    our_code_works_once_for_its_verifier_and_a_minute,
    the_providers_refusal_reaches_the_app,
    a_discovery_document_for_another_issuer_is_not_trusted,
    starts_are_counted_per_source_ip,
);

async fn a_redirect_uri_off_the_list_is_refused_never_redirected_to(o: Oidc) {
    for redirect in [
        "https://evil.example/signed-in",
        "https://app.test.example/signed-in/../evil",
        "https://app.test.example/signed-in?x=1",
        "https://app.test.example/",
    ] {
        let refused = o
            .try_start(
                "op",
                StartRequest {
                    redirect_uri: Some(redirect.into()),
                    code_challenge: Some(challenge_of(&"v".repeat(43))),
                    ..Default::default()
                },
            )
            .await;
        assert!(
            matches!(
                refused,
                Err(AuthError::InvalidField {
                    field: "redirect_uri",
                    ..
                })
            ),
            "{redirect}"
        );
    }
    assert!(matches!(
        o.try_start("nope", StartRequest::default()).await,
        Err(AuthError::ProviderNotFound)
    ));
}

async fn the_app_must_send_an_s256_challenge(o: Oidc) {
    for (challenge, method) in [
        (None, None),
        (Some("short".to_owned()), None),
        (Some(challenge_of("x")), Some("plain".to_owned())),
    ] {
        let refused = o
            .try_start(
                "op",
                StartRequest {
                    redirect_uri: Some(APP.into()),
                    code_challenge: challenge,
                    code_challenge_method: method,
                    ..Default::default()
                },
            )
            .await;
        assert!(matches!(refused, Err(AuthError::InvalidField { .. })));
    }
}

async fn a_wrong_missing_or_replayed_state_is_refused(o: Oidc) {
    let started = o.start("fake").await;
    let answer = o.at_provider(&started, "").await;
    for state in [None, Some("not-ours".to_owned()), Some("A".repeat(43))] {
        let wrong = CallbackRequest {
            state,
            ..answer.clone()
        };
        assert_eq!(
            o.callback("fake", wrong, Some(&started.cookie)).await,
            Callback::Untrusted
        );
    }
    let first = o
        .callback("fake", answer.clone(), Some(&started.cookie))
        .await;
    assert!(fragment(&first).contains_key("code"));
    assert_eq!(
        o.callback("fake", answer, Some(&started.cookie)).await,
        Callback::Untrusted,
        "a state works once"
    );
}

async fn a_state_expires_after_ten_minutes(o: Oidc) {
    let started = o.start("fake").await;
    let answer = o.at_provider(&started, "").await;
    o.h.clock.advance(LOGIN_STATE_TTL_SECS + 1);
    assert_eq!(
        o.callback("fake", answer, Some(&started.cookie)).await,
        Callback::Untrusted
    );
}

async fn a_callback_from_another_browser_is_refused(o: Oidc) {
    // Login CSRF: the attacker's own answer, delivered to the victim's browser.
    for cookie in [None, Some("another-browsers-cookie")] {
        let started = o.start("fake").await;
        let answer = o.at_provider(&started, "").await;
        let callback = o.callback("fake", answer, cookie).await;
        assert_eq!(error_of(&callback), "invalid_request");
    }
    assert_eq!(o.fake.token_requests(), 0, "no code was exchanged");
}

async fn an_answer_naming_another_issuer_is_refused(o: Oidc) {
    // Mix-up: another provider's iss, or none from a provider that always sends one.
    for iss in [IssParam::Other(provider_url()), IssParam::Omit] {
        o.fake.set_iss_param(iss);
        let started = o.start("fake").await;
        let answer = o.at_provider(&started, "").await;
        let callback = o.callback("fake", answer, Some(&started.cookie)).await;
        assert_eq!(error_of(&callback), "invalid_request");
    }
    assert_eq!(o.fake.token_requests(), 0);
    // And an answer for `fake` brought to `op`'s callback.
    o.fake.set_iss_param(IssParam::Own);
    let started = o.start("fake").await;
    let answer = o.at_provider(&started, "").await;
    let callback = o.callback("op", answer, Some(&started.cookie)).await;
    assert_eq!(error_of(&callback), "invalid_request");
}

async fn id_tokens_that_must_not_pass(o: Oidc) {
    let count = o.h.stored_user_count().await;
    let tampers = [
        Tamper::AlgNone,
        Tamper::Hs256(FAKE_CLIENT_SECRET.into()),
        Tamper::Expired,
        Tamper::Audience("another-client".into()),
        Tamper::Azp("another-client".into()),
        Tamper::Nonce("another-login".into()),
        Tamper::Issuer(provider_url()),
        Tamper::UnknownKid,
        Tamper::Signature,
        Tamper::Claims(serde_json::json!({"iat": shared::Clock::now(&*o.h.clock) + 3_600})),
        Tamper::Claims(serde_json::json!({"sub": ""})),
    ];
    for tamper in tampers {
        let name = format!("{tamper:?}");
        o.fake.set_tamper(tamper);
        let (_, fragment) = o.through_provider("fake", "").await;
        assert_eq!(
            fragment.get("error").map(String::as_str),
            Some("access_denied"),
            "{name}"
        );
    }
    assert_eq!(
        o.h.stored_user_count().await,
        count,
        "no account came of them"
    );
    // The honest token passes, so the refusals above were the tampering's.
    o.fake.set_tamper(Tamper::None);
    o.signed_in("fake", "").await;
}

async fn an_hs256_id_token_of_the_real_provider_is_refused(o: Oidc) {
    let (_, fragment) = o.through_provider("op-hs", "ned@example.com").await;
    assert_eq!(
        fragment.get("error").map(String::as_str),
        Some("access_denied")
    );
}

async fn the_providers_code_works_once(o: Oidc) {
    let first = o.start("fake").await;
    let answer = o.at_provider(&first, "").await;
    assert!(
        fragment(
            &o.callback("fake", answer.clone(), Some(&first.cookie))
                .await
        )
        .contains_key("code")
    );
    // The same provider code, brought back with a new login state of the same browser.
    let second = o.start("fake").await;
    let fresh = o.at_provider(&second, "").await;
    let replayed = CallbackRequest {
        code: answer.code,
        ..fresh
    };
    let callback = o.callback("fake", replayed, Some(&second.cookie)).await;
    assert_eq!(error_of(&callback), "access_denied");
    assert_eq!(
        o.fake.replays(),
        1,
        "the provider saw the code again and refused it"
    );
}

async fn our_code_works_once_for_its_verifier_and_a_minute(o: Oidc) {
    let (started, fragment) = o.through_provider("fake", "").await;
    let code = &fragment["code"];
    let wrong = "w".repeat(43);
    assert!(matches!(
        o.exchange(code, &wrong).await,
        Err(AuthError::InvalidCode)
    ));
    assert!(
        matches!(
            o.exchange(code, &started.verifier).await,
            Err(AuthError::InvalidCode)
        ),
        "a wrong verifier spends the code"
    );
    let (started, fragment) = o.through_provider("fake", "").await;
    assert!(
        o.exchange(&fragment["code"], &started.verifier)
            .await
            .is_ok()
    );
    assert!(matches!(
        o.exchange(&fragment["code"], &started.verifier).await,
        Err(AuthError::InvalidCode)
    ));
    let (started, fragment) = o.through_provider("fake", "").await;
    o.h.clock.advance(EXCHANGE_CODE_TTL_SECS + 1);
    assert!(matches!(
        o.exchange(&fragment["code"], &started.verifier).await,
        Err(AuthError::InvalidCode)
    ));
    assert!(matches!(
        o.exchange(&fragment["code"], "short").await,
        Err(AuthError::InvalidCode | AuthError::InvalidField { .. })
    ));
}

async fn the_providers_refusal_reaches_the_app(o: Oidc) {
    o.fake.set_error(Some("access_denied".into()));
    let (_, fragment) = o.through_provider("fake", "").await;
    assert_eq!(
        fragment.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(
        fragment.get("state").map(String::as_str),
        Some("app-state-1")
    );
    assert_eq!(o.fake.token_requests(), 0);
}

async fn a_discovery_document_for_another_issuer_is_not_trusted(o: Oidc) {
    o.fake.set_discovery_issuer(Some(provider_url()));
    let refused = o
        .try_start(
            "fake",
            StartRequest {
                redirect_uri: Some(APP.into()),
                code_challenge: Some(challenge_of(&"v".repeat(43))),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(refused, Err(AuthError::Unavailable(_))));
}

async fn starts_are_counted_per_source_ip(o: Oidc) {
    // Each start stores a login state: one source cannot fill the table.
    let start = |ip: &'static str| {
        o.h.service.oidc_start(
            "fake",
            StartRequest {
                redirect_uri: Some(APP.into()),
                code_challenge: Some(challenge_of(&"v".repeat(43))),
                ..Default::default()
            },
            super::API,
            Some(ip),
        )
    };
    for _ in 0..60 {
        start("198.51.100.1").await.expect("within the budget");
    }
    assert!(matches!(
        start("198.51.100.1").await,
        Err(AuthError::TooManyRequests { .. })
    ));
    start("198.51.100.2")
        .await
        .expect("another source has its own budget");
}
