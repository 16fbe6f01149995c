//! The authorizer handler on both stores: what it allows, what it refuses, and that a refusal
//! of a bad token costs no store call at all.

use integration_tests::{Harness, on_both_stores};
use serde_json::{Value, json};
use shared::authorizer::{self, AuthorizerError};
use shared::{Clock, Password};

fn v2_event(authorization: Option<&str>) -> Value {
    let mut event = json!({
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/$default/GET/auth/me",
        "routeKey": "GET /auth/me",
        "rawPath": "/auth/me",
        "rawQueryString": "",
        "headers": {},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abcdef1234",
            "domainName": "abcdef1234.execute-api.eu-west-1.amazonaws.com",
            "http": {"method": "GET", "path": "/auth/me", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "test"},
            "requestId": "id", "routeKey": "GET /auth/me", "stage": "$default",
            "time": "27/Nov/2026:14:00:00 +0000", "timeEpoch": 1795788000000u64
        }
    });
    if let Some(value) = authorization {
        event["identitySource"] = json!([value]);
        event["headers"]["authorization"] = json!(value);
    }
    event
}

fn token_event(authorization: &str) -> Value {
    json!({"type": "TOKEN", "authorizationToken": authorization,
           "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/auth/me"})
}

async fn v2(h: &Harness, authorization: Option<&str>) -> Value {
    authorizer::handle(&h.service, v2_event(authorization))
        .await
        .unwrap()
}

const DENY: fn() -> Value = || json!({"isAuthorized": false, "context": {}});

on_both_stores!(
    allows_a_live_session_with_its_context,
    refuses_bad_tokens_without_touching_the_store,
    refuses_revoked_sessions_and_inactive_users_without_writing,
    rest_api_denials_are_the_unauthorized_error,
    an_allowed_request_writes_only_last_used_at_once_a_minute,
);

async fn allows_a_live_session_with_its_context(h: Harness) {
    let signed_in = h.register("auth.test@example.com").await;
    let answer = v2(&h, Some(&format!("Bearer {}", signed_in.access_token))).await;
    assert_eq!(answer["isAuthorized"], true);
    let context = answer["context"].as_object().unwrap();
    assert_eq!(context["user_id"], json!(signed_in.user.id.to_string()));
    assert_eq!(context["user_email"], "auth.test@example.com");
    assert!(uuid::Uuid::parse_str(context["session_id"].as_str().unwrap()).is_ok());
    // The scheme is case-insensitive, as HTTP says.
    let answer = v2(&h, Some(&format!("bearer {}", signed_in.access_token))).await;
    assert_eq!(answer["isAuthorized"], true);
}

async fn refuses_bad_tokens_without_touching_the_store(h: Harness) {
    let signed_in = h.register("auth.test@example.com").await;
    let token = &signed_in.access_token;
    let mut tampered = token.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let (header, rest) = token.split_once('.').unwrap();
    let _ = header;
    let none_alg = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.{}",
        rest.split_once('.').unwrap().0
    );

    let before = h.calls.total();
    for value in [
        None,
        Some(String::new()),
        Some("Basic dXNlcjpwYXNz".to_owned()),
        Some("Bearer".to_owned()),
        Some("Bearer not-a-jwt".to_owned()),
        Some(format!("Bearer {tampered}")),
        Some(format!("Bearer {none_alg}.")),
        Some(format!("Bearer {}", signed_in.refresh_token)),
        Some(format!("Bearer {}", "A".repeat(9000))),
        Some(format!("Token {token}")),
    ] {
        assert_eq!(v2(&h, value.as_deref()).await, DENY(), "{value:?}");
    }
    // Expired: verified against the clock, still no store call.
    h.clock.advance(h.config.access_token_ttl_secs + 60);
    assert_eq!(v2(&h, Some(&format!("Bearer {token}"))).await, DENY());
    assert_eq!(h.calls.total(), before, "no store call for any of these");
}

async fn refuses_revoked_sessions_and_inactive_users_without_writing(h: Harness) {
    let signed_in = h.register("auth.test@example.com").await;
    let bearer = format!("Bearer {}", signed_in.access_token);
    let principal = h.service.authorize(&signed_in.access_token).await.unwrap();
    h.service
        .logout(principal.user_id, principal.chain_id, false)
        .await
        .unwrap();
    let other = h
        .service
        .login(
            "auth.test@example.com",
            &Password::new("correct horse battery staple"),
            None,
        )
        .await
        .unwrap()
        .signed_in()
        .unwrap();

    // Past the once-a-minute touch interval: a live session would be written now.
    h.clock.advance(120);
    let writes = h.calls.writes();
    assert_eq!(v2(&h, Some(&bearer)).await, DENY(), "revoked session");
    h.store
        .set_active(other.user.id, false, h.clock.now())
        .await
        .unwrap();
    assert_eq!(
        v2(&h, Some(&format!("Bearer {}", other.access_token))).await,
        DENY(),
        "inactive user"
    );
    assert_eq!(h.calls.writes(), writes, "a refusal writes nothing");
}

async fn rest_api_denials_are_the_unauthorized_error(h: Harness) {
    let signed_in = h.register("auth.test@example.com").await;
    for value in ["", "Bearer nope", "Basic abc"] {
        let answer = authorizer::handle(&h.service, token_event(value)).await;
        assert_eq!(answer, Err(AuthorizerError::Unauthorized), "{value}");
    }
    assert_eq!(
        AuthorizerError::Unauthorized.to_string(),
        "Unauthorized",
        "API Gateway matches this text"
    );
    let answer = authorizer::handle(
        &h.service,
        token_event(&format!("Bearer {}", signed_in.access_token)),
    )
    .await;
    assert_eq!(
        answer.unwrap()["policyDocument"]["Statement"][0]["Effect"],
        "Allow"
    );
    // Events of neither kind are refused.
    assert_eq!(
        authorizer::handle(&h.service, json!({"hello": "world"})).await,
        Err(AuthorizerError::Unauthorized)
    );
    assert_eq!(
        authorizer::handle(&h.service, json!({"type": "TOKEN"})).await,
        Err(AuthorizerError::Unauthorized)
    );
}

async fn an_allowed_request_writes_only_last_used_at_once_a_minute(h: Harness) {
    let signed_in = h.register("auth.test@example.com").await;
    let bearer = format!("Bearer {}", signed_in.access_token);
    let writes = h.calls.writes();
    for _ in 0..5 {
        assert_eq!(v2(&h, Some(&bearer)).await["isAuthorized"], true);
    }
    assert_eq!(
        h.calls.writes(),
        writes,
        "within the first minute: no write"
    );
    h.clock.advance(61);
    for _ in 0..5 {
        assert_eq!(v2(&h, Some(&bearer)).await["isAuthorized"], true);
    }
    assert_eq!(
        h.calls.writes(),
        writes + 1,
        "one write for the next minute"
    );
}

#[tokio::test]
async fn an_unreachable_store_is_an_error_not_a_denial() {
    let config = integration_tests::test_config();
    let h = Harness::unreachable_dynamo(config).await;
    let token = h.mint_token_for_unknown_session(shared::model::TokenType::Access);
    let answer = authorizer::handle(&h.service, v2_event(Some(&format!("Bearer {token}")))).await;
    assert_eq!(answer, Err(AuthorizerError::Unavailable));
}
