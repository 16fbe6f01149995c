//! The store conformance suite: one body per behaviour, run against DynamoDB Local and the
//! embedded store through the service, with a clock the test moves.

use integration_tests::{Harness, on_both_stores};
use shared::model::{EmailLink, LinkKind, LinkedIdentity, MAX_IDENTITIES, User, identity_id};
use shared::service::{AuthError, SignedIn};
use shared::store::{EmailChange, IdentityLinked};
use shared::tokens::token_hash;
use shared::{Clock, Password, Principal};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";

fn pw(s: &str) -> Password {
    Password::new(s)
}

async fn authorize(h: &Harness, signed_in: &SignedIn) -> Result<Principal, AuthError> {
    h.service.authorize(&signed_in.access_token).await
}

fn sid_of(h: &Harness, signed_in: &SignedIn) -> Uuid {
    let claims = h
        .service
        .tokens()
        .verify(
            &signed_in.access_token,
            shared::model::TokenType::Access,
            h.clock.now(),
        )
        .expect("own access token verifies");
    claims.sid
}

fn assert_invalid_token<T: std::fmt::Debug>(result: Result<T, AuthError>) {
    assert!(
        matches!(result, Err(AuthError::InvalidToken(_))),
        "{result:?}"
    );
}

on_both_stores!(
    register_stores_the_user_and_signs_in,
    duplicate_email_in_any_case_is_refused,
    login_starts_a_new_session,
    wrong_password_and_unknown_email_answer_the_same,
    invalid_input_changes_nothing,
    refresh_rotates_the_pair,
    reuse_after_grace_revokes_the_chain,
    replay_within_grace_returns_identical_tokens,
    logout_ends_only_the_current_session,
    logout_all_ends_every_session,
    revoke_one_session,
    another_users_session_is_not_found,
    expired_sessions_are_ignored,
    chains_never_outlive_their_maximum_lifetime,
    inactive_user_is_refused,
    updated_at_is_maintained,
    sessions_list_marks_the_current_one,
    last_used_at_is_written_at_most_once_a_minute,
    tokens_from_the_store_must_match_their_hash,
    change_password_ends_every_other_session,
    links_are_issued_read_and_spent_once_by_the_store,
    a_taken_address_leaves_the_change_link_usable,
    composed_and_decomposed_addresses_are_one_account,
    identities_are_guarded_limited_and_never_the_last_way_in,
);

