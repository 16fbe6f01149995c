//! The Lambda authorizer, for both kinds of API Gateway:
//! - HTTP API (payload 2.0) REQUEST events, answered with a simple response whose `context` is
//!   always a JSON object;
//! - REST API (v1) TOKEN and REQUEST events, answered with an IAM policy for the caller (every
//!   route of the stage, less those their roles or address do not open), or the `Unauthorized`
//!   error that makes API Gateway answer 401. REST APIs cache a policy (300 s by default) by
//!   the token and reuse it for the caller's next routes, so it never depends on the route
//!   asked for.
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

use crate::config::roles::RouteRoles;
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
    /// Allowed on this route.
    Allow(Grant),
    /// No valid token: HTTP APIs answer 403, REST APIs 401.
    Unauthenticated,
    /// A valid token without a role the route needs: 403 from both.
    Forbidden(Grant),
}

/// What a caller with a valid token may call, whichever route they asked for.
#[derive(Debug)]
struct Grant {
    /// The context to pass on.
    context: Value,
    roles: Vec<String>,
    /// `REQUIRE_VERIFIED_EMAIL` and an unverified address: only the routes that admit one.
    unverified_only: bool,
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
    let stage = stage_arn(&method_arn).ok_or(AuthorizerError::Unauthorized)?;
    match decide(service, value.as_deref(), route, &needs).await? {
        Decision::Allow(grant) | Decision::Forbidden(grant) => {
            Ok(policy_response(&grant, stage, &config.route_roles))
        }
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

fn held_roles(caller: &Caller) -> &[String] {
    match caller {
        Caller::Own(principal) => &principal.roles,
        // An external issuer's users hold no role of ours.
        Caller::External(_) => &[],
    }
}

/// Whether the caller holds one of the roles of each rule that covers the route.
fn has_roles(caller: &Caller, needs: &[&[String]]) -> bool {
    let held = held_roles(caller);
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
            Ok(caller) => {
                let grant = Grant {
                    context: context(&caller, &service.config().issuer),
                    roles: held_roles(&caller).to_vec(),
                    unverified_only: matches!(&caller, Caller::Own(p) if !p.email_verified)
                        && service.config().require_verified_email,
                };
                if has_roles(&caller, needs) {
                    Ok(Decision::Allow(grant))
                } else {
                    info!(reason = "no role the route needs", "access denied");
                    Ok(Decision::Forbidden(grant))
                }
            }
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
        Decision::Allow(grant) => json!({"isAuthorized": true, "context": grant.context}),
        Decision::Unauthenticated | Decision::Forbidden(_) => {
            json!({"isAuthorized": false, "context": {}})
        }
    }
}

/// The stage's part of a method ARN (`arn:aws:execute-api:REGION:ACCOUNT:API/STAGE`), before
/// `/METHOD/PATH`.
fn stage_arn(method_arn: &str) -> Option<&str> {
    let (api, _) = method_arn.split_once('/')?;
    let stage_len = method_arn[api.len() + 1..].find('/')?;
    Some(&method_arn[..api.len() + 1 + stage_len])
}

/// A route template's resource in a policy, `METHOD/path` with `*` for each `{parameter}` (and
/// for the method of an `ANY` route).
fn route_resource(stage: &str, method: &str, path: &str) -> String {
    let method = if method == "ANY" { "*" } else { method };
    let path: Vec<&str> = path
        .split('/')
        .map(|s| if s.starts_with('{') { "*" } else { s })
        .collect();
    format!("{stage}/{method}{}", path.join("/"))
}

/// The REST API policy for a caller: allowed on every route of the stage (or, with an
/// unverified address under `REQUIRE_VERIFIED_EMAIL`, on the routes that admit one), denied on
/// each route whose roles they lack. The same whichever route was asked for, so a cached
/// policy answers the next route as a fresh decision would. IAM's `*` spans segments, so on a
/// REST API a `{name}` of a `ROUTE_ROLES` pattern covers the paths below it too.
fn policy_response(grant: &Grant, stage: &str, rules: &[RouteRoles]) -> Value {
    let allowed: Vec<String> = if grant.unverified_only {
        routes::ENDPOINTS
            .iter()
            .filter(|e| e.access == Access::SignedIn)
            .map(|e| route_resource(stage, e.method, e.path))
            .collect()
    } else {
        vec![format!("{stage}/*")]
    };
    let lacks = |roles: &[String]| !roles.iter().any(|r| grant.roles.contains(r));
    let mut denied: Vec<String> = rules
        .iter()
        .filter(|rule| lacks(&rule.roles))
        .map(|rule| format!("{stage}/{}", rule.resource()))
        .collect();
    if lacks(&[routes::ADMIN_ROLE.to_owned()]) {
        denied.extend(
            routes::ENDPOINTS
                .iter()
                .filter(|e| e.access == Access::Admin)
                .map(|e| route_resource(stage, e.method, e.path)),
        );
    }
    let mut statements =
        vec![json!({"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": allowed})];
    if !denied.is_empty() {
        statements
            .push(json!({"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": denied}));
    }
    json!({
        "principalId": grant.context.get("user_id").cloned().unwrap_or_else(|| json!("denied")),
        "policyDocument": {"Version": "2012-10-17", "Statement": statements},
        "context": grant.context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_the_stage_then_the_route() {
        let arn = "arn:aws:execute-api:eu-west-1:123456789012:abc/prod/GET/admin/users/42";
        let stage = stage_arn(arn).unwrap();
        assert_eq!(stage, "arn:aws:execute-api:eu-west-1:123456789012:abc/prod");
        assert_eq!(
            route_resource(stage, "GET", "/admin/users/{id}"),
            format!("{stage}/GET/admin/users/*")
        );
        assert_eq!(route_resource(stage, "ANY", "/x"), format!("{stage}/*/x"));
        assert_eq!(stage_arn("arn:aws:execute-api:eu-west-1:1:abc"), None);
    }
}
