//! Behind a REST API (v1 events): the functions route by the event's method and resource and
//! read the client's address from `requestContext.identity.sourceIp`, so the per-IP budgets for
//! registrations and failed logins hold behind either kind of API Gateway.

use integration_tests::{Backend, Harness, test_config};
use lambda_http::{Body, Response};
use serde_json::{Value, json};
use shared::routes::ROUTES;

const PASSWORD: &str = "correct horse battery staple";

macro_rules! on_both_stores_with_budgets {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn dynamodb() {
                    super::$test(Harness::new_with(Backend::Dynamo, harness_config()).await).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn embedded() {
                    super::$test(Harness::new_with(Backend::Embedded, harness_config()).await).await;
                }
            }
        )*
    };
}

on_both_stores_with_budgets!(
    failed_logins_are_limited_per_source_ip,
    registrations_are_limited_per_source_ip,
    a_greedy_proxy_resource_is_routed_by_its_path,
);

/// A REST API (v1) proxy event, as API Gateway sends it to a function, from `source_ip`.
fn rest_event(method: &str, resource: &str, body: &Value, source_ip: &str) -> Value {
    json!({
        "resource": resource,
        "path": resource,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", "Host": "abc123.execute-api.eu-west-1.amazonaws.com"},
        "multiValueHeaders": {
            "Content-Type": ["application/json"],
            "Host": ["abc123.execute-api.eu-west-1.amazonaws.com"]
        },
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "resourceId": "r1",
            "resourcePath": resource,
            "httpMethod": method,
            "path": format!("/prod{resource}"),
            "stage": "prod",
            "requestId": uuid::Uuid::new_v4().to_string(),
            "requestTimeEpoch": 1_764_000_000_000_i64,
            "protocol": "HTTP/1.1",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "identity": {"sourceIp": source_ip, "userAgent": "curl/8.5.0"}
        },
        "body": body.to_string(),
        "isBase64Encoded": false
    })
}

/// Hands a REST event to the function that serves its route, as Lambda would.
async fn invoke_rest(h: &Harness, event: &Value) -> Response<Body> {
    let key = format!(
        "{} {}",
        event["httpMethod"].as_str().unwrap(),
        event["path"].as_str().unwrap()
    );
    let route = ROUTES
        .iter()
        .find(|r| r.key() == key)
        .unwrap_or_else(|| panic!("no route {key}"));
    let request = lambda_http::request::from_str(&event.to_string()).expect("a REST API event");
    route.function.routes().serve(&*h.service, request).await
}

fn harness_config() -> shared::Config {
    let mut config = test_config();
    config.ip_max_failed_logins = 3;
    config.ip_max_registrations = 2;
    config
}

async fn failed_logins_are_limited_per_source_ip(h: Harness) {
    let login = |ip: &str, n: u32| {
        rest_event(
            "POST",
            "/auth/login",
            &json!({"email": format!("victim-{n}@example.com"), "password": "a guess"}),
            ip,
        )
    };
    for n in 0..3 {
        let answer = invoke_rest(&h, &login("203.0.113.50", n)).await;
        assert_eq!(answer.status(), 401, "failed login {n}");
    }
    let refused = invoke_rest(&h, &login("203.0.113.50", 3)).await;
    assert_eq!(refused.status(), 429, "the IP's budget is spent");
    assert!(refused.headers().contains_key("retry-after"));
    // Only this IP is held back.
    let other = invoke_rest(&h, &login("198.51.100.7", 4)).await;
    assert_eq!(other.status(), 401);
}

async fn registrations_are_limited_per_source_ip(h: Harness) {
    let register = |ip: &str, n: u32| {
        rest_event(
            "POST",
            "/auth/register",
            &json!({"email": format!("new-{n}@example.com"), "password": PASSWORD}),
            ip,
        )
    };
    for n in 0..2 {
        let answer = invoke_rest(&h, &register("203.0.113.60", n)).await;
        assert_eq!(answer.status(), 201, "registration {n}");
    }
    let refused = invoke_rest(&h, &register("203.0.113.60", 2)).await;
    assert_eq!(refused.status(), 429);
    let other = invoke_rest(&h, &register("198.51.100.8", 3)).await;
    assert_eq!(other.status(), 201);
}

async fn a_greedy_proxy_resource_is_routed_by_its_path(h: Harness) {
    let mut event = rest_event(
        "POST",
        "/auth/register",
        &json!({"email": "proxied@example.com", "password": PASSWORD}),
        "203.0.113.70",
    );
    event["resource"] = json!("/{proxy+}");
    event["requestContext"]["resourcePath"] = json!("/{proxy+}");
    event["pathParameters"] = json!({"proxy": "auth/register"});
    let answer = invoke_rest(&h, &event).await;
    assert_eq!(answer.status(), 201);
    // The same event for a path the function does not serve.
    event["path"] = json!("/auth/unknown");
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let answer = shared::routes::Function::Register
        .routes()
        .serve(&*h.service, request)
        .await;
    assert_eq!(answer.status(), 404);
}
