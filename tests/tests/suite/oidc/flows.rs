//! The flows against the real provider: a new account, the same identity again, the provider's
//! `amr` in the tokens, the account rules (verified on both sides or `account_exists`), TOTP
//! still asked for, linking while signed in, unlinking and the last way in, and the epoch rule.

use shared::model::{Amr, TokenType};
use shared::service::{Exchanged, SignIn};
use shared::{AuthError, Clock, Password};

use super::{API, APP, Oidc, challenge_of, parameters};
use integration_tests::PASSWORD;

oidc_on_both_stores!(
    a_verified_identity_makes_an_account_without_a_password,
    the_same_identity_signs_the_same_user_in_again,
    the_providers_amr_and_idp_are_in_the_tokens,
    an_unverified_provider_address_makes_no_account,
    a_verified_account_is_linked_by_a_verified_address,
    an_unverified_account_or_provider_address_is_not_linked,
    totp_is_still_asked_unless_the_provider_did_mfa,
    a_signed_in_user_links_and_unlinks_an_identity,
    linking_needs_a_verified_address_and_a_fresh_factor,
    the_last_way_in_is_never_unlinked,
    codes_and_tickets_die_with_the_epoch,
    a_passwordless_account_is_deleted_after_a_fresh_sign_in,
);

fn claims(o: &Oidc, access_token: &str) -> shared::model::Claims {
    o.h.service
        .tokens()
        .verify(access_token, TokenType::Access, o.h.clock.now())
        .expect("own access token verifies")
}

async fn a_verified_identity_makes_an_account_without_a_password(o: Oidc) {
    let before = o.h.stored_user_count().await;
    let signed_in = o.signed_in("op", "ada@example.com").await;
    assert_eq!(o.h.stored_user_count().await, before + 1);
    let user = o.h.service.me(signed_in.user.id).await.unwrap();
    assert_eq!(user.email, "ada@example.com");
    assert!(user.email_verified, "the provider verified the address");
    assert!(!user.has_password());
    assert_eq!(user.identities.len(), 1);
    assert!(o.h.service.authorize(&signed_in.access_token).await.is_ok());
    // No password signs it in, whatever is tried: the same answer as a wrong password.
    for password in ["", PASSWORD] {
        assert!(matches!(
            o.h.service
                .login("ada@example.com", &Password::new(password), None)
                .await,
            Err(AuthError::InvalidCredentials)
        ));
    }
}

async fn the_same_identity_signs_the_same_user_in_again(o: Oidc) {
    let first = o.signed_in("op", "bo@example.com").await;
    let count = o.h.stored_user_count().await;
    let again = o.signed_in("op", "bo@example.com").await;
    assert_eq!(again.user.id, first.user.id);
    assert_eq!(o.h.stored_user_count().await, count);
    let user = o.h.service.me(first.user.id).await.unwrap();
    let identity = user.identities.values().next().unwrap();
    assert_eq!(identity.provider, "op");
    assert_eq!(identity.subject, "bo@example.com");
    assert!(identity.last_used_at.is_some());
}

async fn the_providers_amr_and_idp_are_in_the_tokens(o: Oidc) {
    let plain = o.signed_in("op", "cy@example.com").await;
    let claims_plain = claims(&o, &plain.access_token);
    assert_eq!(claims_plain.idp.as_deref(), Some("op"));
    assert_eq!(claims_plain.amr, Some(vec![Amr::Pwd]));
    let strong = o.signed_in("op", "cy+mfa@example.com").await;
    let claims_strong = claims(&o, &strong.access_token);
    assert_eq!(claims_strong.amr, Some(vec![Amr::Pwd, Amr::Mfa]));
    // A refresh keeps them: the chain remembers how it began.
    let refreshed = o.h.service.refresh(&strong.refresh_token).await.unwrap();
    let claims_refreshed = claims(&o, &refreshed.access_token);
    assert_eq!(claims_refreshed.idp.as_deref(), Some("op"));
    assert_eq!(claims_refreshed.amr, Some(vec![Amr::Pwd, Amr::Mfa]));
    // A password sign-in carries no idp.
    let own = o.h.register("dee@example.com").await;
    assert_eq!(claims(&o, &own.access_token).idp, None);
}

