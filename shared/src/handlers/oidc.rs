//! The OpenID Connect routes: start, callback (a `GET`, or a form `POST` for providers that
//! post their answer), exchange, link, and the linked identities.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

use super::{Outcome, parameters, query_parameters, sign_in_answer};
use crate::clock::rfc3339;
use crate::http::{
    Caching, HttpError, RequestError, api_base, json_object, json_response, no_content, principal,
    source_ip,
};
use crate::passwords::Password;
use crate::service::{
    AuthError, AuthService, Callback, CallbackRequest, Exchanged, IdentityInfo, LOGIN_COOKIE,
    LOGIN_STATE_TTL_SECS, StartRequest,
};

fn provider(request: &Request) -> String {
    request
        .path_parameters_ref()
        .and_then(|p| p.first("provider"))
        .unwrap_or_default()
        .to_owned()
}

/// This API's own URL, where the provider sends the browser back.
fn base(request: &Request) -> Result<String, HttpError> {
    api_base(request)
        .ok_or_else(|| AuthError::Internal("no API domain in the request context".into()).into())
}

fn redirect(status: StatusCode, location: &str) -> Result<Response<Body>, HttpError> {
    let location = HeaderValue::from_str(location)
        .map_err(|_| AuthError::Internal("a redirect that is no header value".into()))?;
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}

fn login_cookie(value: &str, max_age: i64, cross_site_post: bool) -> String {
    // A provider that posts its answer back makes a cross-site POST, which carries only
    // `SameSite=None` cookies.
    let same_site = if cross_site_post { "None" } else { "Lax" };
    format!(
        "{LOGIN_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age={max_age}"
    )
}

/// The login cookie of the request, if any.
fn cookie(request: &Request) -> Option<String> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == LOGIN_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// `GET /auth/oidc/{provider}/start?redirect_uri&code_challenge[&code_challenge_method]
/// [&state][&link]`: `302` to the provider, with the cookie that binds the login to this
/// browser. A `redirect_uri` off the provider's list is `400`, never a redirect.
pub async fn start(service: &AuthService, request: Request) -> Outcome {
    let names = [
        "redirect_uri",
        "code_challenge",
        "code_challenge_method",
        "state",
        "link",
    ];
    let [
        redirect_uri,
        code_challenge,
        code_challenge_method,
        state,
        link,
    ]: [Option<String>; 5] = query_parameters(&request, &names)?
        .try_into()
        .map_err(|_| AuthError::Internal("parameter count".into()))?;
    let started = service
        .oidc_start(
            &provider(&request),
            StartRequest {
                redirect_uri,
                code_challenge,
                code_challenge_method,
                state,
                link,
            },
            &base(&request)?,
            source_ip(&request).as_deref(),
        )
        .await?;
    let mut response = redirect(StatusCode::FOUND, &started.location)?;
    let cookie = login_cookie(
        &started.cookie,
        LOGIN_STATE_TTL_SECS,
        started.cross_site_post,
    );
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `GET /auth/oidc/{provider}/callback`: where the provider sends the browser back.
pub async fn callback(service: &AuthService, request: Request) -> Outcome {
    let raw = request
        .uri()
        .query()
        .unwrap_or_default()
        .as_bytes()
        .to_vec();
    finish_callback(service, &request, &raw, StatusCode::FOUND).await
}

/// `POST /auth/oidc/{provider}/callback`: the same, for a provider that posts its answer as a
/// form (`response_mode=form_post`, Apple).
pub async fn callback_form(service: &AuthService, request: Request) -> Outcome {
    let body = crate::http::body_bytes(request.body()).to_vec();
    finish_callback(service, &request, &body, StatusCode::SEE_OTHER).await
}

async fn finish_callback(
    service: &AuthService,
    request: &Request,
    raw: &[u8],
    status: StatusCode,
) -> Outcome {
    let Ok(Ok([state, code, iss, error])) =
        parameters(raw, &["state", "code", "iss", "error"]).map(<[Option<String>; 4]>::try_from)
    else {
        return Ok(untrusted_page());
    };
    let answer = CallbackRequest {
        state,
        code,
        iss,
        error,
    };
    match service
        .oidc_callback(&provider(request), answer, cookie(request).as_deref())
        .await
    {
        Callback::Redirect(location) => {
            let mut response = redirect(status, &location)?;
            // The login state is spent: so is its cookie.
            if let Ok(cookie) = HeaderValue::from_str(&login_cookie("", 0, false)) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            Ok(response)
        }
        Callback::Untrusted => Ok(untrusted_page()),
    }
}

/// The answer when no login state vouches for a redirect: a page, never a redirect.
fn untrusted_page() -> Response<Body> {
    const PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
        <title>Sign-in failed</title></head><body><h1>Sign-in failed</h1>\
        <p>This sign-in is unknown, was finished already, or has expired. Go back to the app \
        and start again.</p></body></html>";
    let mut response = Response::new(Body::Text(PAGE.to_owned()));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A linked identity as the API shows it: times in RFC 3339, as every time of the API.
#[derive(Serialize)]
struct IdentityView<'a> {
    id: &'a str,
    provider: &'a str,
    email: Option<&'a str>,
    linked_at: String,
    last_used_at: Option<String>,
}

impl<'a> From<&'a IdentityInfo> for IdentityView<'a> {
    fn from(identity: &'a IdentityInfo) -> Self {
        Self {
            id: &identity.id,
            provider: &identity.provider,
            email: identity.email.as_deref(),
            linked_at: rfc3339(identity.linked_at),
            last_used_at: identity.last_used_at.map(rfc3339),
        }
    }
}

