//! The API's routes, in one table: per route its method, path, the Lambda function that serves
//! it, whether the authorizer guards it, and its handler.
//!
//! Everything else follows from [`ROUTES`]: each Lambda function serves the routes the table
//! gives it (dispatching by API Gateway's route key), the local server routes every request
//! through it, and the catch-all answers `404`/`405` with an `Allow` header derived from it.
//! Tests hold `template.yaml`, `openapi.yaml` and `events/` to it, naming the file to edit when
//! a route is missing there.
//!
//! A function's routes are picked from the table at compile time ([`Function::routes`]), so a
//! binary links only its own handlers (the `me` binary carries no Argon2id or zxcvbn).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

use crate::handlers::{self, Published, discovery, pages};
use crate::http::paths::{match_path, request_path};
use crate::http::{HttpError, RequestError};
use crate::service::{AuthError, AuthService, RequestOrigin};

/// The Lambda functions, one binary each (`functions/<name>`, `Binary: <name>` in the template).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Function {
    Register,
    Login,
    Refresh,
    Logout,
    Password,
    Me,
    Sessions,
    /// The signed-in user's address: a new verification link, an address change.
    Email,
    /// The public routes that emailed links lead to (and "forgot password", which sends one).
    EmailLinks,
    /// Two-factor sign-in: enrolment, turning it off, recovery codes, and the second step of a
    /// sign-in.
    Mfa,
    /// Passkeys: adding, listing, renaming and removing them, and signing in with one.
    Passkeys,
    /// Deleting one's own account.
    Account,
    /// The admin API: users, their roles and activity, their sessions (the `admin` role).
    Admin,
    /// Signing in with an OpenID provider, linking one, and the linked identities; the one
    /// function that reads the providers' client secrets.
    Oidc,
    /// What needs no store: the published keys and discovery document, the pages emailed
    /// links open, and the `404`/`405` for every request no route takes.
    Web,
    /// The API's Lambda authorizer: it serves no route, it guards the protected ones.
    Authorizer,
}

impl Function {
    pub const ALL: &[Function] = &[
        Function::Register,
        Function::Login,
        Function::Refresh,
        Function::Logout,
        Function::Password,
        Function::Me,
        Function::Sessions,
        Function::Email,
        Function::EmailLinks,
        Function::Mfa,
        Function::Passkeys,
        Function::Account,
        Function::Admin,
        Function::Oidc,
        Function::Web,
        Function::Authorizer,
    ];

    /// The binary's name, which is also its directory under `functions/`.
    pub const fn binary(self) -> &'static str {
        match self {
            Function::Register => "register",
            Function::Login => "login",
            Function::Refresh => "refresh",
            Function::Logout => "logout",
            Function::Password => "password",
            Function::Me => "me",
            Function::Sessions => "sessions",
            Function::Email => "email",
            Function::EmailLinks => "email-links",
            Function::Mfa => "mfa",
            Function::Passkeys => "passkeys",
            Function::Account => "account",
            Function::Admin => "admin",
            Function::Oidc => "oidc",
            Function::Web => "web",
            Function::Authorizer => "authorizer",
        }
    }

    pub const fn keys(self) -> Keys {
        match self {
            Function::Register
            | Function::Login
            | Function::Refresh
            | Function::Mfa
            | Function::Passkeys
            | Function::Oidc => Keys::Signing,
            Function::Authorizer | Function::Web => Keys::Published,
            Function::Logout
            | Function::Password
            | Function::Me
            | Function::Sessions
            | Function::Email
            | Function::EmailLinks
            | Function::Account
            | Function::Admin => Keys::None,
        }
    }

    pub fn from_binary(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|f| f.binary() == name)
    }

    /// The routes this function serves, picked from [`ROUTES`] at compile time when called in a
    /// constant (`const { Function::Login.routes() }`), so that only these handlers are linked.
    pub const fn routes(self) -> FunctionRoutes {
        let mut routes = [None; MAX_ROUTES_PER_FUNCTION];
        let mut found = 0;
        let mut i = 0;
        while i < ROUTES.len() {
            if ROUTES[i].function as u8 == self as u8 {
                assert!(
                    found < MAX_ROUTES_PER_FUNCTION,
                    "a function serves more routes than MAX_ROUTES_PER_FUNCTION"
                );
                routes[found] = Some(ROUTES[i]);
                found += 1;
            }
            i += 1;
        }
        FunctionRoutes { routes }
    }
}

