//! A team's own protected function, behind this stack's API and its authorizer: API Gateway
//! runs the authorizer first, and passes what it decided in the request context. The function
//! trusts that context (never a token or a header from the client) and here answers with it.
//!
//! Roles, twice: a whole route can be kept for a role at the gateway (`ROUTE_ROLES`, the
//! authorizer denies before this function runs); finer choices are the function's own, from the
//! context's `roles` (comma-separated): every order (`?all=true`) is for the `support` role.

use lambda_http::request::RequestContext;
use lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};
use serde_json::{Map, Value, json};

/// The keys the authorizer passes for every caller, its own users and external issuers' alike.
pub const CALLER_KEYS: [&str; 4] = ["user_id", "user_email", "session_id", "issuer"];

/// The authorizer's context (`requestContext.authorizer.lambda`): every key it passed.
fn caller(request: &Request) -> Option<Map<String, Value>> {
    let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else {
        return None;
    };
    let lambda = &context.authorizer.as_ref()?.fields;
    let caller: Map<String, Value> = lambda.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    CALLER_KEYS
        .iter()
        .all(|key| caller.get(*key).is_some_and(Value::is_string))
        .then_some(caller)
}

async fn handle(request: Request) -> Result<Response<Body>, Error> {
    let Some(caller) = caller(&request) else {
        // Only reachable when the route was deployed without the authorizer.
        return Ok(Response::builder()
            .status(401)
            .header("content-type", "application/json")
            .body(json!({"message": "Unauthorized"}).to_string().into())?);
    };
    let roles: Vec<&str> = caller
        .get("roles")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split(',')
        .filter(|r| !r.is_empty())
        .collect();
    let all = request
        .query_string_parameters_ref()
        .and_then(|q| q.first("all"))
        == Some("true");
    if all && !roles.contains(&"support") {
        return Ok(Response::builder()
            .status(403)
            .header("content-type", "application/json")
            .body(
                json!({"message": "Every order is for the support role"})
                    .to_string()
                    .into(),
            )?);
    }
    let body = json!({
        "orders": [],
        "scope": if all { "all" } else { "mine" },
        "caller": caller,
    });
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body.to_string().into())?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    lambda_http::run(service_fn(handle)).await
}
