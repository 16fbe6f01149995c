//! The endpoint handlers, one per route: parse the request, call the service, map the result.
//! [`crate::routes`] says which route runs which; the Lambda functions and the local server
//! dispatch through that table to the very same handlers.

pub mod authorizer;
pub mod discovery;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use uuid::Uuid;

use crate::http::{
    Caching, ExternalMe, HttpError, RequestError, SessionsView, TokenResponse, UserView,
    UserWrapper, caller, json_object, json_response, no_content, principal, source_ip,
};
use crate::passwords::Password;
use crate::service::{AuthError, AuthService, Caller};

type Outcome = Result<Response<Body>, HttpError>;

/// Turns a handler's outcome into the response, errors included.
fn finish(outcome: Outcome) -> Response<Body> {
    outcome.unwrap_or_else(HttpError::into_response)
}

/// `{"email", "password"}`, as register and login take them.
fn credentials(request: &Request) -> Result<(String, Password), HttpError> {
    let body = json_object(request)?.ok_or(RequestError::InvalidJson)?;
    body.only(&["email", "password"])?;
    let email = body.string("email")?.to_owned();
    let password = Password::new(body.string("password")?);
    Ok((email, password))
}

/// `POST /auth/register`: `201` and a token response.
pub async fn register(service: &AuthService, request: Request) -> Response<Body> {
    finish(
        async {
            let (email, password) = credentials(&request)?;
            let ip = source_ip(&request);
            let signed_in = service.register(&email, &password, ip.as_deref()).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &TokenResponse::from(&signed_in),
                Caching::NoStore,
            ))
        }
        .await,
    )
}

/// `POST /auth/login`: `200` and a token response.
pub async fn login(service: &AuthService, request: Request) -> Response<Body> {
    finish(
        async {
            let (email, password) = credentials(&request)?;
            let ip = source_ip(&request);
            let signed_in = service.login(&email, &password, ip.as_deref()).await?;
            Ok(json_response(
                StatusCode::OK,
                &TokenResponse::from(&signed_in),
                Caching::NoStore,
            ))
        }
        .await,
    )
}

/// `POST /auth/refresh`: the presented refresh token is spent, a new pair comes back.
pub async fn refresh(service: &AuthService, request: Request) -> Response<Body> {
    finish(
        async {
            let body = json_object(&request)?.ok_or(RequestError::InvalidJson)?;
            body.only(&["refresh_token"])?;
            let signed_in = service.refresh(body.string("refresh_token")?).await?;
            Ok(json_response(
                StatusCode::OK,
                &TokenResponse::from(&signed_in),
                Caching::NoStore,
            ))
        }
        .await,
    )
}

/// `POST /auth/logout`: ends the current session, or every session with `{"all": true}`.
pub async fn logout(service: &AuthService, request: Request) -> Response<Body> {
    finish(
        async {
            let principal = principal(&request, &service.config().issuer)?;
            let all = match json_object(&request)? {
                Some(body) => {
                    body.only(&["all"])?;
                    body.optional_bool("all")?.unwrap_or(false)
                }
                None => false,
            };
            service
                .logout(principal.user_id, principal.session_id, all)
                .await?;
            Ok(no_content())
        }
        .await,
    )
}

/// `GET /auth/me`: the signed-in user, read from the store; a user of a trusted external
/// issuer is answered from the token's claims, since this service stores no row for it.
pub async fn me(service: &AuthService, request: Request) -> Response<Body> {
    finish(
        async {
            match caller(&request, &service.config().issuer)? {
                Caller::Own(principal) => {
                    let user = service.me(principal.user_id).await?;
                    let body = UserWrapper {
                        user: UserView::from(&user),
                    };
                    Ok(json_response(StatusCode::OK, &body, Caching::NoStore))
                }
                Caller::External(identity) => {
                    let body = ExternalMe::from(&identity);
                    Ok(json_response(StatusCode::OK, &body, Caching::NoStore))
                }
            }
        }
        .await,
    )
}

/// `POST /auth/password`: `{"current_password", "new_password"}`; every other session ends.
pub async fn change_password(service: &AuthService, request: Request) -> Response<Body> {
    finish(
        async {
            let principal = principal(&request, &service.config().issuer)?;
            let body = json_object(&request)?.ok_or(RequestError::InvalidJson)?;
            body.only(&["current_password", "new_password"])?;
            let current = Password::new(body.string("current_password")?);
            let new = Password::new(body.string("new_password")?);
            let ip = source_ip(&request);
            service
                .change_password(
                    principal.user_id,
                    principal.session_id,
                    &current,
                    &new,
                    ip.as_deref(),
                )
                .await?;
            Ok(no_content())
        }
        .await,
    )
}

/// `GET /auth/sessions`: the user's live sessions.
pub async fn list_sessions(service: &AuthService, request: Request) -> Response<Body> {
    finish(
        async {
            let principal = principal(&request, &service.config().issuer)?;
            let sessions = service
                .sessions(principal.user_id, principal.session_id)
                .await?;
            Ok(json_response(
                StatusCode::OK,
                &SessionsView::from(sessions.as_slice()),
                Caching::NoStore,
            ))
        }
        .await,
    )
}

/// `DELETE /auth/sessions/{id}`: revokes one of the user's own sessions.
pub async fn revoke_session(service: &AuthService, request: Request) -> Response<Body> {
    finish(
        async {
            let principal = principal(&request, &service.config().issuer)?;
            let id = request
                .path_parameters_ref()
                .and_then(|p| p.first("id"))
                .unwrap_or_default();
            // An id that is not even a UUID cannot name a session: not found, like any other.
            let id = Uuid::parse_str(id).map_err(|_| AuthError::NotFound)?;
            service.revoke_session(principal.user_id, id).await?;
            Ok(no_content())
        }
        .await,
    )
}