/// Which keys a function holds; `bootstrap` builds them at its cold start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// The private signing key and every published key: the function issues tokens.
    Signing,
    /// The published keys alone: the function verifies tokens or publishes the keys.
    Published,
    /// None: the function trusts the authorizer's context, or an emailed link's hash.
    None,
}

/// Whether the API's authorizer runs before the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    /// `Authorization: Bearer <access token>`, checked by the authorizer with its session; with
    /// `REQUIRE_VERIFIED_EMAIL`, of a user whose address is verified.
    Protected,
    /// As `Protected`, but open to a user whose address is not verified yet even with
    /// `REQUIRE_VERIFIED_EMAIL`: the routes such a user needs to get verified.
    SignedIn,
    /// As `Protected`, for callers whose token holds the `admin` role alone: the authorizer
    /// denies everyone else (`403`) before the function runs.
    Admin,
}

/// What a request to a route may cost the service, which sets its limits: its API Gateway
/// throttle, a ceiling that protects the functions' concurrency and the SES quota, and with
/// edge protection the tight per-client rule of the web ACL (`template.yaml`; tests hold both
/// to this table, and docs/operations.md gives the arithmetic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// A token check, a store read or write.
    Plain,
    /// A sign-in step open to anyone: it tries a password, a code, a passkey, an emailed token
    /// or a provider's answer, what credential stuffing and guessing aim at.
    SignIn,
    /// It may send a mail to an address the caller names: SES quota, and someone's inbox.
    Mail,
}

/// The role [`Access::Admin`] routes need.
pub use crate::model::ADMIN_ROLE;

type Answer<'a> = Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;

/// A handler that runs on the auth service (configuration, store, keys).
pub type ServiceHandler = for<'a> fn(&'a AuthService, Request) -> Answer<'a>;
/// A handler that runs on the published keys alone: its function builds no store client.
pub type PublishedHandler = for<'a> fn(&'a Published, Request) -> Answer<'a>;

#[derive(Clone, Copy)]
pub enum Handler {
    Service(ServiceHandler),
    Published(PublishedHandler),
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Handler::Service(_) => "Handler::Service",
            Handler::Published(_) => "Handler::Published",
        })
    }
}

/// What handlers run on. A Lambda function holds one of the two; the local server both.
pub trait HandlerState: Sync {
    fn service(&self) -> Option<&AuthService> {
        None
    }
    fn published(&self) -> Option<&Published> {
        None
    }
}

impl HandlerState for AuthService {
    fn service(&self) -> Option<&AuthService> {
        Some(self)
    }
}

impl HandlerState for Published {
    fn published(&self) -> Option<&Published> {
        Some(self)
    }
}

impl Handler {
    pub async fn call(self, state: &impl HandlerState, request: Request) -> Response<Body> {
        match (self, state.service(), state.published()) {
            (Handler::Service(handler), Some(service), _) => {
                // Where the request came from, for the history entries it writes.
                let origin = RequestOrigin {
                    source_ip: crate::http::source_ip(&request),
                    user_agent: request
                        .headers()
                        .get(lambda_http::http::header::USER_AGENT)
                        .and_then(|agent| agent.to_str().ok())
                        .map(str::to_owned),
                };
                origin.scope(handler(service, request)).await
            }
            (Handler::Published(handler), _, Some(published)) => handler(published, request).await,
            _ => {
                // A function wired with the wrong state: a deployment mistake, never the caller's.
                tracing::error!(
                    ?self,
                    "this function does not hold what the route's handler needs"
                );
                HttpError::from(AuthError::Internal("handler state mismatch".into()))
                    .into_response()
            }
        }
    }
}