async fn an_unverified_provider_address_makes_no_account(o: Oidc) {
    let before = o.h.stored_user_count().await;
    let (_, fragment) = o.through_provider("op", "unverified-bob@example.com").await;
    assert_eq!(
        fragment.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(
        fragment.get("state").map(String::as_str),
        Some("app-state-1")
    );
    assert_eq!(o.h.stored_user_count().await, before);
}

async fn a_verified_account_is_linked_by_a_verified_address(o: Oidc) {
    let own = o.h.register("eve@example.com").await;
    o.h.verify_address(own.user.id).await;
    let signed_in = o.signed_in("op", "eve@example.com").await;
    assert_eq!(signed_in.user.id, own.user.id);
    let user = o.h.service.me(own.user.id).await.unwrap();
    assert_eq!(user.identities.len(), 1);
    assert!(user.has_password(), "the password still works");
    o.h.sign_in("eve@example.com", PASSWORD).await;
    let mail = o.h.mail_to("eve@example.com").await;
    assert!(
        mail.iter().any(|m| m.subject.contains("Test provider")),
        "the user is told: {:?}",
        mail.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
}

async fn an_unverified_account_or_provider_address_is_not_linked(o: Oidc) {
    // Pre-hijacking: someone registered the address first and never verified it.
    let squatter = o.h.register("fay@example.com").await;
    let (_, fragment) = o.through_provider("op", "fay@example.com").await;
    assert_eq!(
        fragment.get("error").map(String::as_str),
        Some("account_exists")
    );
    // A provider account that claims a verified account's address without verifying it.
    let owner = o.h.register("unverified-gus@example.com").await;
    o.h.verify_address(owner.user.id).await;
    let (_, fragment) = o.through_provider("op", "unverified-gus@example.com").await;
    assert_eq!(
        fragment.get("error").map(String::as_str),
        Some("account_exists")
    );
    for id in [squatter.user.id, owner.user.id] {
        assert!(o.h.service.me(id).await.unwrap().identities.is_empty());
    }
}

async fn totp_is_still_asked_unless_the_provider_did_mfa(o: Oidc) {
    for (address, login) in [
        ("hal@example.com", "hal@example.com"),
        ("hal+mfa@example.com", "hal+mfa@example.com"),
    ] {
        let own = o.h.register(address).await;
        o.h.verify_address(own.user.id).await;
        let enrolled = o.h.enrol_totp(own.user.id, PASSWORD).await;
        let sign_in = o.sign_in("op", login).await;
        if login.contains("+mfa") {
            let signed_in = sign_in.signed_in().expect("the provider did mfa");
            assert_eq!(signed_in.user.id, own.user.id);
            continue;
        }
        let SignIn::MfaRequired(required) = sign_in else {
            panic!("TOTP must be asked for");
        };
        assert!(
            !required.methods.contains(&"passkey"),
            "a passkey never finishes a federated sign-in"
        );
        let code = o.h.totp_code(&enrolled.secret);
        let signed_in =
            o.h.service
                .verify_mfa(
                    &required.mfa_token,
                    &shared::service::MfaCode::totp(&code, "code").unwrap(),
                )
                .await
                .unwrap();
        let claims = claims(&o, &signed_in.access_token);
        assert_eq!(claims.idp.as_deref(), Some("op"));
        assert_eq!(claims.amr, Some(vec![Amr::Pwd, Amr::Otp]));
    }
}

/// The ticket of a link URL, and the URL's own checks.
fn ticket_of(url: &str) -> String {
    let (base, query) = url.split_once('?').expect("a query");
    assert_eq!(base, format!("{API}/auth/oidc/op/start"));
    parameters(query).remove("link").expect("a link ticket")
}

async fn link_url(
    o: &Oidc,
    signed_in: &shared::SignedIn,
    verifier: &str,
) -> Result<String, AuthError> {
    let chain = claims(o, &signed_in.access_token).sid;
    o.h.service
        .oidc_link(
            signed_in.user.id,
            chain,
            "op",
            None,
            APP,
            &challenge_of(verifier),
            API,
        )
        .await
}

async fn a_signed_in_user_links_and_unlinks_an_identity(o: Oidc) {
    let own = o.h.register("ivy@example.com").await;
    o.h.verify_address(own.user.id).await;
    let started = o.start_linking("op", None).await;
    let url = link_url(&o, &own, &started.verifier).await.unwrap();
    let linking = o.start_linking("op", Some(ticket_of(&url))).await;
    // The provider account's address is another one: explicit linking does not need it.
    let answer = o.at_provider(&linking, "ivy-at-work@example.com").await;
    let callback = o.callback("op", answer, Some(&linking.cookie)).await;
    let fragment = super::fragment(&callback);
    let code = fragment.get("code").expect("a code");
    // Nothing is linked until the app that holds the verifier makes the exchange.
    assert!(
        o.h.service
            .identities(own.user.id)
            .await
            .unwrap()
            .is_empty()
    );
    let Ok(Exchanged::Linked(identity)) = o.exchange(code, &linking.verifier).await else {
        panic!("a link");
    };
    assert_eq!(identity.provider, "op");
    let listed = o.h.service.identities(own.user.id).await.unwrap();
    assert_eq!(listed, vec![identity.clone()]);
    // The linked identity signs the account in now.
    let signed_in = o.signed_in("op", "ivy-at-work@example.com").await;
    assert_eq!(signed_in.user.id, own.user.id);
    // Linked to one account only.
    let other = o.h.register("jo@example.com").await;
    o.h.verify_address(other.user.id).await;
    let url = link_url(&o, &other, &started.verifier).await.unwrap();
    let again = o.start_linking("op", Some(ticket_of(&url))).await;
    let answer = o.at_provider(&again, "ivy-at-work@example.com").await;
    let fragment = super::fragment(&o.callback("op", answer, Some(&again.cookie)).await);
    assert!(matches!(
        o.exchange(&fragment["code"], &again.verifier).await,
        Err(AuthError::IdentityTaken)
    ));
    // Unlinked: the account keeps its password.
    o.h.service
        .unlink_identity(own.user.id, &identity.id)
        .await
        .unwrap();
    assert!(
        o.h.service
            .identities(own.user.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        o.h.service.unlink_identity(own.user.id, &identity.id).await,
        Err(AuthError::IdentityNotFound)
    ));
}

async fn linking_needs_a_verified_address_and_a_fresh_factor(o: Oidc) {
    let own = o.h.register("kit@example.com").await;
    let verifier = "v".repeat(43);
    assert!(matches!(
        link_url(&o, &own, &verifier).await,
        Err(AuthError::EmailUnverified)
    ));
    o.h.verify_address(own.user.id).await;
    o.h.clock.advance(shared::service::FRESH_SIGN_IN_SECS + 1);
    assert!(matches!(
        link_url(&o, &own, &verifier).await,
        Err(AuthError::FreshFactorRequired)
    ));
    let chain = claims(&o, &own.access_token).sid;
    let with_password =
        o.h.service
            .oidc_link(
                own.user.id,
                chain,
                "op",
                Some(&Password::new(PASSWORD)),
                APP,
                &challenge_of(&verifier),
                API,
            )
            .await;
    assert!(with_password.is_ok());
    // Off the provider's list, or for no provider: refused before anything is stored.
    let off_list =
        o.h.service
            .oidc_link(
                own.user.id,
                chain,
                "op",
                Some(&Password::new(PASSWORD)),
                "https://evil.example/",
                &challenge_of(&verifier),
                API,
            )
            .await;
    assert!(matches!(
        off_list,
        Err(AuthError::InvalidField {
            field: "redirect_uri",
            ..
        })
    ));
}

async fn the_last_way_in_is_never_unlinked(o: Oidc) {
    let signed_in = o.signed_in("op", "lu@example.com").await;
    let id =
        o.h.service
            .identities(signed_in.user.id)
            .await
            .unwrap()
            .remove(0)
            .id;
    assert!(matches!(
        o.h.service.unlink_identity(signed_in.user.id, &id).await,
        Err(AuthError::LastCredential)
    ));
    assert_eq!(
        o.h.service
            .identities(signed_in.user.id)
            .await
            .unwrap()
            .len(),
        1
    );
    // A reset gives the account a password; then the identity may go.
    o.h.service
        .forgot_password("lu@example.com", None, &integration_tests::app_links())
        .await
        .unwrap();
    let token = o.h.link_token("lu@example.com", "reset-password").await;
    o.h.service
        .reset_password(&token, &Password::new(PASSWORD))
        .await
        .unwrap();
    o.h.service
        .unlink_identity(signed_in.user.id, &id)
        .await
        .unwrap();
    o.h.sign_in("lu@example.com", PASSWORD).await;
}

async fn codes_and_tickets_die_with_the_epoch(o: Oidc) {
    let own = o.h.register("max@example.com").await;
    o.h.verify_address(own.user.id).await;
    let chain = claims(&o, &own.access_token).sid;
    // Our code, between the callback and the exchange: a password change in between ends it.
    let (started, fragment) = o.through_provider("op", "max@example.com").await;
    o.h.service
        .change_password(
            own.user.id,
            chain,
            &Password::new(PASSWORD),
            &Password::new("an entirely new passphrase 42"),
        )
        .await
        .unwrap();
    assert!(matches!(
        o.exchange(&fragment["code"], &started.verifier).await,
        Err(AuthError::InvalidCode)
    ));
    // A link ticket: "log out everywhere" ends it before its start.
    let fresh =
        o.h.sign_in("max@example.com", "an entirely new passphrase 42")
            .await;
    let url = link_url(&o, &fresh, &started.verifier).await.unwrap();
    o.h.service
        .logout(fresh.user.id, claims(&o, &fresh.access_token).sid, true)
        .await
        .unwrap();
    let refused = o
        .try_start(
            "op",
            shared::service::StartRequest {
                redirect_uri: Some(APP.into()),
                code_challenge: Some(challenge_of(&started.verifier)),
                link: Some(ticket_of(&url)),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(
        refused,
        Err(AuthError::InvalidField { field: "link", .. })
    ));
}

/// An account made by a provider has no password to confirm a deletion with: a sign-in of the
/// last ten minutes confirms it instead, and the identity is free for a new account after.
async fn a_passwordless_account_is_deleted_after_a_fresh_sign_in(o: Oidc) {
    use shared::service::AccountDeletion;
    let signed_in = o.signed_in("op", "fed@example.com").await;
    let principal =
        o.h.service
            .authorize(&signed_in.access_token)
            .await
            .unwrap();
    let started = o.h.clock.now();
    o.h.clock.advance(shared::service::FRESH_SIGN_IN_SECS + 1);
    let refreshed = o.h.service.refresh(&signed_in.refresh_token).await.unwrap();
    assert!(matches!(
        o.h.service
            .delete_account(
                principal.user_id,
                principal.chain_id,
                AccountDeletion::default()
            )
            .await,
        Err(AuthError::FreshFactorRequired)
    ));
    // A password is no way round it: the account has none.
    let guess = Password::new(PASSWORD);
    assert!(matches!(
        o.h.service
            .delete_account(
                principal.user_id,
                principal.chain_id,
                AccountDeletion {
                    password: Some(&guess),
                    code: None,
                },
            )
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(o.h.service.authorize(&refreshed.access_token).await.is_ok());

    // Back to the provider's time (its ID tokens live a minute), for a new sign-in there.
    o.h.clock.set(started);
    let fresh = o.signed_in("op", "fed@example.com").await;
    assert_eq!(fresh.user.id, signed_in.user.id);
    let principal = o.h.service.authorize(&fresh.access_token).await.unwrap();
    o.h.service
        .delete_account(
            principal.user_id,
            principal.chain_id,
            AccountDeletion::default(),
        )
        .await
        .expect("deleted after a fresh sign-in");
    assert!(o.h.service.authorize(&fresh.access_token).await.is_err());
    assert_eq!(o.h.stored_items_of(signed_in.user.id).await, 0);
    // The identity's guard went with it: the same provider account makes a new account.
    let again = o.signed_in("op", "fed@example.com").await;
    assert_ne!(again.user.id, signed_in.user.id);
}
