//! A soft passkey for the tests: webauthn-authenticator-rs's software authenticator, driven the
//! way a browser drives one (`navigator.credentials.create` and `.get` with the options our API
//! gives, answered as `PublicKeyCredential.toJSON()`).
//!
//! The soft key keeps no discoverable credentials, so for a ceremony that lists none (a sign-in
//! without an email) it is handed its own credential id, as a browser's own authenticator
//! would find it; its answer then carries no user handle.

use serde_json::{Value, json};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_core::proto::{CreationChallengeResponse, RequestChallengeResponse};

pub struct SoftKey {
    authenticator: SoftPasskey,
    origin: Url,
    /// Whether the key verifies its user (asks for a PIN), as the options allow.
    verifies_user: bool,
    /// The credential it made, base64url.
    pub credential_id: Option<String>,
}

impl SoftKey {
    /// A key on the tests' page origin ([`crate::PASSKEY_ORIGIN`]).
    pub fn new(verifies_user: bool) -> Self {
        Self::on(crate::PASSKEY_ORIGIN, verifies_user)
    }

    /// A key used from the page at `origin`.
    pub fn on(origin: &str, verifies_user: bool) -> Self {
        Self {
            // `true`: the soft key may claim user verification; the options decide whether it
            // is asked for.
            authenticator: SoftPasskey::new(true),
            origin: Url::parse(origin).expect("an origin"),
            verifies_user,
            credential_id: None,
        }
    }

    fn user_verification(&self, options: &mut Value, at: &str) {
        if self.verifies_user {
            options[at] = json!("required");
        } else {
            options[at] = json!("discouraged");
        }
    }

    /// `navigator.credentials.create({publicKey})`, answered as `toJSON()` gives it.
    pub fn create(&mut self, public_key: &Value) -> Value {
        let mut options = public_key.clone();
        self.user_verification(&mut options["authenticatorSelection"], "userVerification");
        let options: CreationChallengeResponse =
            serde_json::from_value(json!({ "publicKey": options })).expect("creation options");
        let credential = self
            .authenticator
            .do_registration(self.origin.clone(), options)
            .expect("the soft key registers");
        let answer = serde_json::to_value(&credential).expect("a credential");
        self.credential_id = answer["id"].as_str().map(str::to_owned);
        answer
    }

    /// `navigator.credentials.get({publicKey})`, answered as `toJSON()` gives it.
    pub fn get(&mut self, public_key: &Value) -> Value {
        let origin = self.origin.clone();
        self.get_at(origin, public_key)
    }

    /// [`Self::get`] from a page at another origin (the key itself checks only that the RP ID
    /// is a suffix of the origin's host).
    pub fn get_from(&mut self, origin: &str, public_key: &Value) -> Value {
        self.get_at(Url::parse(origin).expect("an origin"), public_key)
    }

    fn get_at(&mut self, origin: Url, public_key: &Value) -> Value {
        let mut options = public_key.clone();
        self.user_verification(&mut options, "userVerification");
        let listed = options["allowCredentials"]
            .as_array()
            .is_some_and(|list| !list.is_empty());
        if !listed {
            let id = self.credential_id.clone().expect("a credential made first");
            options["allowCredentials"] = json!([{"type": "public-key", "id": id}]);
        }
        let options: RequestChallengeResponse =
            serde_json::from_value(json!({ "publicKey": options })).expect("request options");
        let assertion = self
            .authenticator
            .do_authentication(origin, options)
            .expect("the soft key signs");
        serde_json::to_value(&assertion).expect("an assertion")
    }
}
