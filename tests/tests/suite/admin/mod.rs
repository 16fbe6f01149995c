//! The admin API on both stores: every admin route refused at the authorizer without the
//! `admin` role (and by the service itself), users listed a page at a time with an opaque
//! cursor, one user, roles and activity changed (deactivation ends every session at once), the
//! user's sessions listed and ended.

use std::collections::BTreeSet;

use integration_tests::{Harness, on_both_stores};
use serde_json::json;
use shared::authorizer;
use shared::routes::{Access, ROUTES};
use shared::service::UserChange;
use shared::{AuthError, Clock, Principal, SignedIn};
use uuid::Uuid;

on_both_stores!(
    every_admin_route_needs_the_admin_role,
    users_come_a_page_at_a_time,
    an_admin_changes_roles_and_activity,
    an_admin_lists_and_ends_a_users_sessions,
);

/// A signed-in admin: the role granted, then a refresh to carry it.
async fn admin(h: &Harness, email: &str) -> (SignedIn, Principal) {
    let signed_in = h.register(email).await;
    h.store
        .set_roles(signed_in.user.id, &["admin".to_owned()], h.clock.now())
        .await
        .unwrap();
    let refreshed = h.service.refresh(&signed_in.refresh_token).await.unwrap();
    let principal = h.service.authorize(&refreshed.access_token).await.unwrap();
    assert_eq!(principal.roles, ["admin"]);
    (refreshed, principal)
}

async fn every_admin_route_needs_the_admin_role(h: Harness) {
    let plain = h.register("plain@example.com").await;
    let (admin_tokens, _) = admin(&h, "boss@example.com").await;
    let routes: Vec<_> = ROUTES
        .iter()
        .filter(|r| r.access == Access::Admin)
        .collect();
    assert_eq!(routes.len(), 6);
    for route in routes {
        assert!(route.path.starts_with("/admin/"), "{}", route.key());
        let decide = |token: &str| {
            let event = json!({
                "version": "2.0", "type": "REQUEST",
                "identitySource": [format!("Bearer {token}")],
                "routeKey": route.key(), "rawPath": route.path, "headers": {},
                "requestContext": {"http": {"method": route.method, "path": route.path}},
            });
            authorizer::handle(&h.service, event)
        };
        let refused = decide(&plain.access_token).await.unwrap();
        assert_eq!(refused["isAuthorized"], false, "{}", route.key());
        let allowed = decide(&admin_tokens.access_token).await.unwrap();
        assert_eq!(allowed["isAuthorized"], true, "{}", route.key());
        assert_eq!(allowed["context"]["roles"], "admin");
    }
    // The service checks again, for a route deployed without the authorizer's rule.
    let principal = h.service.authorize(&plain.access_token).await.unwrap();
    assert!(matches!(
        h.service.admin_user(&principal, plain.user.id).await,
        Err(AuthError::Forbidden)
    ));
    assert!(matches!(
        h.service
            .admin_list_users(&principal, None, None, None)
            .await,
        Err(AuthError::Forbidden)
    ));
    assert!(matches!(
        h.service
            .admin_revoke_sessions(&principal, plain.user.id)
            .await,
        Err(AuthError::Forbidden)
    ));
}

