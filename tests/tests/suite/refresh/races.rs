//! Races on both stores: what must hold when many requests arrive at once.

use futures::future::join_all;
use integration_tests::{Harness, on_both_stores};
use shared::service::AuthError;
use shared::{Clock, Password};

on_both_stores!(
    concurrent_registrations_of_one_email_create_one_user,
    concurrent_refreshes_of_one_token_create_one_successor,
);

async fn concurrent_registrations_of_one_email_create_one_user(h: Harness) {
    let attempts = (0..32).map(|i| {
        let service = h.service.clone();
        // Vary the case: the email guard is on the normalised address.
        let email = if i % 2 == 0 {
            "race@example.com"
        } else {
            "RACE@Example.com"
        };
        tokio::spawn(async move {
            service
                .register(
                    email,
                    &Password::new(format!("race winner number {i} wins")),
                    None,
                )
                .await
        })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();

    let successes = results.iter().filter(|r| r.is_ok()).count();
    let taken = results
        .iter()
        .filter(|r| matches!(r, Err(AuthError::EmailTaken)))
        .count();
    assert_eq!(successes, 1, "{results:?}");
    assert_eq!(
        taken, 31,
        "every other attempt is told the email is taken: {results:?}"
    );
    assert_eq!(h.stored_user_count().await, 1);

    let winner = results.into_iter().find_map(Result::ok).unwrap();
    let stored = h
        .store
        .user_by_email("race@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.id, winner.user.id,
        "the guard points at the one stored user"
    );
}

async fn concurrent_refreshes_of_one_token_create_one_successor(h: Harness) {
    let signed_in = h
        .service
        .register(
            "refresh.race@example.com",
            &Password::new("correct horse battery staple"),
            None,
        )
        .await
        .unwrap();
    let sid = h
        .service
        .tokens()
        .verify(
            &signed_in.refresh_token,
            shared::model::TokenType::Refresh,
            h.clock.now(),
        )
        .unwrap()
        .sid;
    h.clock.advance(5);

    let attempts = (0..16).map(|_| {
        let service = h.service.clone();
        let token = signed_in.refresh_token.clone();
        tokio::spawn(async move { service.refresh(&token).await })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();

    // Within the grace window every caller gets the one successor pair, byte for byte.
    let first = results[0].as_ref().expect("refresh succeeds");
    for result in &results {
        assert_eq!(result.as_ref().unwrap(), first);
    }
    // Exactly one successor was stored: the first pair plus one rotated pair.
    assert_eq!(h.stored_token_count(sid).await, 4);
    // The chain is intact and the successor works.
    assert!(h.service.authorize(&first.access_token).await.is_ok());
    assert!(h.service.refresh(&first.refresh_token).await.is_ok());
}
