//! The Lambda authorizer, for both kinds of API Gateway:
//! - HTTP API (payload 2.0) REQUEST events, answered with a simple response whose `context` is
//!   always a JSON object;
//! - REST API (v1) TOKEN and REQUEST events, answered with an IAM policy allowing the method ARN,
//!   or the `Unauthorized` error that makes API Gateway answer 401.
//!
//! The token is verified fully before the store is read, and a refusal writes nothing. When the
//! store cannot be reached the answer is an error, not a denial: the caller's token may be fine.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequest, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayV2CustomAuthorizerV2Request,
};
use lambda_http::http::{HeaderMap, header};
use lambda_runtime::Diagnostic;
use serde_json::{Value, json};
use tracing::{error, info};

use crate::http::bearer_token;
use crate::routes::{self, Access, Endpoint};
use crate::service::{AuthError, AuthService, Caller};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthorizerError {
    /// REST API authorizers deny with exactly this error message; API Gateway answers 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// The decision could not be made; API Gateway answers 500.
    #[error("authorizer unavailable")]
    Unavailable,
}

impl From<AuthorizerError> for Diagnostic {
    fn from(e: AuthorizerError) -> Self {
        Diagnostic {
            error_type: format!("{e:?}"),
            error_message: e.to_string(),
        }
    }
}

/// The authorizer's answer for a token and a route.
#[derive(Debug)]
enum Decision {
    /// The context to pass on.
    Allow(Value),
    /// No valid token: HTTP APIs answer 403, REST APIs 401.
    Unauthenticated,
    /// A valid token without a role the route needs: 403 from both.
    Forbidden,
}

/// Answers any of the three authorizer events.
pub async fn handle(service: &AuthService, event: Value) -> Result<Value, AuthorizerError> {
    // Only read when it matters: the route a user with an unverified address asks for, and
    // what roles it needs.
    let config = service.config();
    let requested = requested(&event);
    let route = requested
        .as_ref()
        .and_then(|(method, path)| routes::endpoint(method, path));
    let admin = [routes::ADMIN_ROLE.to_owned()];
    let mut needs: Vec<&[String]> = requested
        .as_ref()
        .map(|(method, path)| {
            config
                .route_roles
                .iter()
                .filter(|rule| rule.covers(method, path))
                .map(|rule| rule.roles.as_slice())
                .collect()
        })
        .unwrap_or_default();
    // The route table's own admin routes: `admin`, whatever ROUTE_ROLES says.
    if route.is_some_and(|r| r.access == Access::Admin) {
        needs.push(&admin);
    }
    if event.get("version").and_then(Value::as_str) == Some("2.0") {
        let allowed = match serde_json::from_value::<ApiGatewayV2CustomAuthorizerV2Request>(event) {
            Ok(request) => {
                // With `Identity.Headers: [Authorization]` the header arrives as the identity
                // source; fall back to the headers for other configurations.
                let identity = request
                    .identity_source
                    .as_ref()
                    .and_then(|s| s.first().cloned());
                let value = identity.or_else(|| authorization(&request.headers));
                decide(service, value.as_deref(), route, &needs).await?
            }
            Err(_) => Decision::Unauthenticated,
        };
        return Ok(simple_response(allowed));
    }

    let (method_arn, value) = match event.get("type").and_then(Value::as_str) {
        Some("TOKEN") => {
            let request: ApiGatewayCustomAuthorizerRequest =
                serde_json::from_value(event).map_err(|_| AuthorizerError::Unauthorized)?;
            (request.method_arn, request.authorization_token)
        }
        Some("REQUEST") => {
            let request: ApiGatewayCustomAuthorizerRequestTypeRequest =
                serde_json::from_value(event).map_err(|_| AuthorizerError::Unauthorized)?;
            (request.method_arn, authorization(&request.headers))
        }
        _ => return Err(AuthorizerError::Unauthorized),
    };
    let method_arn = method_arn.ok_or(AuthorizerError::Unauthorized)?;
    match decide(service, value.as_deref(), route, &needs).await? {
        Decision::Allow(context) => Ok(policy_response(context, &method_arn, "Allow")),
        Decision::Forbidden => Ok(policy_response(json!({}), &method_arn, "Deny")),
        Decision::Unauthenticated => Err(AuthorizerError::Unauthorized),
    }
}

fn authorization(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()
        .map(str::to_owned)
}

