//! The endpoint handlers, one per route: parse the request, call the service, map the result.
//! The route table (`routes`) says which route runs which; the Lambda functions and the local server
//! dispatch through that table to the very same handlers.

pub mod account;
pub mod admin;
pub mod discovery;
pub mod oidc;
pub mod pages;
mod published;

pub use published::{Published, SignInProvider};

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use uuid::Uuid;

use crate::http::{
    Caching, CeremonyView, EnrolmentView, ExternalMe, HttpError, JsonObject, MfaRequiredView,
    PasskeyView, PasskeyWrapper, PasskeysView, RecoveryCodesView, RequestError, SessionsView,
    TokenResponse, UserView, UserWrapper, caller, json_object, json_response, link_base,
    no_content, principal, source_ip,
};
use crate::passwords::Password;
use crate::service::{
    AddressChange, AuthError, AuthService, Caller, Ceremony, LinkBase, MAX_PASSKEY_NAME_CHARS,
    MfaCode, SignIn, passkey_name,
};

/// What a handler comes to: its response, or the error the HTTP layer answers for it
/// (the route table turns it into a response, in one place).
pub type Outcome = Result<Response<Body>, HttpError>;

/// `{"email", "password"}` as register and login take them, the body allowing also `extra`
/// fields, which the caller reads from the body returned.
fn credentials(
    request: &Request,
    extra: &[&str],
) -> Result<(String, Password, JsonObject), HttpError> {
    let body = json_object(request)?.ok_or(RequestError::InvalidJson)?;
    let allowed: Vec<&str> = ["email", "password"].iter().chain(extra).copied().collect();
    body.only(&allowed)?;
    let email = body.string("email")?.to_owned();
    let password = Password::new(body.string("password")?);
    Ok((email, password, body))
}

/// `POST /auth/register`: `201` and a token response.
pub async fn register(service: &AuthService, request: Request) -> Outcome {
    let (email, password, _) = credentials(&request, &[])?;
    let ip = source_ip(&request);
    let links = link_base(&request, service.config());
    let signed_in = service
        .register_with_links(&email, &password, ip.as_deref(), links.as_ref())
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &TokenResponse::from(&signed_in),
        Caching::NoStore,
    ))
}

/// `POST /auth/login`: `200` and a token response.
pub async fn login(service: &AuthService, request: Request) -> Outcome {
    let (email, password, body) = credentials(&request, &["device_token"])?;
    let device_token = body.optional_string("device_token")?;
    let ip = source_ip(&request);
    let signed_in = service
        .login_from_device(&email, &password, device_token, ip.as_deref())
        .await?;
    Ok(sign_in_answer(signed_in))
}

/// A first factor's answer: the token response, or what the second factor needs.
pub(crate) fn sign_in_answer(signed_in: SignIn) -> Response<Body> {
    match signed_in {
        SignIn::SignedIn(signed_in) => json_response(
            StatusCode::OK,
            &TokenResponse::from(&*signed_in),
            Caching::NoStore,
        ),
        SignIn::MfaRequired(required) => json_response(
            StatusCode::OK,
            &MfaRequiredView::from(&required),
            Caching::NoStore,
        ),
    }
}

/// `POST /auth/refresh`: the presented refresh token is spent, a new pair comes back.
pub async fn refresh(service: &AuthService, request: Request) -> Outcome {
    let body = json_object(&request)?.ok_or(RequestError::InvalidJson)?;
    body.only(&["refresh_token"])?;
    let signed_in = service.refresh(body.string("refresh_token")?).await?;
    Ok(json_response(
        StatusCode::OK,
        &TokenResponse::from(&signed_in),
        Caching::NoStore,
    ))
}

/// `POST /auth/logout`: ends the current session, or every session with `{"all": true}`.
pub async fn logout(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let all = match json_object(&request)? {
        Some(body) => {
            body.only(&["all"])?;
            body.optional_bool("all")?.unwrap_or(false)
        }
        None => false,
    };
    service
        .logout(principal.user_id, principal.chain_id, all)
        .await?;
    Ok(no_content())
}

