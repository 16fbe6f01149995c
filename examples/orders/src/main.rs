//! A team's own protected function behind this stack's authorizer: API Gateway runs the
//! authorizer first, and passes what it decided in the request context. The function trusts
//! that context (never a token or a header from the client) and here answers with it.
//!
//! Roles, twice: a whole route can be kept for a role at the gateway (`ROUTE_ROLES`, the
//! authorizer denies before this function runs); finer choices are the function's own, from the
//! context's `roles`: every order (`?all=true`) is for the `support` role.

use lambda_http::request::RequestContext;
use lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

/// The authorizer's context (`requestContext.authorizer.lambda`). API Gateway passes its values
/// as strings: flags as `"true"`/`"false"`, roles comma-separated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Caller {
    pub user_id: String,
    pub user_email: String,
    pub session_id: String,
    /// Who signed the token: the auth stack's own issuer, or a trusted external one.
    pub issuer: String,
    #[serde(deserialize_with = "flag")]
    pub email_verified: bool,
    /// The sign-in had a second factor.
    #[serde(deserialize_with = "flag")]
    pub mfa: bool,
    #[serde(deserialize_with = "comma_separated")]
    pub roles: Vec<String>,
}

fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    match String::deserialize(deserializer)?.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(serde::de::Error::custom(format!(
            "expected \"true\" or \"false\", got {other:?}"
        ))),
    }
}

fn comma_separated<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(String::deserialize(deserializer)?
        .split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect())
}

impl Caller {
    /// The caller the authorizer passed on, if the route has the authorizer and its context
    /// is whole.
    pub fn of(request: &Request) -> Option<Caller> {
        let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else {
            return None;
        };
        let fields = &context.authorizer.as_ref()?.fields;
        let object: serde_json::Map<String, Value> =
            fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        serde_json::from_value(Value::Object(object)).ok()
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

fn answer(status: u16, body: Value) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string().into())?)
}

async fn handle(request: Request) -> Result<Response<Body>, Error> {
    let Some(caller) = Caller::of(&request) else {
        // Only reachable when the route was deployed without the authorizer.
        return answer(401, json!({"message": "Unauthorized"}));
    };
    let all = request
        .query_string_parameters_ref()
        .and_then(|q| q.first("all"))
        == Some("true");
    if all && !caller.has_role("support") {
        return answer(
            403,
            json!({"message": "Every order is for the support role"}),
        );
    }
    answer(
        200,
        json!({"orders": [], "scope": if all { "all" } else { "mine" }, "caller": caller}),
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    lambda_http::run(service_fn(handle)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HTTP API event for `GET /orders`, with the authorizer's context when given.
    fn event(query: &str, context: Option<Value>) -> Request {
        let mut event = json!({
            "version": "2.0",
            "routeKey": "GET /orders",
            "rawPath": "/orders",
            "rawQueryString": query,
            "headers": {"host": "orders.example"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "abc", "domainName": "orders.example",
                "domainPrefix": "orders", "requestId": "r", "routeKey": "GET /orders",
                "stage": "$default", "time": "04/Dec/2026:00:00:00 +0000", "timeEpoch": 0,
                "http": {"method": "GET", "path": "/orders", "protocol": "HTTP/1.1",
                         "sourceIp": "203.0.113.9", "userAgent": "test"}
            },
            "isBase64Encoded": false
        });
        if !query.is_empty() {
            let (key, value) = query.split_once('=').unwrap();
            event["queryStringParameters"] = json!({ key: value });
        }
        if let Some(context) = context {
            event["requestContext"]["authorizer"] = json!({"lambda": context});
        }
        lambda_http::request::from_str(&event.to_string()).expect("an HTTP API event")
    }

    fn context(roles: &str, mfa: &str) -> Value {
        json!({
            "user_id": "4f8a6c1e-2b7d-4c3a-9e5f-1a2b3c4d5e6f", "user_email": "ada@example.com",
            "session_id": "9c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f", "issuer": "https://auth.example",
            "email_verified": "true", "mfa": mfa, "roles": roles,
        })
    }

    async fn call(request: Request) -> (u16, Value) {
        let response = handle(request).await.unwrap();
        let body = serde_json::from_slice(response.body()).unwrap();
        (response.status().as_u16(), body)
    }

    #[tokio::test]
    async fn the_context_is_read_typed() {
        let caller = Caller::of(&event("", Some(context("analyst,support", "true")))).unwrap();
        assert_eq!(caller.roles, ["analyst", "support"]);
        assert!(caller.mfa && caller.email_verified);
        let none = Caller::of(&event("", Some(context("", "false")))).unwrap();
        assert!(none.roles.is_empty() && !none.mfa);
        // Not a flag: no caller, rather than a guess.
        assert_eq!(Caller::of(&event("", Some(context("", "yes")))), None);
    }

    #[tokio::test]
    async fn roles_choose_what_the_caller_sees() {
        let (status, body) = call(event("", Some(context("", "false")))).await;
        assert_eq!(status, 200);
        assert_eq!(body["scope"], "mine");
        assert_eq!(body["caller"]["user_email"], "ada@example.com");
        let (status, _) = call(event("all=true", Some(context("analyst", "false")))).await;
        assert_eq!(status, 403);
        let (status, body) = call(event("all=true", Some(context("support", "true")))).await;
        assert_eq!(status, 200);
        assert_eq!(body["scope"], "all");
    }

    #[tokio::test]
    async fn without_the_authorizer_nobody_is_let_in() {
        let (status, _) = call(event("", None)).await;
        assert_eq!(status, 401);
        let mut partial = context("", "false");
        partial.as_object_mut().unwrap().remove("session_id");
        let (status, _) = call(event("", Some(partial))).await;
        assert_eq!(status, 401);
    }
}
