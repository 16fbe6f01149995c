//! Configuration: every variable of docs/api.md's Configuration table, read once at start.
//!
//! A missing or malformed variable is an error that names it, so a function stops at cold start
//! with a message an operator can act on instead of failing on its first request.

pub mod oidc;
pub mod roles;

use serde::Deserialize;

/// Errors while reading configuration. Each names the variable at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("configuration: {name} is required but not set")]
    Missing { name: &'static str },
    #[error("configuration: {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// The signing algorithms an external issuer may use. Never `none`, never HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ExternalAlgorithm {
    EdDSA,
    ES256,
    RS256,
}

/// An external issuer (such as a Better Auth server) whose tokens the authorizer also accepts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    pub issuer: String,
    pub jwks_uri: String,
    pub audience: String,
    #[serde(default = "default_external_algorithms")]
    pub algorithms: Vec<ExternalAlgorithm>,
    #[serde(default = "default_user_id_claim")]
    pub user_id_claim: String,
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    /// The longest a token may live, `exp` past `iat`; a token without `iat` is refused.
    #[serde(default = "default_max_token_lifetime")]
    pub max_token_lifetime_seconds: i64,
    /// The header `typ` values accepted, `null` standing for an absent `typ`. `None`:
    /// [`DEFAULT_EXTERNAL_TYP`].
    #[serde(default)]
    pub typ: Option<Vec<Option<String>>>,
}

/// The default external token lifetime limit: a day.
pub const DEFAULT_MAX_TOKEN_LIFETIME_SECS: i64 = 86_400;
/// The `typ` values accepted from an external issuer by default: absent, `JWT` or `at+jwt`.
pub const DEFAULT_EXTERNAL_TYP: [Option<&str>; 3] = [None, Some("JWT"), Some("at+jwt")];

impl TrustedIssuer {
    /// An issuer with the defaults for every optional setting.
    pub fn new(
        issuer: impl Into<String>,
        jwks_uri: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            jwks_uri: jwks_uri.into(),
            audience: audience.into(),
            algorithms: default_external_algorithms(),
            user_id_claim: default_user_id_claim(),
            email_claim: default_email_claim(),
            max_token_lifetime_seconds: DEFAULT_MAX_TOKEN_LIFETIME_SECS,
            typ: None,
        }
    }

    /// Whether a header `typ` (absent: `None`) is one this issuer's tokens may carry.
    pub fn accepts_typ(&self, typ: Option<&str>) -> bool {
        match &self.typ {
            Some(accepted) => accepted.iter().any(|t| t.as_deref() == typ),
            None => DEFAULT_EXTERNAL_TYP.contains(&typ),
        }
    }
}

fn default_external_algorithms() -> Vec<ExternalAlgorithm> {
    vec![ExternalAlgorithm::EdDSA]
}
fn default_user_id_claim() -> String {
    "sub".to_owned()
}
fn default_email_claim() -> String {
    "email".to_owned()
}
fn default_max_token_lifetime() -> i64 {
    DEFAULT_MAX_TOKEN_LIFETIME_SECS
}

/// The service's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub users_table: String,
    pub sessions_table: String,
    /// Each user's security history (`GET /auth/security-events`).
    pub history_table: String,
    /// The EventBridge bus lifecycle events go to (`EVENT_BUS_NAME`); `None`: no events.
    pub event_bus_name: Option<String>,
    /// Whether a sign-in from a device never seen before mails the user (`NOTIFY_NEW_DEVICE`).
    pub notify_new_device: bool,
    /// `iss` of issued tokens, checked on every token.
    pub issuer: String,
    /// `aud` of issued tokens, checked on every token.
    pub audience: String,
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    pub session_max_lifetime_secs: i64,
    pub refresh_reuse_grace_secs: i64,
    pub password_min_score: u8,
    pub login_max_failures: u32,
    pub ip_max_failed_logins: u32,
    pub ip_max_registrations: u32,
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// Which roles may call which routes (`ROUTE_ROLES`), checked by the authorizer.
    pub route_roles: Vec<roles::RouteRoles>,
    /// The OpenID providers users may sign in with (`OIDC_PROVIDERS`).
    pub oidc_providers: Vec<oidc::OidcProviderConfig>,
    /// Where emailed links point, without a trailing slash; `None`: the API's own base URL, as
    /// the request to it shows.
    pub app_url: Option<String>,
    /// The sender of mail (SES v2's `FromEmailAddress`); required where mail is sent through SES.
    pub mail_from: Option<String>,
    pub email_verification_ttl_secs: i64,
    pub password_reset_ttl_secs: i64,
    /// Whether the authorizer admits users with an unverified address only to the routes that
    /// get it verified.
    pub require_verified_email: bool,
    /// The WebAuthn relying party; `None` (no `WEBAUTHN_RP_ID` and no `APP_URL`) leaves
    /// passkeys off.
    pub webauthn: Option<WebauthnSettings>,
}