/// Wraps an `async fn(&AuthService, Request) -> Outcome` as a [`ServiceHandler`]: the one
/// place where a handler's error becomes its `problem+json` answer.
macro_rules! service {
    ($handler:path) => {{
        fn call(service: &AuthService, request: Request) -> Answer<'_> {
            Box::pin(async move {
                $handler(service, request)
                    .await
                    .unwrap_or_else(HttpError::into_response)
            })
        }
        Handler::Service(call)
    }};
}

/// Wraps an `async fn(&Published, Request) -> Response<Body>` as a [`PublishedHandler`].
macro_rules! published {
    ($handler:path) => {{
        fn call(published: &Published, request: Request) -> Answer<'_> {
            Box::pin($handler(published, request))
        }
        Handler::Published(call)
    }};
}

/// The path of API Gateway's catch-all route: it takes every request no other route matches.
pub const DEFAULT_ROUTE: &str = "$default";

/// One route of the API.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// Upper case; `ANY` for the catch-all.
    pub method: &'static str,
    /// With `{name}` for a path parameter (one segment), or [`DEFAULT_ROUTE`].
    pub path: &'static str,
    pub function: Function,
    pub access: Access,
    pub handler: Handler,
    pub cost: Cost,
}

impl Route {
    /// The route, costing `cost` per request.
    const fn costs(self, cost: Cost) -> Route {
        Route { cost, ..self }
    }

    /// API Gateway's route key: `POST /auth/login`, or `$default`.
    pub fn key(&self) -> String {
        if self.is_default() {
            DEFAULT_ROUTE.to_owned()
        } else {
            format!("{} {}", self.method, self.path)
        }
    }

    pub fn is_default(&self) -> bool {
        self.path == DEFAULT_ROUTE
    }

    pub fn is_protected(&self) -> bool {
        self.access != Access::Public
    }
}

const fn route(
    method: &'static str,
    path: &'static str,
    function: Function,
    access: Access,
    handler: Handler,
) -> Route {
    Route {
        method,
        path,
        function,
        access,
        handler,
        cost: Cost::Plain,
    }
}

use Access::{Admin, Protected, Public, SignedIn};
use Cost::{Mail, SignIn};
use Function as F;

