//! The service's one error type; the HTTP layer maps each variant to one answer.

use crate::passwords::PasswordError;
use crate::store::StoreError;
use crate::validation::FieldError;

/// Why an operation failed. The HTTP layer maps each variant to one contract error; the text of
/// `InvalidToken`, `Unavailable` and `Internal` is for logs only.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid email")]
    InvalidEmail(FieldError),
    #[error("weak password")]
    WeakPassword(Vec<FieldError>),
    #[error("email is already registered")]
    EmailTaken,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("account is disabled")]
    AccountDisabled,
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("not found")]
    NotFound,
    #[error("wrong, reused or expired code")]
    InvalidCode,
    /// A code that cannot be one (a TOTP code is six ASCII digits).
    #[error("malformed code in {field}")]
    MalformedCode { field: &'static str },
    #[error("two-factor sign-in is on already")]
    MfaAlreadyEnabled,
    #[error("two-factor sign-in is off")]
    MfaNotEnabled,
    #[error("no two-factor enrolment to confirm")]
    MfaSetupRequired,
    /// Enrolling a second factor needs a verified address.
    #[error("the address is not verified")]
    EmailUnverified,
    /// A passkey's answer that does not verify, or names no passkey of the account that may
    /// answer; sign-in failures all look alike.
    #[error("passkey refused")]
    PasskeyRefused,
    #[error("the credential is registered already")]
    PasskeyTaken,
    #[error("the account holds the most passkeys it may")]
    TooManyPasskeys,
    #[error("no such passkey")]
    PasskeyNotFound,
    /// Removing the account's only way in.
    #[error("the last credential")]
    LastCredential,
    /// A change that needs the password, or a sign-in from the last ten minutes.
    #[error("a fresh factor is needed")]
    FreshFactorRequired,
    /// A request parameter with a value it cannot take; `message` says which it takes.
    #[error("invalid {field}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    #[error("no such OpenID provider")]
    ProviderNotFound,
    #[error("the identity is linked to another account")]
    IdentityTaken,
    #[error("the account holds the most identities it may")]
    TooManyIdentities,
    #[error("no such identity")]
    IdentityNotFound,
    #[error("no such user")]
    UserNotFound,
    /// The caller lacks the role this needs.
    #[error("forbidden")]
    Forbidden,
    #[error("too many requests; retry after {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken => AuthError::EmailTaken,
            StoreError::IdentityTaken => AuthError::IdentityTaken,
            StoreError::InvalidCursor => AuthError::InvalidField {
                field: "cursor",
                message: "cursor is not one a page of this list gave.".into(),
            },
            StoreError::Unavailable(detail) => {
                crate::metrics::store_error(true);
                AuthError::Unavailable(detail)
            }
            StoreError::Internal(detail) => {
                crate::metrics::store_error(false);
                AuthError::Internal(detail)
            }
        }
    }
}

impl From<PasswordError> for AuthError {
    fn from(e: PasswordError) -> Self {
        AuthError::Internal(e.to_string())
    }
}

pub(super) fn invalid_token(reason: impl Into<String>) -> AuthError {
    AuthError::InvalidToken(reason.into())
}