/// `GET /auth/me`: the signed-in user, read from the store; a user of a trusted external
/// issuer is answered from the token's claims, since this service stores no row for it.
pub async fn me(service: &AuthService, request: Request) -> Outcome {
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

/// `POST /auth/password`: `{"current_password", "new_password"}`; every other session ends.
pub async fn change_password(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let body = json_object(&request)?.ok_or(RequestError::InvalidJson)?;
    body.only(&["current_password", "new_password"])?;
    let current = Password::new(body.string("current_password")?);
    let new = Password::new(body.string("new_password")?);
    service
        .change_password(principal.user_id, principal.chain_id, &current, &new)
        .await?;
    Ok(no_content())
}

/// `GET /auth/sessions`: the user's live sessions.
pub async fn list_sessions(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let sessions = service
        .sessions(principal.user_id, principal.chain_id)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &SessionsView::from(sessions.as_slice()),
        Caching::NoStore,
    ))
}

/// `DELETE /auth/sessions/{id}`: revokes one of the user's own sessions.
pub async fn revoke_session(service: &AuthService, request: Request) -> Outcome {
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

/// `202 Accepted` with a message for people: mail is on its way, or not, without saying which.
fn accepted(message: &'static str) -> Response<Body> {
    json_response(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "message": message }),
        Caching::NoStore,
    )
}

/// Where this request's emailed links point, or an internal error when nothing says so.
fn links(service: &AuthService, request: &Request) -> Result<LinkBase, HttpError> {
    link_base(request, service.config()).ok_or_else(|| {
        AuthError::Internal("no APP_URL and no API domain in the request".into()).into()
    })
}

/// A body with exactly these string fields.
fn fields<const N: usize>(
    request: &Request,
    names: [&'static str; N],
) -> Result<[String; N], HttpError> {
    let body = json_object(request)?.ok_or(RequestError::InvalidJson)?;
    body.only(&names)?;
    let mut values: [String; N] = std::array::from_fn(|_| String::new());
    for (value, name) in values.iter_mut().zip(names) {
        *value = body.string(name)?.to_owned();
    }
    Ok(values)
}

/// `POST /auth/email/verification`: a new verification link to the signed-in user's address.
pub async fn request_verification(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    if let Some(body) = json_object(&request)? {
        body.only(&[])?;
    }
    let links = links(service, &request)?;
    service
        .request_verification(principal.user_id, &links)
        .await?;
    Ok(accepted(
        "If the address is not verified yet, a link to verify it is on its way.",
    ))
}

/// `POST /auth/email/verify`: `{"token"}` from a verification or address-change link.
pub async fn verify_email(service: &AuthService, request: Request) -> Outcome {
    let [token] = fields(&request, ["token"])?;
    let user = service.verify_email(&token).await?;
    let body = UserWrapper {
        user: UserView::from(&user),
    };
    Ok(json_response(StatusCode::OK, &body, Caching::NoStore))
}

/// `POST /auth/email`: `{"email", "password", "code"?}` (`code` when TOTP is on) starts an
/// address change; the same answer whether or not the new address is taken.
pub async fn change_email(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let body = json_object(&request)?.ok_or(RequestError::InvalidJson)?;
    body.only(&["email", "password", "code"])?;
    let email = body.string("email")?;
    let password = Password::new(body.string("password")?);
    let code = body
        .optional_string("code")?
        .map(|code| MfaCode::either(code, "code"))
        .transpose()?;
    let links = links(service, &request)?;
    let ip = source_ip(&request);
    service
        .start_email_change(
            principal.user_id,
            principal.chain_id,
            AddressChange {
                new_email: email,
                password: &password,
                code: code.as_ref(),
            },
            ip.as_deref(),
            &links,
        )
        .await?;
    Ok(accepted(
        "If the address can take this account, a link to confirm it is on its way to it. Nothing changes until it is opened.",
    ))
}

/// `POST /auth/password/forgot`: `{"email"}`; the same answer whether or not it has an account.
pub async fn forgot_password(service: &AuthService, request: Request) -> Outcome {
    let [email] = fields(&request, ["email"])?;
    let links = links(service, &request)?;
    let ip = source_ip(&request);
    service
        .forgot_password(&email, ip.as_deref(), &links)
        .await?;
    Ok(accepted(
        "If an account exists for this address, a link to reset its password is on its way.",
    ))
}

/// `POST /auth/password/reset`: `{"token", "password"}`; every session ends.
pub async fn reset_password(service: &AuthService, request: Request) -> Outcome {
    let [token, password] = fields(&request, ["token", "password"])?;
    service
        .reset_password(&token, &Password::new(password))
        .await?;
    Ok(no_content())
}

/// `POST /auth/mfa/totp/setup`: `{"password"}`; a secret to enrol, nothing on yet.
pub async fn totp_setup(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let [password] = fields(&request, ["password"])?;
    let enrolment = service
        .totp_setup(
            principal.user_id,
            principal.chain_id,
            &Password::new(password),
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &EnrolmentView::from(&enrolment),
        Caching::NoStore,
    ))
}