async fn users_come_a_page_at_a_time(h: Harness) {
    let (_, admin) = admin(&h, "pager@example.com").await;
    let mut expected = BTreeSet::from([admin.user_id]);
    for i in 0..5 {
        expected.insert(h.register(&format!("user{i}@example.com")).await.user.id);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let page = h
            .service
            .admin_list_users(&admin, None, cursor.as_deref(), Some(2))
            .await
            .unwrap();
        assert!(page.users.len() <= 2);
        seen.extend(page.users.iter().map(|u| u.id));
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "the pages end");
    let unique: BTreeSet<Uuid> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no user twice");
    assert_eq!(unique, expected, "every user once");

    let one = h
        .service
        .admin_list_users(&admin, Some("USER3@example.com"), None, None)
        .await
        .unwrap();
    assert_eq!(one.users.len(), 1);
    assert_eq!(one.users[0].email, "user3@example.com");
    assert!(one.next.is_none());
    let none = h
        .service
        .admin_list_users(&admin, Some("nobody@example.com"), None, None)
        .await
        .unwrap();
    assert!(none.users.is_empty());

    for limit in [0, 101] {
        assert!(matches!(
            h.service
                .admin_list_users(&admin, None, None, Some(limit))
                .await,
            Err(AuthError::InvalidField { field: "limit", .. })
        ));
    }
    assert!(matches!(
        h.service
            .admin_list_users(&admin, None, Some("not-a-cursor!"), None)
            .await,
        Err(AuthError::InvalidField {
            field: "cursor",
            ..
        })
    ));
    assert!(matches!(
        h.service.admin_user(&admin, Uuid::new_v4()).await,
        Err(AuthError::UserNotFound)
    ));
}

async fn an_admin_changes_roles_and_activity(h: Harness) {
    let (_, admin) = admin(&h, "chief@example.com").await;
    let target = h.register("staff@example.com").await;
    let change = |is_active, roles: Option<Vec<&str>>| UserChange {
        is_active,
        roles: roles.map(|r| r.into_iter().map(str::to_owned).collect()),
    };
    let user = h
        .service
        .admin_update_user(
            &admin,
            target.user.id,
            change(None, Some(vec!["support", "analyst", "support"])),
        )
        .await
        .unwrap();
    assert_eq!(user.roles, ["analyst", "support"]);
    // The roles show at the next refresh, not before.
    assert!(
        h.service
            .authorize(&target.access_token)
            .await
            .unwrap()
            .roles
            .is_empty()
    );
    let refreshed = h.service.refresh(&target.refresh_token).await.unwrap();
    assert_eq!(
        h.service
            .authorize(&refreshed.access_token)
            .await
            .unwrap()
            .roles,
        ["analyst", "support"]
    );
    assert!(matches!(
        h.service
            .admin_update_user(
                &admin,
                target.user.id,
                change(None, Some(vec!["Not A Role"]))
            )
            .await,
        Err(AuthError::InvalidField { field: "roles", .. })
    ));

    // Deactivation ends every session at once, and refuses sign-in.
    let user = h
        .service
        .admin_update_user(&admin, target.user.id, change(Some(false), None))
        .await
        .unwrap();
    assert!(!user.is_active);
    assert!(h.service.authorize(&refreshed.access_token).await.is_err());
    assert!(h.service.refresh(&refreshed.refresh_token).await.is_err());
    let user = h
        .service
        .admin_update_user(&admin, target.user.id, change(Some(true), Some(vec![])))
        .await
        .unwrap();
    assert!(user.is_active && user.roles.is_empty());
    h.sign_in("staff@example.com", integration_tests::PASSWORD)
        .await;
}

async fn an_admin_lists_and_ends_a_users_sessions(h: Harness) {
    let (_, admin) = admin(&h, "ops@example.com").await;
    let first = h.register("many@example.com").await;
    let second = h
        .sign_in("many@example.com", integration_tests::PASSWORD)
        .await;
    let sessions = h
        .service
        .admin_sessions(&admin, first.user.id)
        .await
        .unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(sessions.iter().all(|s| !s.current));
    h.service
        .admin_revoke_sessions(&admin, first.user.id)
        .await
        .unwrap();
    for token in [&first.access_token, &second.access_token] {
        assert!(h.service.authorize(token).await.is_err());
    }
    assert!(
        h.service
            .admin_sessions(&admin, first.user.id)
            .await
            .unwrap()
            .is_empty()
    );
    // The admin's own session is untouched.
    assert!(
        h.service
            .admin_sessions(&admin, admin.user_id)
            .await
            .unwrap()
            .len()
            == 1
    );
}