/// Every route of the API. Adding one: an entry here, its handler in `handlers`, its function,
/// its template entry, its OpenAPI path and an event file; a test names each one forgotten.
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    route("POST",   "/auth/register",            F::Register,   Public,    service!(handlers::register)).costs(Mail),
    route("POST",   "/auth/login",               F::Login,      Public,    service!(handlers::login)).costs(SignIn),
    route("POST",   "/auth/refresh",             F::Refresh,    Public,    service!(handlers::refresh)),
    route("POST",   "/auth/logout",              F::Logout,     SignedIn,  service!(handlers::logout)),
    route("POST",   "/auth/password",            F::Password,   Protected, service!(handlers::change_password)),
    route("GET",    "/auth/me",                  F::Me,         SignedIn,  service!(handlers::me)),
    route("GET",    "/auth/sessions",            F::Sessions,   Protected, service!(handlers::list_sessions)),
    route("DELETE", "/auth/sessions/{id}",       F::Sessions,   Protected, service!(handlers::revoke_session)),
    route("GET",    "/auth/security-events",     F::Sessions,   Protected, service!(handlers::account::security_events)),
    route("DELETE", "/auth/account",             F::Account,    SignedIn,  service!(handlers::account::delete_account)),
    route("POST",   "/auth/email/verification",  F::Email,      SignedIn,  service!(handlers::request_verification)).costs(Mail),
    route("POST",   "/auth/email",               F::Email,      SignedIn,  service!(handlers::change_email)).costs(Mail),
    route("POST",   "/auth/email/verify",        F::EmailLinks, Public,    service!(handlers::verify_email)).costs(SignIn),
    route("POST",   "/auth/password/forgot",     F::EmailLinks, Public,    service!(handlers::forgot_password)).costs(Mail),
    route("POST",   "/auth/password/reset",      F::EmailLinks, Public,    service!(handlers::reset_password)).costs(SignIn),
    route("POST",   "/auth/mfa/totp/setup",      F::Mfa,        Protected, service!(handlers::totp_setup)),
    route("POST",   "/auth/mfa/totp/confirm",    F::Mfa,        Protected, service!(handlers::totp_confirm)),
    route("DELETE", "/auth/mfa/totp",            F::Mfa,        Protected, service!(handlers::totp_disable)),
    route("POST",   "/auth/mfa/recovery-codes",  F::Mfa,        Protected, service!(handlers::regenerate_recovery_codes)),
    route("POST",   "/auth/mfa/verify",          F::Mfa,        Public,    service!(handlers::verify_mfa)).costs(SignIn),
    route("POST",   "/auth/mfa/passkey/options", F::Mfa,        Public,    service!(handlers::second_factor_passkey_options)).costs(SignIn),
    route("POST",   "/auth/passkeys/register/options", F::Passkeys, Protected, service!(handlers::passkey_registration_options)),
    route("POST",   "/auth/passkeys/register",   F::Passkeys,   Protected, service!(handlers::register_passkey)),
    route("GET",    "/auth/passkeys",            F::Passkeys,   Protected, service!(handlers::list_passkeys)),
    route("PATCH",  "/auth/passkeys/{id}",       F::Passkeys,   Protected, service!(handlers::rename_passkey)),
    route("DELETE", "/auth/passkeys/{id}",       F::Passkeys,   Protected, service!(handlers::remove_passkey)),
    route("POST",   "/auth/passkeys/login/options", F::Passkeys, Public,   service!(handlers::passkey_sign_in_options)).costs(SignIn),
    route("POST",   "/auth/passkeys/login",      F::Passkeys,   Public,    service!(handlers::passkey_sign_in)).costs(SignIn),
    route("GET",    "/auth/oidc/{provider}/start",    F::Oidc, Public,    service!(handlers::oidc::start)).costs(SignIn),
    route("GET",    "/auth/oidc/{provider}/callback", F::Oidc, Public,    service!(handlers::oidc::callback)).costs(SignIn),
    route("POST",   "/auth/oidc/{provider}/callback", F::Oidc, Public,    service!(handlers::oidc::callback_form)).costs(SignIn),
    route("POST",   "/auth/oidc/exchange",       F::Oidc,       Public,    service!(handlers::oidc::exchange)).costs(SignIn),
    route("POST",   "/auth/oidc/{provider}/link", F::Oidc,      Protected, service!(handlers::oidc::link)),
    route("GET",    "/auth/identities",          F::Oidc,       Protected, service!(handlers::oidc::list)),
    route("DELETE", "/auth/identities/{id}",     F::Oidc,       Protected, service!(handlers::oidc::unlink)),
    route("GET",    "/auth/oidc/providers",      F::Web,        Public,    published!(discovery::oidc_providers)),
    route("GET",    "/admin/users",              F::Admin,      Admin,     service!(handlers::admin::list_users)),
    route("GET",    "/admin/users/{id}",         F::Admin,      Admin,     service!(handlers::admin::user)),
    route("PATCH",  "/admin/users/{id}",         F::Admin,      Admin,     service!(handlers::admin::update_user)),
    route("GET",    "/admin/users/{id}/sessions", F::Admin,     Admin,     service!(handlers::admin::sessions)),
    route("POST",   "/admin/users/{id}/sessions/revoke", F::Admin, Admin,  service!(handlers::admin::revoke_sessions)),
    route("DELETE", "/admin/users/{id}",         F::Admin,      Admin,     service!(handlers::admin::delete_user)),
    route("GET",    "/verify-email",             F::Web,        Public,    published!(pages::verify_email)),
    route("GET",    "/reset-password",           F::Web,        Public,    published!(pages::reset_password)),
    route("GET",    "/account",                  F::Web,        Public,    published!(pages::account)),
    route("GET",    discovery::JWKS_PATH,        F::Web,        Public,    published!(discovery::jwks)),
    route("GET",    discovery::OPENID_CONFIGURATION_PATH, F::Web,  Public, published!(discovery::openid_configuration)),
    // Last: it answers the API's 404 and 405 for every request no route above takes.
    route("ANY",    DEFAULT_ROUTE,               F::Web,        Public,    published!(catch_all)),
];