/// `POST /auth/mfa/totp/confirm`: `{"code"}`; TOTP on, and the recovery codes, once.
pub async fn totp_confirm(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let [code] = fields(&request, ["code"])?;
    let code = MfaCode::totp(&code, "code")?;
    let codes = service.totp_confirm(principal.user_id, &code).await?;
    Ok(json_response(
        StatusCode::OK,
        &RecoveryCodesView {
            recovery_codes: codes,
        },
        Caching::NoStore,
    ))
}

/// `DELETE /auth/mfa/totp`: `{"password", "code"}` (a TOTP or a recovery code); TOTP off.
pub async fn totp_disable(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let [password, code] = fields(&request, ["password", "code"])?;
    let code = MfaCode::either(&code, "code")?;
    service
        .totp_disable(
            principal.user_id,
            principal.chain_id,
            &Password::new(password),
            &code,
        )
        .await?;
    Ok(no_content())
}

/// `POST /auth/mfa/recovery-codes`: `{"password", "code"}`; a new set, the old one stops
/// working.
pub async fn regenerate_recovery_codes(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let [password, code] = fields(&request, ["password", "code"])?;
    let code = MfaCode::either(&code, "code")?;
    let codes = service
        .regenerate_recovery_codes(
            principal.user_id,
            principal.chain_id,
            &Password::new(password),
            &code,
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &RecoveryCodesView {
            recovery_codes: codes,
        },
        Caching::NoStore,
    ))
}

/// `POST /auth/mfa/verify`: `{"mfa_token"}` with one of `code`, `recovery_code` or `passkey`
/// (the answer to `/auth/mfa/passkey/options`' ceremony).
pub async fn verify_mfa(service: &AuthService, request: Request) -> Outcome {
    let body = json_object(&request)?.ok_or(RequestError::InvalidJson)?;
    body.only(&["mfa_token", "code", "recovery_code", "passkey"])?;
    let mfa_token = body.string("mfa_token")?;
    let given = ["code", "recovery_code", "passkey"].map(|field| body.has(field));
    let signed_in = match given {
        [true, false, false] => {
            let code = MfaCode::totp(body.string("code")?, "code")?;
            service.verify_mfa(mfa_token, &code).await?
        }
        [false, true, false] => {
            let code = MfaCode::recovery(body.string("recovery_code")?, "recovery_code")?;
            service.verify_mfa(mfa_token, &code).await?
        }
        [false, false, true] => {
            service
                .verify_mfa_passkey(mfa_token, body.object("passkey")?)
                .await?
        }
        _ => return Err(RequestError::one_of(&["code", "recovery_code", "passkey"]).into()),
    };
    Ok(json_response(
        StatusCode::OK,
        &TokenResponse::from(&signed_in),
        Caching::NoStore,
    ))
}

/// The password a passkey change may be confirmed with, from a body that may be absent.
fn optional_password(request: &Request) -> Result<Option<Password>, HttpError> {
    match json_object(request)? {
        Some(body) => {
            body.only(&["password"])?;
            Ok(body.optional_string("password")?.map(Password::new))
        }
        None => Ok(None),
    }
}

/// The `{id}` of a passkey route.
fn passkey_id(request: &Request) -> String {
    request
        .path_parameters_ref()
        .and_then(|p| p.first("id"))
        .unwrap_or_default()
        .to_owned()
}

fn bad_passkey_name() -> RequestError {
    RequestError::invalid_value(
        "name",
        format!(
            "Field \"name\" must be 1 to {MAX_PASSKEY_NAME_CHARS} characters, without control characters."
        ),
    )
}

fn ceremony(ceremony: Ceremony) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &CeremonyView::from(ceremony),
        Caching::NoStore,
    )
}

/// `POST /auth/passkeys/register/options`: `{"password"?}` (none within ten minutes of a
/// sign-in); creation options.
pub async fn passkey_registration_options(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let password = optional_password(&request)?;
    let started = service
        .passkey_registration_options(principal.user_id, principal.chain_id, password.as_ref())
        .await?;
    Ok(ceremony(started))
}

