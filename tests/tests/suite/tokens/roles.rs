//! Roles at the authorizer, on both stores: `ROUTE_ROLES` rules deny (403) a caller without a
//! role they name, for HTTP API and REST API events alike, before any function runs; the roles
//! reach the function as a comma-separated context value; a change shows from the next refresh.

use integration_tests::{Backend, Harness, iam, test_config};
use serde_json::{Value, json};
use shared::authorizer;
use shared::config::roles::RouteRoles;
use shared::{Clock, SignedIn};

fn rules() -> Vec<RouteRoles> {
    vec![
        RouteRoles::new("GET /admin/*", vec!["admin".into()]).unwrap(),
        RouteRoles::new("ANY /reports/{id}", vec!["analyst".into(), "admin".into()]).unwrap(),
    ]
}

/// An HTTP API (payload 2.0) authorizer event for `route_key`.
fn http_event(route_key: &str, token: &str) -> Value {
    json!({
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/$default/GET/x",
        "identitySource": [format!("Bearer {token}")],
        "routeKey": route_key,
        "rawPath": "/x",
        "headers": {"authorization": format!("Bearer {token}")},
        "requestContext": {"http": {"method": "GET", "path": "/x"}},
    })
}

/// A REST API TOKEN event for `METHOD /path`.
fn rest_event(method: &str, path: &str, token: &str) -> Value {
    json!({
        "type": "TOKEN",
        "authorizationToken": format!("Bearer {token}"),
        "methodArn": format!("arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/{method}{path}"),
    })
}

async fn allowed(h: &Harness, route_key: &str, token: &str) -> Option<Value> {
    let answer = authorizer::handle(&h.service, http_event(route_key, token))
        .await
        .unwrap();
    (answer["isAuthorized"] == true).then(|| answer["context"].clone())
}

async fn with_roles(h: &Harness, signed_in: &SignedIn, roles: &[&str]) -> SignedIn {
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    assert!(
        h.store
            .set_roles(signed_in.user.id, &roles, h.clock.now())
            .await
            .unwrap()
    );
    h.service.refresh(&signed_in.refresh_token).await.unwrap()
}