async fn register_stores_the_user_and_signs_in(h: Harness) {
    let signed_in = h.register("  New.User@Example.COM ").await;
    let user = &signed_in.user;
    assert_eq!(user.email, "new.user@example.com");
    assert!(user.is_active);
    assert_eq!(user.created_at, h.clock.now());
    assert_eq!(user.updated_at, user.created_at);
    assert!(
        user.password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    assert_eq!(signed_in.expires_in, 900);
    assert_eq!(signed_in.refresh_expires_in, 2_592_000);

    let stored = h
        .store
        .user_by_email("new.user@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&stored, user);
    assert_eq!(
        h.store.user_by_id(user.id).await.unwrap().as_ref(),
        Some(user)
    );

    let principal = authorize(&h, &signed_in).await.unwrap();
    assert_eq!(principal.user_id, user.id);
    assert_eq!(principal.user_email, "new.user@example.com");
    assert_eq!(h.service.me(user.id).await.unwrap(), *user);
}

async fn duplicate_email_in_any_case_is_refused(h: Harness) {
    h.register("alice@example.com").await;
    for email in [
        "alice@example.com",
        "ALICE@example.com",
        " Alice@Example.Com ",
    ] {
        let result = h
            .service
            .register(email, &pw("another strong passphrase 42"), None)
            .await;
        assert!(
            matches!(result, Err(AuthError::EmailTaken)),
            "{email}: {result:?}"
        );
    }
    assert_eq!(h.stored_user_count().await, 1);
}

async fn login_starts_a_new_session(h: Harness) {
    let registered = h.register("bob@example.com").await;
    h.clock.advance(5);
    let logged_in = h
        .service
        .login("BOB@example.com", &pw(PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    assert_eq!(logged_in.user.id, registered.user.id);
    assert_ne!(sid_of(&h, &logged_in), sid_of(&h, &registered));
    assert!(authorize(&h, &logged_in).await.is_ok());
    assert!(
        authorize(&h, &registered).await.is_ok(),
        "other sessions stay signed in"
    );
    let sessions = h
        .service
        .sessions(registered.user.id, sid_of(&h, &logged_in))
        .await
        .unwrap();
    assert_eq!(sessions.len(), 2);
}

async fn wrong_password_and_unknown_email_answer_the_same(h: Harness) {
    h.register("carol@example.com").await;
    let wrong = h
        .service
        .login("carol@example.com", &pw("not the password"), None)
        .await;
    let unknown = h
        .service
        .login("nobody@example.com", &pw(PASSWORD), None)
        .await;
    assert!(
        matches!(wrong, Err(AuthError::InvalidCredentials)),
        "{wrong:?}"
    );
    assert!(
        matches!(unknown, Err(AuthError::InvalidCredentials)),
        "{unknown:?}"
    );
    assert_eq!(
        format!("{:?}", wrong.unwrap_err()),
        format!("{:?}", unknown.unwrap_err())
    );
}

async fn invalid_input_changes_nothing(h: Harness) {
    let bad_email = h
        .service
        .register("not-an-email", &pw(PASSWORD), None)
        .await;
    assert!(
        matches!(bad_email, Err(AuthError::InvalidEmail(_))),
        "{bad_email:?}"
    );
    let weak = h
        .service
        .register("dave@example.com", &pw("password1"), None)
        .await;
    match weak {
        Err(AuthError::WeakPassword(errors)) => assert_eq!(errors[0].code, "too_weak"),
        other => panic!("{other:?}"),
    }
    let short = h
        .service
        .register("dave@example.com", &pw("Sh0rt!"), None)
        .await;
    match short {
        Err(AuthError::WeakPassword(errors)) => assert_eq!(errors[0].code, "too_short"),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.stored_user_count().await, 0);
    assert!(
        h.store
            .user_by_email("dave@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

async fn refresh_rotates_the_pair(h: Harness) {
    let first = h.register("erin@example.com").await;
    h.clock.advance(60);
    let second = h.service.refresh(&first.refresh_token).await.unwrap();
    assert_ne!(second.access_token, first.access_token);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(
        sid_of(&h, &second),
        sid_of(&h, &first),
        "rotation stays in the chain"
    );
    assert_eq!(second.expires_in, 900);
    assert!(authorize(&h, &second).await.is_ok());

    // The new refresh token rotates in turn.
    h.clock.advance(60);
    let third = h.service.refresh(&second.refresh_token).await.unwrap();
    assert!(authorize(&h, &third).await.is_ok());

    // An access token is not a refresh token.
    assert_invalid_token(h.service.refresh(&third.access_token).await);
    assert_invalid_token(h.service.authorize(&third.refresh_token).await);
}

async fn reuse_after_grace_revokes_the_chain(h: Harness) {
    let first = h.register("frank@example.com").await;
    let other = h
        .service
        .login("frank@example.com", &pw(PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let second = h.service.refresh(&first.refresh_token).await.unwrap();

    h.clock.advance(h.config.refresh_reuse_grace_secs + 1);
    assert_invalid_token(h.service.refresh(&first.refresh_token).await);

    // The whole chain is gone: its newest tokens too.
    assert_invalid_token(h.service.refresh(&second.refresh_token).await);
    assert_invalid_token(authorize(&h, &second).await);
    assert_invalid_token(authorize(&h, &first).await);
    // Other sign-ins of the same user are untouched.
    assert!(authorize(&h, &other).await.is_ok());
    assert!(h.service.refresh(&other.refresh_token).await.is_ok());
}

async fn replay_within_grace_returns_identical_tokens(h: Harness) {
    let first = h.register("grace@example.com").await;
    h.clock.advance(30);
    let second = h.service.refresh(&first.refresh_token).await.unwrap();

    h.clock.advance(h.config.refresh_reuse_grace_secs);
    let replayed = h.service.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(
        replayed.access_token, second.access_token,
        "byte-identical access token"
    );
    assert_eq!(
        replayed.refresh_token, second.refresh_token,
        "byte-identical refresh token"
    );
    assert_eq!(replayed, second);

    // Nothing was revoked: the pair works.
    assert!(authorize(&h, &replayed).await.is_ok());
    let third = h.service.refresh(&replayed.refresh_token).await.unwrap();
    assert!(authorize(&h, &third).await.is_ok());
}

async fn logout_ends_only_the_current_session(h: Harness) {
    let a = h.register("gina@example.com").await;
    let b = h
        .service
        .login("gina@example.com", &pw(PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let principal = authorize(&h, &a).await.unwrap();
    h.service
        .logout(principal.user_id, principal.chain_id, false)
        .await
        .unwrap();

    assert_invalid_token(authorize(&h, &a).await);
    assert_invalid_token(h.service.refresh(&a.refresh_token).await);
    assert!(authorize(&h, &b).await.is_ok());
    // Logging out twice is harmless.
    h.service
        .logout(principal.user_id, principal.chain_id, false)
        .await
        .unwrap();
}

async fn logout_all_ends_every_session(h: Harness) {
    let a = h.register("hank@example.com").await;
    let b = h
        .service
        .login("hank@example.com", &pw(PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let b2 = h.service.refresh(&b.refresh_token).await.unwrap();
    let principal = authorize(&h, &a).await.unwrap();
    h.service
        .logout(principal.user_id, principal.chain_id, true)
        .await
        .unwrap();

    for signed_in in [&a, &b, &b2] {
        assert_invalid_token(authorize(&h, signed_in).await);
    }
    assert_invalid_token(h.service.refresh(&b2.refresh_token).await);
    assert!(
        h.service
            .sessions(principal.user_id, principal.chain_id)
            .await
            .unwrap()
            .is_empty()
    );

    // Signing in again afterwards works.
    let c = h
        .service
        .login("hank@example.com", &pw(PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    assert!(authorize(&h, &c).await.is_ok());
}

async fn revoke_one_session(h: Harness) {
    let a = h.register("ivy@example.com").await;
    let b = h
        .service
        .login("ivy@example.com", &pw(PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let user_id = a.user.id;
    h.service
        .revoke_session(user_id, sid_of(&h, &b))
        .await
        .unwrap();

    assert_invalid_token(authorize(&h, &b).await);
    assert_invalid_token(h.service.refresh(&b.refresh_token).await);
    assert!(authorize(&h, &a).await.is_ok());
    let listed: Vec<Uuid> = h
        .service
        .sessions(user_id, sid_of(&h, &a))
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, [sid_of(&h, &a)]);
    // Revoking it again: it is no longer a live session.
    let again = h.service.revoke_session(user_id, sid_of(&h, &b)).await;
    assert!(matches!(again, Err(AuthError::NotFound)), "{again:?}");
}

async fn another_users_session_is_not_found(h: Harness) {
    let alice = h.register("alice2@example.com").await;
    let mallory = h.register("mallory@example.com").await;
    let result = h
        .service
        .revoke_session(mallory.user.id, sid_of(&h, &alice))
        .await;
    assert!(matches!(result, Err(AuthError::NotFound)), "{result:?}");
    let unknown = h
        .service
        .revoke_session(mallory.user.id, Uuid::new_v4())
        .await;
    assert!(matches!(unknown, Err(AuthError::NotFound)), "{unknown:?}");
    assert!(
        authorize(&h, &alice).await.is_ok(),
        "alice's session survives"
    );
    // Logout with a foreign session id does not touch it either.
    h.service
        .logout(mallory.user.id, sid_of(&h, &alice), false)
        .await
        .unwrap();
    assert!(authorize(&h, &alice).await.is_ok());
}

async fn expired_sessions_are_ignored(h: Harness) {
    let signed_in = h.register("june@example.com").await;
    let user_id = signed_in.user.id;
    let sid = sid_of(&h, &signed_in);

    // Past the access token's lifetime (and the leeway) it is refused; the refresh token works.
    h.clock.advance(h.config.access_token_ttl_secs + 31);
    assert_invalid_token(authorize(&h, &signed_in).await);
    let refreshed = h.service.refresh(&signed_in.refresh_token).await.unwrap();
    assert!(authorize(&h, &refreshed).await.is_ok());

    // Store level: items past expires_at read as absent even though no TTL deleted them.
    let access_id = h
        .service
        .tokens()
        .verify(
            &signed_in.access_token,
            shared::model::TokenType::Access,
            signed_in.user.created_at,
        )
        .unwrap()
        .jti;
    let snapshot = h
        .store
        .snapshot(user_id, sid, access_id, h.clock.now())
        .await
        .unwrap();
    assert!(
        snapshot.token.is_none(),
        "expired access item counts as absent"
    );
    assert!(snapshot.chain.is_some());

    // Past the refresh token's lifetime the whole chain is gone.
    h.clock.advance(h.config.refresh_token_ttl_secs + 1);
    assert_invalid_token(h.service.refresh(&refreshed.refresh_token).await);
    assert!(
        h.store
            .chains_of(user_id, h.clock.now())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(h.service.sessions(user_id, sid).await.unwrap().is_empty());
}

async fn chains_never_outlive_their_maximum_lifetime(h: Harness) {
    let mut current = h.register("kate@example.com").await;
    let started = current.user.created_at;
    let max = h.config.session_max_lifetime_secs;
    // Refresh every 29 days: the sliding window alone would keep the chain alive forever.
    for _ in 0..3 {
        h.clock.advance(29 * 86_400);
        current = h.service.refresh(&current.refresh_token).await.unwrap();
        let claims = h
            .service
            .tokens()
            .verify(
                &current.refresh_token,
                shared::model::TokenType::Refresh,
                h.clock.now(),
            )
            .unwrap();
        assert!(
            claims.exp <= started + max,
            "refresh exp {} beyond the chain's end",
            claims.exp
        );
    }
    h.clock.set(started + max);
    assert_invalid_token(h.service.refresh(&current.refresh_token).await);
}

async fn inactive_user_is_refused(h: Harness) {
    let signed_in = h.register("leo@example.com").await;
    let user_id = signed_in.user.id;
    h.clock.advance(10);
    assert!(
        h.store
            .set_active(user_id, false, h.clock.now())
            .await
            .unwrap()
    );

    let right = h
        .service
        .login("leo@example.com", &pw(PASSWORD), None)
        .await;
    assert!(
        matches!(right, Err(AuthError::AccountDisabled)),
        "{right:?}"
    );
    let wrong = h
        .service
        .login("leo@example.com", &pw("wrong password here"), None)
        .await;
    assert!(
        matches!(wrong, Err(AuthError::InvalidCredentials)),
        "{wrong:?}"
    );
    assert_invalid_token(authorize(&h, &signed_in).await);
    assert_invalid_token(h.service.refresh(&signed_in.refresh_token).await);
    assert_invalid_token(h.service.me(user_id).await);

    // Reactivation allows new logins; the sessions ended by deactivation stay ended.
    assert!(
        h.store
            .set_active(user_id, true, h.clock.now())
            .await
            .unwrap()
    );
    let again = h
        .service
        .login("leo@example.com", &pw(PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    assert!(authorize(&h, &again).await.is_ok());
    assert_invalid_token(authorize(&h, &signed_in).await);
}

/// Made by the reference implementation (argon2-cffi) with weaker, older parameters.
const OLD_HASH: &str = "$argon2id$v=19$m=8192,t=1,p=1$kxT/uXAc7Wjq4NEcegt37g$bj887W72CZDR9KPZbOMSczxGIsmqVt5KzpmKWjse0Rs";
const OLD_PASSWORD: &str = "Weak-old-params-42!";

async fn updated_at_is_maintained(h: Harness) {
    let created = h.clock.now();
    let user = User {
        id: Uuid::new_v4(),
        email: "old.hash@example.com".into(),
        password_hash: OLD_HASH.into(),
        created_at: created,
        updated_at: created,
        is_active: true,
        session_epoch: 0,
        email_verified: false,
        links: Default::default(),
        mfa: Default::default(),
        passkeys: Default::default(),
        identities: Default::default(),
        roles: Vec::new(),
    };
    h.store.create_user(&user).await.unwrap();

    // A login with older hash parameters upgrades the hash and moves updated_at.
    h.clock.advance(100);
    let signed_in = h
        .service
        .login("old.hash@example.com", &pw(OLD_PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let stored = h.store.user_by_id(user.id).await.unwrap().unwrap();
    assert!(
        stored
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        stored.password_hash
    );
    assert_eq!(stored.updated_at, created + 100);
    assert_eq!(stored.created_at, created);
    assert_eq!(signed_in.user, stored);
    // The upgraded hash still verifies the same password.
    h.clock.advance(100);
    let again = h
        .service
        .login("old.hash@example.com", &pw(OLD_PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    assert_eq!(again.user.updated_at, created + 100, "no second rehash");

    // Deactivation and reactivation are updates too.
    h.clock.advance(50);
    h.store
        .set_active(user.id, false, h.clock.now())
        .await
        .unwrap();
    let stored = h.store.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(stored.updated_at, created + 250);
    assert!(!stored.is_active);
    // Unknown users are reported, not created.
    assert!(
        !h.store
            .set_active(Uuid::new_v4(), true, h.clock.now())
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .set_password_hash(Uuid::new_v4(), OLD_HASH, h.clock.now())
            .await
            .unwrap()
    );
}

async fn sessions_list_marks_the_current_one(h: Harness) {
    let first = h.register("mia@example.com").await;
    h.clock.advance(10);
    let second = h
        .service
        .login("mia@example.com", &pw(PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let current = sid_of(&h, &second);
    let sessions = h.service.sessions(first.user.id, current).await.unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0].id, current, "newest first");
    assert!(sessions[0].current);
    assert_eq!(sessions[1].id, sid_of(&h, &first));
    assert!(!sessions[1].current);
    assert_eq!(sessions[1].created_at, first.user.created_at);
    assert_eq!(
        sessions[0].expires_at,
        sessions[0].created_at + h.config.refresh_token_ttl_secs
    );
}

async fn last_used_at_is_written_at_most_once_a_minute(h: Harness) {
    let signed_in = h.register("noah@example.com").await;
    let sid = sid_of(&h, &signed_in);
    let user_id = signed_in.user.id;
    let started = h.clock.now();
    let last_used = |h: &Harness| {
        let (store, now) = (h.store.clone(), h.clock.now());
        async move {
            store
                .chains_of(user_id, now)
                .await
                .unwrap()
                .iter()
                .find(|c| c.chain_id == sid)
                .unwrap()
                .last_used_at
        }
    };

    h.clock.advance(30);
    authorize(&h, &signed_in).await.unwrap();
    assert_eq!(
        last_used(&h).await,
        started,
        "within a minute of the last write: no write"
    );

    h.clock.advance(31);
    authorize(&h, &signed_in).await.unwrap();
    assert_eq!(last_used(&h).await, started + 61);

    h.clock.advance(59);
    authorize(&h, &signed_in).await.unwrap();
    assert_eq!(last_used(&h).await, started + 61);

    // Racing writers: the condition keeps it to one write a minute whatever the order.
    h.store.touch_chain(sid, started + 100, 60).await.unwrap();
    assert_eq!(last_used(&h).await, started + 61);
}

async fn tokens_from_the_store_must_match_their_hash(h: Harness) {
    let signed_in = h.register("olga@example.com").await;
    let claims = h
        .service
        .tokens()
        .verify(
            &signed_in.refresh_token,
            shared::model::TokenType::Refresh,
            h.clock.now(),
        )
        .unwrap();
    let snapshot = h
        .store
        .snapshot(claims.user_id, claims.sid, claims.jti, h.clock.now())
        .await
        .unwrap();
    let item = snapshot.token.unwrap();
    assert_eq!(item.token_hash, token_hash(&signed_in.refresh_token));
    assert_eq!(item.expires_at, claims.exp);
    assert_eq!(item.token_id, claims.jti);
    assert_eq!(item.chain_id, claims.sid);
    // The stored item keeps the hash, never the token.
    assert!(!format!("{item:?}").contains(&signed_in.refresh_token));

    // A validly signed token whose item holds another hash is refused: re-mint the same claims
    // with a different iat, which the store never saw.
    let mut forged = claims.clone();
    forged.iat -= 1;
    let kid = h.service.tokens().signing_kid().unwrap().to_owned();
    let token = h.service.tokens().mint(&forged, &kid).unwrap();
    assert_invalid_token(h.service.refresh(&token).await);
    // The real one still works afterwards: the refusal changed nothing.
    assert!(h.service.refresh(&signed_in.refresh_token).await.is_ok());
}

async fn change_password_ends_every_other_session(h: Harness) {
    let a = h.register("pia@example.com").await;
    let b = h
        .service
        .login("pia@example.com", &pw(PASSWORD), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    let b2 = h.service.refresh(&b.refresh_token).await.unwrap();
    let current = authorize(&h, &a).await.unwrap();
    let new_password = "another long horse staple 77";

    let wrong = h
        .service
        .change_password(
            current.user_id,
            current.chain_id,
            &pw("not my password"),
            &pw(new_password),
        )
        .await;
    assert!(
        matches!(wrong, Err(AuthError::InvalidCredentials)),
        "{wrong:?}"
    );
    let weak = h
        .service
        .change_password(
            current.user_id,
            current.chain_id,
            &pw(PASSWORD),
            &pw("password123"),
        )
        .await;
    assert!(matches!(weak, Err(AuthError::WeakPassword(_))), "{weak:?}");
    assert!(authorize(&h, &b2).await.is_ok(), "refusals change nothing");

    h.clock.advance(60);
    h.service
        .change_password(
            current.user_id,
            current.chain_id,
            &pw(PASSWORD),
            &pw(new_password),
        )
        .await
        .unwrap();
    assert!(
        authorize(&h, &a).await.is_ok(),
        "the session that changed it stays"
    );
    let a2 = h.service.refresh(&a.refresh_token).await.unwrap();
    assert!(authorize(&h, &a2).await.is_ok());
    assert_invalid_token(authorize(&h, &b2).await);
    assert_invalid_token(h.service.refresh(&b2.refresh_token).await);
    let listed = h
        .service
        .sessions(current.user_id, current.chain_id)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        [current.chain_id]
    );

    let old = h
        .service
        .login("pia@example.com", &pw(PASSWORD), None)
        .await;
    assert!(matches!(old, Err(AuthError::InvalidCredentials)), "{old:?}");
    let new = h
        .service
        .login("pia@example.com", &pw(new_password), None)
        .await
        .unwrap()
        .signed_in()
        .unwrap();
    assert_eq!(new.user.updated_at, a.user.created_at + 60);

    // A session that was revoked cannot change the password.
    let stale = authorize(&h, &new).await.unwrap();
    h.service
        .revoke_session(stale.user_id, stale.chain_id)
        .await
        .unwrap();
    let after = h
        .service
        .change_password(
            stale.user_id,
            stale.chain_id,
            &pw(new_password),
            &pw("yet another horse staple 88"),
        )
        .await;
    assert_invalid_token(after);
}

fn link(user: Uuid, kind: LinkKind, email: &str, now: i64, token: &str) -> EmailLink {
    EmailLink {
        token_hash: token_hash(token),
        kind,
        user_id: user,
        email: email.into(),
        created_at: now,
        expires_at: now + 600,
        epoch: 0,
        keep_chain: None,
    }
}

async fn links_are_issued_read_and_spent_once_by_the_store(h: Harness) {
    let user = h.register("links@example.com").await.user;
    let now = h.clock.now();
    let first = link(user.id, LinkKind::VerifyEmail, &user.email, now, "first");
    assert!(
        !h.store
            .issue_link(&link(
                Uuid::new_v4(),
                LinkKind::VerifyEmail,
                "x@example.com",
                now,
                "orphan"
            ))
            .await
            .unwrap(),
        "no such user"
    );
    assert!(h.store.issue_link(&first).await.unwrap());
    assert_eq!(
        h.store.link(&first.token_hash, now).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        h.store.link(&first.token_hash, now + 600).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        h.store
            .link(&token_hash("never issued"), now)
            .await
            .unwrap(),
        None
    );

    // A newer link of the kind supersedes it; one of another kind does not.
    let second = link(user.id, LinkKind::VerifyEmail, &user.email, now, "second");
    let reset = link(user.id, LinkKind::ResetPassword, &user.email, now, "reset");
    assert!(h.store.issue_link(&second).await.unwrap());
    assert!(h.store.issue_link(&reset).await.unwrap());
    assert!(!h.store.spend_verification(&first, now).await.unwrap());
    assert!(
        !h.store
            .spend_verification(&second, now + 600)
            .await
            .unwrap(),
        "expired"
    );
    assert!(h.store.spend_verification(&second, now).await.unwrap());
    assert!(
        !h.store.spend_verification(&second, now).await.unwrap(),
        "once"
    );
    assert_eq!(
        h.store.link(&second.token_hash, now).await.unwrap(),
        None,
        "spent"
    );
    let verified = h.store.user_by_id(user.id).await.unwrap().unwrap();
    assert!(verified.email_verified);

    let epoch = verified.session_epoch;
    assert!(
        h.store
            .spend_reset(&reset, "$argon2id$new", false, now)
            .await
            .unwrap()
    );
    let reset_user = h.store.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(reset_user.password_hash, "$argon2id$new");
    assert_eq!(reset_user.session_epoch, epoch + 1);
    assert!(
        !h.store
            .spend_reset(&reset, "$argon2id$again", false, now)
            .await
            .unwrap()
    );
}

async fn a_taken_address_leaves_the_change_link_usable(h: Harness) {
    let user = h.register("mover@example.com").await.user;
    let now = h.clock.now();
    let change = link(
        user.id,
        LinkKind::ChangeEmail,
        "wanted@example.com",
        now,
        "change",
    );
    assert!(h.store.issue_link(&change).await.unwrap());
    let squatter = h.register("wanted@example.com").await.user;
    assert_eq!(
        h.store
            .spend_email_change(&change, &user.email, now)
            .await
            .unwrap(),
        EmailChange::Taken
    );
    assert_eq!(
        h.store.user_by_id(user.id).await.unwrap().unwrap().email,
        "mover@example.com"
    );
    assert!(
        h.store
            .link(&change.token_hash, now)
            .await
            .unwrap()
            .is_some(),
        "not spent"
    );
    // The link names the address it changes from: from any other, nothing moves.
    assert!(squatter.is_active);
    assert_eq!(
        h.store
            .spend_email_change(&change, "not-my-address@example.com", now)
            .await
            .unwrap(),
        EmailChange::Stale
    );
    assert_eq!(
        h.store
            .user_by_email("mover@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        user.id
    );
}

async fn composed_and_decomposed_addresses_are_one_account(h: Harness) {
    let precomposed = "jos\u{e9}@ex\u{e4}mple.com";
    let decomposed = "jose\u{301}@exa\u{308}mple.com";
    let registered = h.register(precomposed).await;
    assert_eq!(registered.user.email, "jos\u{e9}@xn--exmple-cua.com");
    assert!(matches!(
        h.service.register(decomposed, &pw(PASSWORD), None).await,
        Err(AuthError::EmailTaken)
    ));
    for spelling in [precomposed, decomposed, "JOSE\u{301}@xn--exmple-cua.com"] {
        let signed_in = h
            .service
            .login(spelling, &pw(PASSWORD), None)
            .await
            .unwrap()
            .signed_in()
            .unwrap();
        assert_eq!(signed_in.user.id, registered.user.id, "{spelling:?}");
    }
}

fn identity(provider: &str, subject: &str, at: i64) -> (String, LinkedIdentity) {
    (
        identity_id(provider, subject),
        LinkedIdentity {
            provider: provider.into(),
            subject: subject.into(),
            email: None,
            linked_at: at,
            last_used_at: None,
        },
    )
}

async fn identities_are_guarded_limited_and_never_the_last_way_in(h: Harness) {
    let now = h.clock.now();
    let a = h.register("ident.a@example.com").await.user;
    let b = h.register("ident.b@example.com").await.user;
    let (x, linked_x) = identity("op", "x", now);

    assert_eq!(
        h.store
            .link_identity(a.id, a.session_epoch + 1, &x, &linked_x)
            .await
            .unwrap(),
        IdentityLinked::Refused,
        "another epoch"
    );
    assert_eq!(
        h.store
            .link_identity(a.id, a.session_epoch, &x, &linked_x)
            .await
            .unwrap(),
        IdentityLinked::Linked
    );
    assert_eq!(h.store.identity_owner(&x).await.unwrap(), Some(a.id));
    assert_eq!(
        h.store
            .link_identity(b.id, b.session_epoch, &x, &linked_x)
            .await
            .unwrap(),
        IdentityLinked::Taken,
        "one provider account, one user"
    );
    assert!(h.store.use_identity(a.id, &x, now + 5).await.unwrap());
    let stored = h.store.user_by_id(a.id).await.unwrap().unwrap();
    assert_eq!(stored.identities[&x].last_used_at, Some(now + 5));

    // At most MAX_IDENTITIES on one account.
    for i in 1..MAX_IDENTITIES {
        let (id, linked) = identity("op", &format!("more-{i}"), now);
        assert_eq!(
            h.store
                .link_identity(a.id, a.session_epoch, &id, &linked)
                .await
                .unwrap(),
            IdentityLinked::Linked
        );
    }
    let (over, linked_over) = identity("op", "one-too-many", now);
    assert_eq!(
        h.store
            .link_identity(a.id, a.session_epoch, &over, &linked_over)
            .await
            .unwrap(),
        IdentityLinked::Refused
    );
    assert_eq!(
        h.store.identity_owner(&over).await.unwrap(),
        None,
        "no guard left behind"
    );

    // A new user holding a linked identity is not written at all: neither it nor its address.
    let mut taken = b.clone();
    taken.id = Uuid::new_v4();
    taken.email = "ident.c@example.com".into();
    taken.identities = [(x.clone(), linked_x.clone())].into();
    assert!(matches!(
        h.store.create_user(&taken).await,
        Err(shared::store::StoreError::IdentityTaken)
    ));
    assert!(
        h.store
            .user_by_email("ident.c@example.com")
            .await
            .unwrap()
            .is_none()
    );

    // An account without a password keeps its last identity.
    let (y, linked_y) = identity("op", "y", now);
    let (z, linked_z) = identity("other", "y", now);
    let mut passwordless = b.clone();
    passwordless.id = Uuid::new_v4();
    passwordless.email = "ident.d@example.com".into();
    passwordless.password_hash = String::new();
    passwordless.identities = [(y.clone(), linked_y)].into();
    h.store.create_user(&passwordless).await.unwrap();
    assert_eq!(
        h.store.identity_owner(&y).await.unwrap(),
        Some(passwordless.id)
    );
    assert!(
        !h.store
            .unlink_identity(passwordless.id, &y, now)
            .await
            .unwrap()
    );
    assert_eq!(
        h.store
            .link_identity(passwordless.id, 0, &z, &linked_z)
            .await
            .unwrap(),
        IdentityLinked::Linked
    );
    assert!(
        h.store
            .unlink_identity(passwordless.id, &y, now)
            .await
            .unwrap()
    );
    assert_eq!(h.store.identity_owner(&y).await.unwrap(), None);
    assert!(
        !h.store
            .unlink_identity(passwordless.id, &z, now)
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .unlink_identity(passwordless.id, &y, now)
            .await
            .unwrap(),
        "gone already"
    );
    // With a password, the last identity may go.
    assert!(h.store.unlink_identity(a.id, &x, now).await.unwrap());
}