/// Who passkeys are made for: the RP ID (a domain) and the page origins allowed to use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnSettings {
    pub rp_id: String,
    pub origins: Vec<url::Url>,
}

/// Fallbacks for variables that are required in AWS but have a natural value elsewhere
/// (the local server's table names and base URL).
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub users_table: Option<String>,
    pub sessions_table: Option<String>,
    pub history_table: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub app_url: Option<String>,
    pub mail_from: Option<String>,
}

impl Config {
    /// Reads the process environment, as a Lambda function does: tables, issuer and audience
    /// are required.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok(), &Defaults::default())
    }

    /// Reads variables through `lookup`, falling back to `defaults`. An empty value counts as
    /// unset, because deployment tools often pass empty strings for optional parameters.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        defaults: &Defaults,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let required = |name: &'static str, fallback: &Option<String>| {
            get(name)
                .or_else(|| fallback.clone())
                .ok_or(ConfigError::Missing { name })
        };

        let config = Config {
            users_table: required("USERS_TABLE", &defaults.users_table)?,
            sessions_table: required("SESSIONS_TABLE", &defaults.sessions_table)?,
            history_table: required("HISTORY_TABLE", &defaults.history_table)?,
            event_bus_name: get("EVENT_BUS_NAME").map(|name| name.trim().to_owned()),
            notify_new_device: boolean(get("NOTIFY_NEW_DEVICE"), "NOTIFY_NEW_DEVICE")?,
            issuer: required("JWT_ISSUER", &defaults.issuer)?,
            audience: required("JWT_AUDIENCE", &defaults.audience)?,
            access_token_ttl_secs: number(
                get("ACCESS_TOKEN_TTL_SECONDS"),
                "ACCESS_TOKEN_TTL_SECONDS",
                900,
                60..=86_400,
            )?,
            refresh_token_ttl_secs: number(
                get("REFRESH_TOKEN_TTL_SECONDS"),
                "REFRESH_TOKEN_TTL_SECONDS",
                2_592_000,
                300..=31_536_000,
            )?,
            session_max_lifetime_secs: number(
                get("SESSION_MAX_LIFETIME_SECONDS"),
                "SESSION_MAX_LIFETIME_SECONDS",
                7_776_000,
                300..=31_536_000,
            )?,
            refresh_reuse_grace_secs: number(
                get("REFRESH_REUSE_GRACE_SECONDS"),
                "REFRESH_REUSE_GRACE_SECONDS",
                10,
                0..=60,
            )?,
            password_min_score: number(get("PASSWORD_MIN_SCORE"), "PASSWORD_MIN_SCORE", 3, 0..=4)?,
            login_max_failures: number(
                get("LOGIN_MAX_FAILURES"),
                "LOGIN_MAX_FAILURES",
                5,
                1..=1_000,
            )?,
            ip_max_failed_logins: number(
                get("IP_MAX_FAILED_LOGINS"),
                "IP_MAX_FAILED_LOGINS",
                30,
                1..=100_000,
            )?,
            ip_max_registrations: number(
                get("IP_MAX_REGISTRATIONS"),
                "IP_MAX_REGISTRATIONS",
                30,
                1..=100_000,
            )?,
            trusted_issuers: trusted_issuers(get("TRUSTED_ISSUERS"))?,
            oidc_providers: oidc::parse(get("OIDC_PROVIDERS"))?,
            route_roles: roles::parse(get("ROUTE_ROLES"))?,
            app_url: get("APP_URL")
                .or_else(|| defaults.app_url.clone())
                .map(|url| base_url(&url, "APP_URL"))
                .transpose()?,
            mail_from: get("MAIL_FROM")
                .or_else(|| defaults.mail_from.clone())
                .map(|from| sender(&from))
                .transpose()?,
            email_verification_ttl_secs: number(
                get("EMAIL_VERIFICATION_TTL_SECONDS"),
                "EMAIL_VERIFICATION_TTL_SECONDS",
                86_400,
                300..=7 * 86_400,
            )?,
            password_reset_ttl_secs: number(
                get("PASSWORD_RESET_TTL_SECONDS"),
                "PASSWORD_RESET_TTL_SECONDS",
                1_800,
                300..=86_400,
            )?,
            require_verified_email: boolean(
                get("REQUIRE_VERIFIED_EMAIL"),
                "REQUIRE_VERIFIED_EMAIL",
            )?,
            webauthn: None,
        };
        let config = Config {
            webauthn: webauthn(
                get("WEBAUTHN_RP_ID"),
                get("WEBAUTHN_ORIGINS"),
                config.app_url.as_deref(),
            )?,
            ..config
        };
        config.check_consistency()?;
        Ok(config)
    }

    fn check_consistency(&self) -> Result<(), ConfigError> {
        if self.refresh_token_ttl_secs < self.access_token_ttl_secs {
            return Err(ConfigError::Invalid {
                name: "REFRESH_TOKEN_TTL_SECONDS",
                reason: "must not be shorter than ACCESS_TOKEN_TTL_SECONDS".into(),
            });
        }
        if self.session_max_lifetime_secs < self.refresh_token_ttl_secs {
            return Err(ConfigError::Invalid {
                name: "SESSION_MAX_LIFETIME_SECONDS",
                reason: "must not be shorter than REFRESH_TOKEN_TTL_SECONDS".into(),
            });
        }
        if self.trusted_issuers.iter().any(|t| t.issuer == self.issuer) {
            return Err(ConfigError::Invalid {
                name: "TRUSTED_ISSUERS",
                reason: "an external issuer must differ from JWT_ISSUER".into(),
            });
        }
        Ok(())
    }
}