/// The most routes one function serves; [`Function::routes`] fails to compile beyond it.
pub const MAX_ROUTES_PER_FUNCTION: usize = 7;

/// Method, path and access of a route, without its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

/// [`ROUTES`] without handlers (and without the catch-all): what the catch-all needs to tell
/// `404` from `405` and the authorizer to tell which routes a user with an unverified address
/// may call, copied at compile time so that their binaries link no handler.
pub const ENDPOINTS: [Endpoint; ROUTES.len() - 1] = {
    let mut endpoints = [Endpoint {
        method: "",
        path: "",
        access: Access::Public,
    }; ROUTES.len() - 1];
    let mut i = 0;
    while i < endpoints.len() {
        endpoints[i] = Endpoint {
            method: ROUTES[i].method,
            path: ROUTES[i].path,
            access: ROUTES[i].access,
        };
        i += 1;
    }
    endpoints
};

/// The routes of one function, as [`Function::routes`] picks them.
#[derive(Debug, Clone, Copy)]
pub struct FunctionRoutes {
    routes: [Option<Route>; MAX_ROUTES_PER_FUNCTION],
}

impl FunctionRoutes {
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().flatten()
    }

    /// Runs the handler of the route this request came in on. API Gateway names it in the
    /// event (`routeKey`, or a REST API's method and resource); where that names none of ours
    /// (no key, `$default`, a `{proxy+}` resource), the method and path decide as API Gateway
    /// would.
    pub async fn serve(&self, state: &impl HandlerState, request: Request) -> Response<Body> {
        let route = route_key(&request)
            .and_then(|key| self.iter().find(|r| r.key() == key))
            .or_else(|| {
                resolve(
                    self.iter(),
                    request.method().as_str(),
                    request_path(&request),
                )
                .map(|(route, _)| route)
            });
        match route {
            Some(route) => route.handler.call(state, request).await,
            None => HttpError::from(not_routed(request_path(&request))).into_response(),
        }
    }
}

/// The route an API Gateway event names: an HTTP API's `routeKey`, or a REST API's method and
/// resource (`POST /auth/login`, `DELETE /auth/sessions/{id}`).
fn route_key(request: &Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.route_key.clone(),
        RequestContext::ApiGatewayV1(context) => context
            .resource_path
            .as_ref()
            .map(|resource| format!("{} {resource}", context.http_method)),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The catch-all route: `405` with `Allow` for a known path, else `404`.
async fn catch_all(_published: &Published, request: Request) -> Response<Body> {
    HttpError::from(not_routed(request_path(&request))).into_response()
}

/// Why no route takes this request: `405` with the methods its path accepts, else `404`.
pub fn not_routed(path: &str) -> RequestError {
    match allowed_methods(path) {
        Some(allow) => RequestError::MethodNotAllowed { allow },
        None => RequestError::NotFound,
    }
}

/// The methods `path` accepts, as an `Allow` header value (`GET, DELETE`); `None` for a path
/// no route has.
pub fn allowed_methods(path: &str) -> Option<String> {
    let methods: Vec<&str> = ENDPOINTS
        .iter()
        .filter(|e| match_path(e.path, path).is_some())
        .map(|e| e.method)
        .collect();
    (!methods.is_empty()).then(|| methods.join(", "))
}

/// The endpoint that takes `method path`, as API Gateway matches (the catch-all aside).
pub fn endpoint(method: &str, path: &str) -> Option<&'static Endpoint> {
    ENDPOINTS
        .iter()
        .find(|e| (e.method == "ANY" || e.method == method) && match_path(e.path, path).is_some())
}