async fn roles_are_enforced_at_the_authorizer_and_change_at_refresh(backend: Backend) {
    let mut config = test_config();
    config.route_roles = rules();
    let h = Harness::new_with(backend, config).await;
    let plain = h.register("no-roles@example.com").await;

    // No rule: allowed, with no roles.
    let context = allowed(&h, "GET /auth/me", &plain.access_token)
        .await
        .unwrap();
    assert_eq!(context["roles"], "");
    // A rule the caller meets none of: denied, whatever the path's parameters.
    assert!(
        allowed(&h, "GET /admin/users", &plain.access_token)
            .await
            .is_none()
    );
    assert!(
        allowed(&h, "GET /admin/users/{id}", &plain.access_token)
            .await
            .is_none()
    );
    assert!(
        allowed(&h, "PATCH /reports/{id}", &plain.access_token)
            .await
            .is_none()
    );
    // Another method than the rule's is not its business.
    assert!(
        allowed(&h, "POST /admin/users", &plain.access_token)
            .await
            .is_some()
    );

    // Granted: the token minted before does not carry it; the next refresh does.
    let admin = with_roles(&h, &plain, &["admin"]).await;
    assert!(
        allowed(&h, "GET /admin/users", &plain.access_token)
            .await
            .is_none()
    );
    let context = allowed(&h, "GET /admin/users", &admin.access_token)
        .await
        .unwrap();
    assert_eq!(context["roles"], "admin");
    assert!(
        allowed(&h, "DELETE /reports/{id}", &admin.access_token)
            .await
            .is_some()
    );

    // One role of each matching rule's list.
    let analyst = with_roles(&h, &admin, &["analyst", "support"]).await;
    let context = allowed(&h, "GET /reports/{id}", &analyst.access_token)
        .await
        .unwrap();
    assert_eq!(context["roles"], "analyst,support");
    assert!(
        allowed(&h, "GET /admin/users", &analyst.access_token)
            .await
            .is_none()
    );

    // REST: a missing role is an explicit Deny (403); a bad token stays Unauthorized (401).
    let denied = authorizer::handle(
        &h.service,
        rest_event("GET", "/admin/users", &analyst.access_token),
    )
    .await
    .unwrap();
    let arn = |method: &str, path: &str| {
        format!("arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/{method}{path}")
    };
    assert!(!iam::allows(
        &denied["policyDocument"],
        &arn("GET", "/admin/users")
    ));
    let allowed_rest = authorizer::handle(
        &h.service,
        rest_event("GET", "/reports/42", &analyst.access_token),
    )
    .await
    .unwrap();
    assert!(iam::allows(
        &allowed_rest["policyDocument"],
        &arn("GET", "/reports/42")
    ));
    assert_eq!(allowed_rest["context"]["roles"], "analyst,support");
    assert_eq!(
        authorizer::handle(&h.service, rest_event("GET", "/admin/users", "not-a-token")).await,
        Err(authorizer::AuthorizerError::Unauthorized)
    );

    // Revoked: gone at the next refresh.
    let none = with_roles(&h, &analyst, &[]).await;
    assert!(
        allowed(&h, "GET /reports/{id}", &none.access_token)
            .await
            .is_none()
    );
    assert!(
        h.store
            .user_by_id(plain.user.id)
            .await
            .unwrap()
            .unwrap()
            .roles
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn roles_on_dynamodb() {
    roles_are_enforced_at_the_authorizer_and_change_at_refresh(Backend::Dynamo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn roles_on_the_embedded_store() {
    roles_are_enforced_at_the_authorizer_and_change_at_refresh(Backend::Embedded).await;
}

/// A REST API caches an authorizer's policy by token (300 s by default) and answers the caller's
/// next routes with it. Every pair of routes, asked for one after the other: the policy cached
/// from the first decides the second as a fresh call does, so a caller is never refused a
/// route they may call (a false 403) nor let through one they may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cached_rest_policy_decides_the_next_route_as_a_fresh_call() {
    let mut config = test_config();
    config.route_roles = rules();
    let h = Harness::new_with(Backend::Embedded, config).await;
    let plain = h.register("rest-plain@example.com").await;
    let analyst = h.register("rest-analyst@example.com").await;
    let analyst = with_roles(&h, &analyst, &["analyst"]).await;
    let admin = h.register("rest-admin@example.com").await;
    let admin = with_roles(&h, &admin, &["admin"]).await;
    let routes = [
        ("GET", "/orders"),
        ("POST", "/auth/logout"),
        ("GET", "/admin/users"),
        (
            "DELETE",
            "/admin/users/0196a3c4-0000-7000-8000-000000000000",
        ),
        ("PUT", "/reports/42"),
    ];
    let arn = |method: &str, path: &str| {
        format!("arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/{method}{path}")
    };
    for (who, token) in [
        ("plain", &plain.access_token),
        ("analyst", &analyst.access_token),
        ("admin", &admin.access_token),
    ] {
        let mut fresh = Vec::new();
        for (method, path) in routes {
            let answer = authorizer::handle(&h.service, rest_event(method, path, token))
                .await
                .expect("a valid token gets a policy");
            assert_eq!(
                answer["context"]["user_email"],
                format!("rest-{who}@example.com")
            );
            let allowed = iam::allows(&answer["policyDocument"], &arn(method, path));
            fresh.push((answer, allowed));
        }
        for (cached, _) in &fresh {
            for ((method, path), (_, allowed)) in routes.iter().zip(&fresh) {
                assert_eq!(
                    iam::allows(&cached["policyDocument"], &arn(method, path)),
                    *allowed,
                    "{who}: {method} {path} with the policy cached from another route: {cached}"
                );
            }
        }
        let decided: Vec<bool> = fresh.iter().map(|(_, allowed)| *allowed).collect();
        let expected = match who {
            "plain" => [true, true, false, false, false],
            "analyst" => [true, true, false, false, true],
            _ => [true, true, true, true, true],
        };
        assert_eq!(decided, expected, "{who}");
    }
}