fn number<T>(
    raw: Option<String>,
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = raw else { return Ok(default) };
    let value: T = raw.trim().parse().map_err(|_| ConfigError::Invalid {
        name,
        reason: format!("expected a whole number, got {raw:?}"),
    })?;
    if !range.contains(&value) {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("{value} is outside {}..={}", range.start(), range.end()),
        });
    }
    Ok(value)
}

fn boolean(raw: Option<String>, name: &'static str) -> Result<bool, ConfigError> {
    match raw.as_deref().map(str::trim) {
        None => Ok(false),
        Some(value) if value.eq_ignore_ascii_case("true") => Ok(true),
        Some(value) if value.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(ConfigError::Invalid {
            name,
            reason: format!("expected true or false, got {other:?}"),
        }),
    }
}

/// An `http(s)://host[/path]` base URL without query or fragment, its trailing slash removed.
fn base_url(raw: &str, name: &'static str) -> Result<String, ConfigError> {
    let url = raw.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest.and_then(|r| r.split('/').next()).unwrap_or_default();
    if host.is_empty() || url.contains(['?', '#', ' ']) {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("expected a base URL such as https://app.example.com, got {url:?}"),
        });
    }
    Ok(url.to_owned())
}

/// `WEBAUTHN_RP_ID` (default: `APP_URL`'s host) and `WEBAUTHN_ORIGINS` (comma-separated;
/// default: `APP_URL`'s origin). Browsers take no IP address as an RP ID, so an `APP_URL` on an
/// IP address (the local server's own) stands for `localhost` on the same port.
fn webauthn(
    rp_id: Option<String>,
    origins: Option<String>,
    app_url: Option<&str>,
) -> Result<Option<WebauthnSettings>, ConfigError> {
    let invalid = |name, reason: String| ConfigError::Invalid { name, reason };
    let app = app_url
        .map(|raw| url::Url::parse(raw).map_err(|e| invalid("APP_URL", e.to_string())))
        .transpose()?
        .map(|mut app| {
            if matches!(app.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) {
                let _ = app.set_host(Some("localhost"));
            }
            app
        });
    let origins = match origins {
        Some(list) => list
            .split(',')
            .map(|origin| {
                url::Url::parse(origin.trim())
                    .map_err(|e| invalid("WEBAUTHN_ORIGINS", format!("{origin:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => app.iter().map(origin_of).collect(),
    };
    let rp_id = rp_id.or_else(|| app.as_ref().and_then(|a| a.domain().map(str::to_owned)));
    match (rp_id, origins.is_empty()) {
        (None, true) => Ok(None),
        (None, false) => Err(ConfigError::Missing {
            name: "WEBAUTHN_RP_ID",
        }),
        (Some(_), true) => Err(ConfigError::Missing {
            name: "WEBAUTHN_ORIGINS",
        }),
        (Some(rp_id), false) => {
            for origin in &origins {
                let host = origin.domain().unwrap_or_default();
                let secure = origin.scheme() == "https" || host == "localhost";
                if !(host == rp_id || host.ends_with(&format!(".{rp_id}"))) || !secure {
                    return Err(invalid(
                        "WEBAUTHN_ORIGINS",
                        format!("{origin} is not an https origin on the RP ID {rp_id}"),
                    ));
                }
            }
            Ok(Some(WebauthnSettings { rp_id, origins }))
        }
    }
}

/// The origin of `url` (scheme, host and port), as a URL.
fn origin_of(url: &url::Url) -> url::Url {
    let mut origin = url.clone();
    origin.set_path("");
    origin.set_query(None);
    origin.set_fragment(None);
    origin
}

/// `ada@example.com` or `Example <no-reply@example.com>`, as SES takes a sender.
fn sender(raw: &str) -> Result<String, ConfigError> {
    let from = raw.trim();
    let address = match (from.rfind('<'), from.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        _ => from,
    };
    if email_address::EmailAddress::is_valid(address) && !from.contains(['\r', '\n']) {
        Ok(from.to_owned())
    } else {
        Err(ConfigError::Invalid {
            name: "MAIL_FROM",
            reason: format!("expected an address such as no-reply@example.com, got {from:?}"),
        })
    }
}

fn trusted_issuers(raw: Option<String>) -> Result<Vec<TrustedIssuer>, ConfigError> {
    const NAME: &str = "TRUSTED_ISSUERS";
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let invalid = |reason: String| ConfigError::Invalid { name: NAME, reason };
    let issuers: Vec<TrustedIssuer> = serde_json::from_str(&raw)
        .map_err(|e| invalid(format!("expected a JSON array of issuers: {e}")))?;
    for (i, issuer) in issuers.iter().enumerate() {
        if issuer.issuer.trim().is_empty() || issuer.audience.trim().is_empty() {
            return Err(invalid(format!(
                "issuer {i}: issuer and audience must not be empty"
            )));
        }
        if !is_allowed_jwks_uri(&issuer.jwks_uri) {
            return Err(invalid(format!(
                "issuer {i}: jwks_uri must be https:// (http:// only for loopback), got {:?}",
                issuer.jwks_uri
            )));
        }
        if issuer.algorithms.is_empty() {
            return Err(invalid(format!("issuer {i}: algorithms must not be empty")));
        }
        if issuer.user_id_claim.is_empty() || issuer.email_claim.is_empty() {
            return Err(invalid(format!(
                "issuer {i}: claim names must not be empty"
            )));
        }
        if issuer.max_token_lifetime_seconds <= 0 {
            return Err(invalid(format!(
                "issuer {i}: max_token_lifetime_seconds must be a positive number of seconds"
            )));
        }
        if issuer
            .typ
            .as_ref()
            .is_some_and(|typ| typ.is_empty() || typ.iter().flatten().any(|t| t.is_empty()))
        {
            return Err(invalid(format!(
                "issuer {i}: typ must list at least one value (null for an absent typ), none empty"
            )));
        }
        if issuers[..i]
            .iter()
            .any(|other| other.issuer == issuer.issuer)
        {
            return Err(invalid(format!(
                "issuer {i}: {:?} is listed twice",
                issuer.issuer
            )));
        }
    }
    Ok(issuers)
}

/// HTTPS anywhere; plain HTTP only to a loopback host (tests and local development).
pub(crate) fn is_allowed_jwks_uri(uri: &str) -> bool {
    if let Some(rest) = uri.strip_prefix("https://") {
        return !rest.is_empty();
    }
    let Some(rest) = uri.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned(), &Defaults::default())
    }

    const BASE: [(&str, &str); 5] = [
        ("USERS_TABLE", "users"),
        ("SESSIONS_TABLE", "sessions"),
        ("HISTORY_TABLE", "history"),
        ("JWT_ISSUER", "https://auth.example.com"),
        ("JWT_AUDIENCE", "https://api.example.com"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        BASE.iter().chain(extra).copied().collect()
    }

    #[test]
    fn defaults_match_the_contract() {
        let config = load(&BASE).unwrap();
        assert_eq!(config.access_token_ttl_secs, 900);
        assert_eq!(config.refresh_token_ttl_secs, 2_592_000);
        assert_eq!(config.session_max_lifetime_secs, 7_776_000);
        assert_eq!(config.refresh_reuse_grace_secs, 10);
        assert_eq!(config.password_min_score, 3);
        assert_eq!(config.login_max_failures, 5);
        assert_eq!(config.ip_max_failed_logins, 30);
        assert_eq!(config.ip_max_registrations, 30);
        assert!(config.trusted_issuers.is_empty());
        assert_eq!(config.event_bus_name, None);
        assert!(!config.notify_new_device);
    }

    #[test]
    fn every_required_variable_is_named_when_missing() {
        for missing in [
            "USERS_TABLE",
            "SESSIONS_TABLE",
            "HISTORY_TABLE",
            "JWT_ISSUER",
            "JWT_AUDIENCE",
        ] {
            let vars: Vec<_> = BASE
                .iter()
                .filter(|(k, _)| *k != missing)
                .copied()
                .collect();
            assert_eq!(load(&vars), Err(ConfigError::Missing { name: missing }));
            let err = load(&vars).unwrap_err().to_string();
            assert!(err.contains(missing), "{err}");
        }
    }

    #[test]
    fn empty_counts_as_unset() {
        let vars = with(&[("ACCESS_TOKEN_TTL_SECONDS", "")]);
        assert_eq!(load(&vars).unwrap().access_token_ttl_secs, 900);
        let vars: Vec<_> = BASE
            .iter()
            .map(|&(k, v)| if k == "JWT_ISSUER" { (k, " ") } else { (k, v) })
            .collect();
        assert_eq!(
            load(&vars),
            Err(ConfigError::Missing { name: "JWT_ISSUER" })
        );
    }

    #[test]
    fn malformed_numbers_name_the_variable() {
        for (name, value) in [
            ("ACCESS_TOKEN_TTL_SECONDS", "15m"),
            ("REFRESH_TOKEN_TTL_SECONDS", "-1"),
            ("REFRESH_REUSE_GRACE_SECONDS", "3600"),
            ("PASSWORD_MIN_SCORE", "5"),
            ("LOGIN_MAX_FAILURES", "0"),
            ("IP_MAX_FAILED_LOGINS", "many"),
            ("IP_MAX_REGISTRATIONS", "1.5"),
            ("SESSION_MAX_LIFETIME_SECONDS", "99999999999"),
        ] {
            let vars = with(&[(name, value)]);
            match load(&vars) {
                Err(ConfigError::Invalid { name: got, .. }) => assert_eq!(got, name),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn lifetimes_must_nest() {
        let vars = with(&[
            ("ACCESS_TOKEN_TTL_SECONDS", "3600"),
            ("REFRESH_TOKEN_TTL_SECONDS", "600"),
        ]);
        assert!(matches!(
            load(&vars),
            Err(ConfigError::Invalid {
                name: "REFRESH_TOKEN_TTL_SECONDS",
                ..
            })
        ));
    }

    #[test]
    fn defaults_fill_required_values() {
        let defaults = Defaults {
            users_table: Some("users".into()),
            sessions_table: Some("sessions".into()),
            history_table: Some("history".into()),
            issuer: Some("http://127.0.0.1:3000".into()),
            audience: Some("http://127.0.0.1:3000".into()),
            ..Defaults::default()
        };
        let config = Config::from_lookup(|_| None, &defaults).unwrap();
        assert_eq!(config.issuer, "http://127.0.0.1:3000");
        assert_eq!(config.users_table, "users");
    }

    #[test]
    fn trusted_issuers_parse_with_defaults() {
        let vars = with(&[(
            "TRUSTED_ISSUERS",
            r#"[{"issuer":"https://app.example.com","jwks_uri":"https://app.example.com/api/auth/jwks","audience":"https://app.example.com"}]"#,
        )]);
        let config = load(&vars).unwrap();
        let issuer = &config.trusted_issuers[0];
        assert_eq!(issuer.algorithms, vec![ExternalAlgorithm::EdDSA]);
        assert_eq!(issuer.user_id_claim, "sub");
        assert_eq!(issuer.email_claim, "email");
        assert_eq!(issuer.max_token_lifetime_seconds, 86_400);
        assert_eq!(issuer.typ, None);
        for typ in [None, Some("JWT"), Some("at+jwt")] {
            assert!(issuer.accepts_typ(typ), "{typ:?}");
        }
        for typ in [Some("id+jwt"), Some("jwt"), Some("rt+jwt"), Some("")] {
            assert!(!issuer.accepts_typ(typ), "{typ:?}");
        }
    }

    #[test]
    fn trusted_issuers_take_a_lifetime_limit_and_typ_values() {
        let vars = with(&[(
            "TRUSTED_ISSUERS",
            r#"[{"issuer":"https://app.example.com","jwks_uri":"https://app.example.com/api/auth/jwks","audience":"https://app.example.com","max_token_lifetime_seconds":900,"typ":["at+jwt"]}]"#,
        )]);
        let issuer = &load(&vars).unwrap().trusted_issuers[0];
        assert_eq!(issuer.max_token_lifetime_seconds, 900);
        assert!(issuer.accepts_typ(Some("at+jwt")));
        assert!(!issuer.accepts_typ(None));
        assert!(!issuer.accepts_typ(Some("JWT")));

        let vars = with(&[(
            "TRUSTED_ISSUERS",
            r#"[{"issuer":"https://app.example.com","jwks_uri":"https://app.example.com/api/auth/jwks","audience":"https://app.example.com","typ":[null]}]"#,
        )]);
        let issuer = &load(&vars).unwrap().trusted_issuers[0];
        assert!(issuer.accepts_typ(None));
        assert!(!issuer.accepts_typ(Some("JWT")));
    }

    #[test]
    fn unsafe_trusted_issuers_are_refused() {
        for raw in [
            "{}",
            "not json",
            r#"[{"issuer":"https://a","jwks_uri":"http://evil.example.com/jwks","audience":"a"}]"#,
            r#"[{"issuer":"https://a","jwks_uri":"https://a/jwks","audience":"a","algorithms":["HS256"]}]"#,
            r#"[{"issuer":"https://a","jwks_uri":"https://a/jwks","audience":"a","algorithms":["none"]}]"#,
            r#"[{"issuer":"https://a","jwks_uri":"https://a/jwks","audience":"a","algorithms":[]}]"#,
            r#"[{"issuer":"https://a","jwks_uri":"https://a/jwks","audience":"a","jku":"x"}]"#,
            r#"[{"issuer":"https://auth.example.com","jwks_uri":"https://a/jwks","audience":"a"}]"#,
            r#"[{"issuer":"https://a","jwks_uri":"https://a/jwks","audience":"a","max_token_lifetime_seconds":0}]"#,
            r#"[{"issuer":"https://a","jwks_uri":"https://a/jwks","audience":"a","max_token_lifetime_seconds":-5}]"#,
            r#"[{"issuer":"https://a","jwks_uri":"https://a/jwks","audience":"a","max_token_lifetime_seconds":"1d"}]"#,
            r#"[{"issuer":"https://a","jwks_uri":"https://a/jwks","audience":"a","typ":[]}]"#,
            r#"[{"issuer":"https://a","jwks_uri":"https://a/jwks","audience":"a","typ":[""]}]"#,
            r#"[{"issuer":"https://a","jwks_uri":"https://a/jwks","audience":"a","typ":"JWT"}]"#,
        ] {
            let vars = with(&[("TRUSTED_ISSUERS", raw)]);
            assert!(
                matches!(
                    load(&vars),
                    Err(ConfigError::Invalid {
                        name: "TRUSTED_ISSUERS",
                        ..
                    })
                ),
                "{raw}"
            );
        }
    }

    #[test]
    fn loopback_http_jwks_is_allowed_for_tests() {
        assert!(is_allowed_jwks_uri("http://127.0.0.1:3100/api/auth/jwks"));
        assert!(is_allowed_jwks_uri("http://localhost/jwks"));
        assert!(is_allowed_jwks_uri("https://app.example.com/api/auth/jwks"));
        assert!(!is_allowed_jwks_uri("http://127.0.0.1.evil.com/jwks"));
        assert!(!is_allowed_jwks_uri("ftp://127.0.0.1/jwks"));
    }
}