/// The route among `routes` that takes `method path`, with its path parameters, as API Gateway
/// matches: the method and every segment; `{name}` takes one non-empty segment. The catch-all
/// is not considered.
pub fn resolve<'r>(
    routes: impl IntoIterator<Item = &'r Route>,
    method: &str,
    path: &str,
) -> Option<(&'r Route, BTreeMap<String, String>)> {
    routes
        .into_iter()
        .filter(|r| !r.is_default() && (r.method == "ANY" || r.method == method))
        .find_map(|r| match_path(r.path, path).map(|parameters| (r, parameters)))
}

/// The catch-all route of the API.
pub fn default_route() -> &'static Route {
    ROUTES
        .iter()
        .find(|r| r.is_default())
        .expect("the table has a catch-all")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_methods_per_path() {
        assert_eq!(allowed_methods("/auth/login").as_deref(), Some("POST"));
        assert_eq!(
            allowed_methods("/auth/sessions/123").as_deref(),
            Some("DELETE")
        );
        assert_eq!(allowed_methods("/nope"), None);
    }

    #[test]
    fn a_path_with_several_methods_allows_them_all() {
        // No contract path has two methods yet; the derivation must not assume one.
        let two = [
            Endpoint {
                method: "GET",
                path: "/x/{id}",
                access: Access::Protected,
            },
            Endpoint {
                method: "DELETE",
                path: "/x/{id}",
                access: Access::Protected,
            },
        ];
        let methods: Vec<&str> = two
            .iter()
            .filter(|e| match_path(e.path, "/x/1").is_some())
            .map(|e| e.method)
            .collect();
        assert_eq!(methods.join(", "), "GET, DELETE");
    }

    #[test]
    fn every_route_is_unique_and_the_catch_all_is_last() {
        let mut keys: Vec<String> = ROUTES.iter().map(Route::key).collect();
        assert_eq!(keys.last().map(String::as_str), Some(DEFAULT_ROUTE));
        keys.sort();
        let before = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), before, "a route appears twice");
        assert_eq!(ROUTES.iter().filter(|r| r.is_default()).count(), 1);
    }

    #[test]
    fn each_function_gets_exactly_its_routes() {
        for function in Function::ALL {
            let picked: Vec<String> = function.routes().iter().map(Route::key).collect();
            let expected: Vec<String> = ROUTES
                .iter()
                .filter(|r| r.function == *function)
                .map(Route::key)
                .collect();
            assert_eq!(picked, expected, "{function:?}");
        }
        assert_eq!(Function::Authorizer.routes().iter().count(), 0);
    }

    #[test]
    fn one_function_serves_routes_of_one_kind() {
        // Its binary holds either the service or the published keys, never both.
        for function in Function::ALL {
            let kinds: std::collections::BTreeSet<&str> = function
                .routes()
                .iter()
                .map(|r| match r.handler {
                    Handler::Service(_) => "service",
                    Handler::Published(_) => "published",
                })
                .collect();
            assert!(kinds.len() <= 1, "{function:?} mixes {kinds:?}");
        }
    }

    #[test]
    fn binaries_round_trip() {
        for function in Function::ALL {
            assert_eq!(Function::from_binary(function.binary()), Some(*function));
        }
        assert_eq!(Function::from_binary("nope"), None);
    }
}