/// `POST /auth/passkeys/register`: `{"ceremony_id", "credential", "name"?}`; `201` and the
/// passkey.
pub async fn register_passkey(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let body = json_object(&request)?.ok_or(RequestError::InvalidJson)?;
    body.only(&["ceremony_id", "credential", "name"])?;
    let name = body
        .optional_string("name")?
        .map(|name| passkey_name(name).ok_or_else(bad_passkey_name))
        .transpose()?;
    let passkey = service
        .register_passkey(
            principal.user_id,
            body.string("ceremony_id")?,
            body.object("credential")?,
            name.as_deref(),
        )
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &PasskeyWrapper {
            passkey: PasskeyView::from(&passkey),
        },
        Caching::NoStore,
    ))
}

/// `GET /auth/passkeys`.
pub async fn list_passkeys(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let passkeys = service.passkeys(principal.user_id).await?;
    Ok(json_response(
        StatusCode::OK,
        &PasskeysView {
            passkeys: passkeys.iter().map(PasskeyView::from).collect(),
        },
        Caching::NoStore,
    ))
}

/// `PATCH /auth/passkeys/{id}`: `{"name"}`.
pub async fn rename_passkey(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let [name] = fields(&request, ["name"])?;
    let name = passkey_name(&name).ok_or_else(bad_passkey_name)?;
    let passkey = service
        .rename_passkey(principal.user_id, &passkey_id(&request), &name)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &PasskeyWrapper {
            passkey: PasskeyView::from(&passkey),
        },
        Caching::NoStore,
    ))
}

/// `DELETE /auth/passkeys/{id}`: `{"password"?}` (none within ten minutes of a sign-in).
pub async fn remove_passkey(service: &AuthService, request: Request) -> Outcome {
    let principal = principal(&request, &service.config().issuer)?;
    let password = optional_password(&request)?;
    service
        .remove_passkey(
            principal.user_id,
            principal.chain_id,
            &passkey_id(&request),
            password.as_ref(),
        )
        .await?;
    Ok(no_content())
}

/// `POST /auth/passkeys/login/options`: `{"email"?}`; request options.
pub async fn passkey_sign_in_options(service: &AuthService, request: Request) -> Outcome {
    let email = match json_object(&request)? {
        Some(body) => {
            body.only(&["email"])?;
            body.optional_string("email")?.map(str::to_owned)
        }
        None => None,
    };
    let ip = source_ip(&request);
    let started = service
        .passkey_sign_in_options(email.as_deref(), ip.as_deref())
        .await?;
    Ok(ceremony(started))
}

/// `POST /auth/passkeys/login`: `{"ceremony_id", "credential"}`; a token response, or
/// `mfa_required`.
pub async fn passkey_sign_in(service: &AuthService, request: Request) -> Outcome {
    let body = json_object(&request)?.ok_or(RequestError::InvalidJson)?;
    body.only(&["ceremony_id", "credential"])?;
    let signed_in = service
        .passkey_sign_in(body.string("ceremony_id")?, body.object("credential")?)
        .await?;
    Ok(sign_in_answer(signed_in))
}

/// `POST /auth/mfa/passkey/options`: `{"mfa_token"}`; request options for the account's
/// passkeys.
pub async fn second_factor_passkey_options(service: &AuthService, request: Request) -> Outcome {
    let [mfa_token] = fields(&request, ["mfa_token"])?;
    let started = service.second_factor_passkey_options(&mfa_token).await?;
    Ok(ceremony(started))
}

/// The query's parameters, the first of each name (a repeated one is refused).
pub(crate) fn query_parameters(
    request: &Request,
    names: &[&'static str],
) -> Result<Vec<Option<String>>, HttpError> {
    parameters(request.uri().query().unwrap_or_default().as_bytes(), names)
}

/// A page's `limit` parameter, a whole number (the service checks its range).
pub(crate) fn page_limit(limit: Option<String>) -> Result<Option<usize>, HttpError> {
    limit
        .map(|l| {
            l.parse::<usize>().map_err(|_| {
                RequestError::invalid_value("limit", "limit must be a whole number.".into()).into()
            })
        })
        .transpose()
}

pub(crate) fn parameters(
    raw: &[u8],
    names: &[&'static str],
) -> Result<Vec<Option<String>>, HttpError> {
    let mut values: Vec<Option<String>> = vec![None; names.len()];
    for (name, value) in url::form_urlencoded::parse(raw) {
        if let Some(i) = names.iter().position(|n| *n == name) {
            if values[i].is_some() {
                return Err(RequestError::invalid_value(
                    names[i],
                    format!("Parameter {:?} is given twice.", names[i]),
                )
                .into());
            }
            values[i] = Some(value.into_owned());
        }
    }
    Ok(values)
}