#[derive(Serialize)]
struct IdentityWrapper<'a> {
    identity: IdentityView<'a>,
}

/// `POST /auth/oidc/exchange`: `{"code", "code_verifier"}`; a token response or
/// `mfa_required`, or for a link `{"identity"}`.
pub async fn exchange(service: &AuthService, request: Request) -> Outcome {
    let body = json_object(&request)?.ok_or(RequestError::InvalidJson)?;
    body.only(&["code", "code_verifier"])?;
    let exchanged = service
        .oidc_exchange(body.string("code")?, body.string("code_verifier")?)
        .await?;
    Ok(match exchanged {
        Exchanged::SignIn(signed_in) => sign_in_answer(signed_in),
        Exchanged::Linked(identity) => json_response(
            StatusCode::OK,
            &IdentityWrapper {
                identity: IdentityView::from(&identity),
            },
            Caching::NoStore,
        ),
    })
}

#[derive(Serialize)]
struct StartUrl {
    url: String,
}

/// `POST /auth/oidc/{provider}/link`: `{"redirect_uri", "code_challenge", "password"?}`; the
/// start URL (`{"url"}`) that links the provider's account to this one.
pub async fn link(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let body = json_object(&request)?.ok_or(RequestError::InvalidJson)?;
    body.only(&["redirect_uri", "code_challenge", "password"])?;
    let password = body.optional_string("password")?.map(Password::new);
    let url = service
        .oidc_link(
            principal.user_id,
            principal.chain_id,
            &provider(&request),
            password.as_ref(),
            body.string("redirect_uri")?,
            body.string("code_challenge")?,
            &base(&request)?,
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &StartUrl { url },
        Caching::NoStore,
    ))
}

#[derive(Serialize)]
struct IdentitiesView<'a> {
    identities: Vec<IdentityView<'a>>,
}

/// `GET /auth/identities`.
pub async fn list(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let identities = service.identities(principal.user_id).await?;
    Ok(json_response(
        StatusCode::OK,
        &IdentitiesView {
            identities: identities.iter().map(IdentityView::from).collect(),
        },
        Caching::NoStore,
    ))
}

/// `DELETE /auth/identities/{id}`: `204`; `409 last_credential` for the last way in.
pub async fn unlink(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let id = request
        .path_parameters_ref()
        .and_then(|p| p.first("id"))
        .unwrap_or_default()
        .to_owned();
    service.unlink_identity(principal.user_id, &id).await?;
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_parameter_is_refused() {
        assert!(parameters(b"state=a&state=b", &["state"]).is_err());
        let values = parameters(b"code=x&other=1&state=s", &["state", "code"]).unwrap();
        assert_eq!(values, [Some("s".to_owned()), Some("x".to_owned())]);
    }

    #[test]
    fn the_login_cookie_is_host_only_secure_and_http_only() {
        let cookie = login_cookie("v", 600, false);
        assert_eq!(
            cookie,
            "__Host-oidc=v; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600"
        );
        assert!(login_cookie("v", 600, true).contains("SameSite=None"));
    }
}
