//! Response bodies of the API (docs/api.md). Timestamps are RFC 3339; `password_hash` has no field here,
//! so it cannot leave the service.

use serde::Serialize;
use uuid::Uuid;

use crate::clock::rfc3339;
use crate::model::User;
use crate::service::{Ceremony, MfaRequired, PasskeyInfo, SessionInfo, SignedIn, TotpEnrolment};
use crate::tokens::external::ExternalIdentity;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub mfa_enabled: bool,
    /// With TOTP on: how many recovery codes are left unused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes_left: Option<usize>,
    pub is_active: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            email_verified: user.email_verified,
            mfa_enabled: user.mfa.mfa_enabled,
            recovery_codes_left: user
                .mfa
                .mfa_enabled
                .then_some(user.mfa.recovery_codes.len()),
            is_active: user.is_active,
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
        }
    }
}

/// `{"user": User}`, the body of `GET /auth/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserWrapper {
    pub user: UserView,
}

/// `GET /auth/me` for a user of a trusted external issuer: what its token says, marked as such.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExternalMe {
    pub user: ExternalUserView,
    pub issuer: String,
    /// Always true: the user is known from the token's claims, not from this service's store.
    pub external: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExternalUserView {
    pub id: String,
    pub email: String,
}

impl From<&ExternalIdentity> for ExternalMe {
    fn from(identity: &ExternalIdentity) -> Self {
        Self {
            user: ExternalUserView {
                id: identity.user_id.clone(),
                email: identity.user_email.clone(),
            },
            issuer: identity.issuer.clone(),
            external: true,
        }
    }
}

/// The body of register, login and refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenResponse {
    pub token_type: &'static str,
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: String,
    pub refresh_expires_in: i64,
    pub user: UserView,
    /// Sign-ins only (see "Trusted devices"); a refresh answers none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

impl From<&SignedIn> for TokenResponse {
    fn from(signed_in: &SignedIn) -> Self {
        Self {
            token_type: "Bearer",
            access_token: signed_in.access_token.clone(),
            expires_in: signed_in.expires_in,
            refresh_token: signed_in.refresh_token.clone(),
            refresh_expires_in: signed_in.refresh_expires_in,
            user: UserView::from(&signed_in.user),
            device_token: signed_in.device_token.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionView {
    pub id: Uuid,
    pub created_at: String,
    pub last_used_at: String,
    pub expires_at: String,
    pub current: bool,
}

/// `{"sessions": [...]}`, the body of `GET /auth/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionsView {
    pub sessions: Vec<SessionView>,
}

impl From<&[SessionInfo]> for SessionsView {
    fn from(sessions: &[SessionInfo]) -> Self {
        Self {
            sessions: sessions
                .iter()
                .map(|s| SessionView {
                    id: s.id,
                    created_at: rfc3339(s.created_at),
                    last_used_at: rfc3339(s.last_used_at),
                    expires_at: rfc3339(s.expires_at),
                    current: s.current,
                })
                .collect(),
        }
    }
}

/// The answer to a right password when a second factor is needed: no session yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MfaRequiredView {
    pub mfa_required: bool,
    pub mfa_token: String,
    pub expires_in: i64,
    pub methods: Vec<&'static str>,
}

impl From<&MfaRequired> for MfaRequiredView {
    fn from(required: &MfaRequired) -> Self {
        Self {
            mfa_required: true,
            mfa_token: required.mfa_token.clone(),
            expires_in: required.expires_in,
            methods: required.methods.clone(),
        }
    }
}

/// One passkey, as `GET /auth/passkeys` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub backed_up: bool,
    pub transports: Vec<String>,
}

impl From<&PasskeyInfo> for PasskeyView {
    fn from(passkey: &PasskeyInfo) -> Self {
        Self {
            id: passkey.id.clone(),
            name: passkey.name.clone(),
            created_at: rfc3339(passkey.created_at),
            last_used_at: passkey.last_used_at.map(rfc3339),
            backed_up: passkey.backed_up,
            transports: passkey.transports.clone(),
        }
    }
}

/// `{"passkey": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PasskeyWrapper {
    pub passkey: PasskeyView,
}

/// `{"passkeys": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PasskeysView {
    pub passkeys: Vec<PasskeyView>,
}

/// The first call of a ceremony: `{"ceremony_id", "publicKey"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CeremonyView {
    pub ceremony_id: String,
    #[serde(rename = "publicKey")]
    pub public_key: serde_json::Value,
}

impl From<Ceremony> for CeremonyView {
    fn from(ceremony: Ceremony) -> Self {
        Self {
            ceremony_id: ceremony.ceremony_id,
            public_key: ceremony.public_key,
        }
    }
}

/// `POST /auth/mfa/totp/setup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnrolmentView {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

impl From<&TotpEnrolment> for EnrolmentView {
    fn from(enrolment: &TotpEnrolment) -> Self {
        Self {
            secret: enrolment.secret.clone(),
            otpauth_uri: enrolment.otpauth_uri.clone(),
            qr_svg: enrolment.qr_svg.clone(),
        }
    }
}

/// The recovery codes, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveryCodesView {
    pub recovery_codes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CurrentLinks, MfaState};

    #[test]
    fn the_recovery_codes_left_are_shown_only_with_totp_on() {
        let mut user = User {
            id: Uuid::nil(),
            email: "ada@example.com".into(),
            password_hash: String::new(),
            created_at: 0,
            updated_at: 0,
            is_active: true,
            session_epoch: 0,
            email_verified: true,
            links: CurrentLinks::default(),
            mfa: MfaState::default(),
            passkeys: Default::default(),
            identities: Default::default(),
            roles: Vec::new(),
        };
        let json = serde_json::to_value(UserView::from(&user)).unwrap();
        assert!(json.get("recovery_codes_left").is_none(), "{json}");
        user.mfa.mfa_enabled = true;
        user.mfa.recovery_codes = (0..7).map(|i| (format!("code{i}"), true)).collect();
        let json = serde_json::to_value(UserView::from(&user)).unwrap();
        assert_eq!(json["recovery_codes_left"], 7);
    }
}