/// The method and path an authorizer event asks for: the route key of an HTTP API event (its
/// path template, `/reports/{id}`), the method and path of a REST REQUEST event, or those in
/// the method ARN of a TOKEN event (`arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/PATH`).
fn requested(event: &Value) -> Option<(String, String)> {
    let text = |pointer: &str| event.pointer(pointer).and_then(Value::as_str);
    if let Some((method, path)) = text("/routeKey").and_then(|key| key.split_once(' ')) {
        return Some((method.to_owned(), path.to_owned()));
    }
    if let (Some(method), Some(path)) = (text("/httpMethod"), text("/path")) {
        return Some((method.to_owned(), path.to_owned()));
    }
    let arn = text("/methodArn")?;
    let mut parts = arn.splitn(4, '/').skip(2);
    let method = parts.next()?;
    let path = format!("/{}", parts.next().unwrap_or_default());
    Some((method.to_owned(), path))
}

/// Whether the caller holds one of the roles of each rule that covers the route.
fn has_roles(caller: &Caller, needs: &[&[String]]) -> bool {
    let held: &[String] = match caller {
        Caller::Own(principal) => &principal.roles,
        // An external issuer's users hold no role of ours.
        Caller::External(_) => &[],
    };
    needs
        .iter()
        .all(|roles| roles.iter().any(|role| held.contains(role)))
}

/// Whether a user with an unverified address may call `route` under `REQUIRE_VERIFIED_EMAIL`:
/// only the routes that get the address verified (and `/auth/me`, `/auth/logout`).
fn admits_unverified(route: Option<&Endpoint>) -> bool {
    route.is_some_and(|r| r.access == Access::SignedIn)
}

/// The service's decision for an `Authorization` value: the context to pass on, or `None`.
async fn decide(
    service: &AuthService,
    value: Option<&str>,
    route: Option<&Endpoint>,
    needs: &[&[String]],
) -> Result<Decision, AuthorizerError> {
    let decision = match value.and_then(bearer_token) {
        None => {
            info!(reason = "no bearer token", "access denied");
            Ok(Decision::Unauthenticated)
        }
        Some(token) => match service.authorize_bearer(token).await {
            Ok(Caller::Own(principal))
                if service.config().require_verified_email
                    && !principal.email_verified
                    && !admits_unverified(route) =>
            {
                info!(user_id = %principal.user_id, reason = "address not verified", "access denied");
                Ok(Decision::Unauthenticated)
            }
            Ok(caller) if !has_roles(&caller, needs) => {
                info!(reason = "no role the route needs", "access denied");
                Ok(Decision::Forbidden)
            }
            Ok(caller) => Ok(Decision::Allow(context(&caller, &service.config().issuer))),
            Err(AuthError::Unavailable(detail) | AuthError::Internal(detail)) => {
                error!(%detail, "authorizer could not decide");
                Err(AuthorizerError::Unavailable)
            }
            Err(e) => {
                info!(reason = %e, "access denied");
                Ok(Decision::Unauthenticated)
            }
        },
    };
    crate::metrics::authorizer_decision(
        decision
            .as_ref()
            .ok()
            .map(|d| matches!(d, Decision::Allow(_))),
    );
    decision
}

/// The same keys for every caller, so downstream functions work alike for both kinds.
fn context(caller: &Caller, own_issuer: &str) -> Value {
    match caller {
        Caller::Own(principal) => json!({
            "user_id": principal.user_id.to_string(),
            "user_email": principal.user_email,
            "session_id": principal.chain_id.to_string(),
            "issuer": own_issuer,
            "email_verified": principal.email_verified.to_string(),
            "mfa": principal.mfa.to_string(),
            // HTTP API context values are strings: the roles comma-separated.
            "roles": principal.roles.join(","),
        }),
        Caller::External(identity) => json!({
            "user_id": identity.user_id,
            "user_email": identity.user_email,
            "session_id": identity.session_id,
            "issuer": identity.issuer,
            "email_verified": "false",
            "mfa": "false",
            "roles": "",
        }),
    }
}

/// HTTP API simple response. The context is an object even on denial, never null.
fn simple_response(decision: Decision) -> Value {
    match decision {
        Decision::Allow(context) => json!({"isAuthorized": true, "context": context}),
        Decision::Unauthenticated | Decision::Forbidden => {
            json!({"isAuthorized": false, "context": {}})
        }
    }
}

/// REST API policy allowing (or, for a missing role, denying) exactly the requested method.
fn policy_response(context: Value, method_arn: &str, effect: &str) -> Value {
    json!({
        "principalId": context.get("user_id").cloned().unwrap_or_else(|| json!("denied")),
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn}],
        },
        "context": context,
    })
}
