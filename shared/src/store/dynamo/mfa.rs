//! Second factors: the TOTP secret and recovery codes on the user's item, and `MFA#<hash>`
//! challenges in the sessions table. A code is spent by the same conditional write that
//! checks it, so it works once.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use uuid::Uuid;

use super::DynamoStore;
use super::items::{boolean, internal, mfa_key, n, s, to_item, user_key};
use super::write::{Expression, Transaction};
use crate::clock::UnixTime;
use crate::model::{MfaChallenge, SealedSecret};
use crate::store::{AlongWithCode, ChallengePassed, MfaStore, SpentCode, StoreError};

/// The clauses that spend a one-time code on the user's item: a TOTP step only if it is later
/// than every step accepted before, a recovery code only if it is still in the set (and it
/// goes, unless `whole_set_changes`: an update that replaces or removes the whole set must not
/// name one of its entries too).
fn spend_code_expression(code: &SpentCode, whole_set_changes: bool) -> Expression {
    let expression = Expression::new()
        .when("mfa_enabled = :true")
        .value(":true", boolean(true));
    match code {
        SpentCode::Totp { step } => expression
            .set("totp_last_step = :step")
            .when("attribute_not_exists(totp_last_step) OR totp_last_step < :step")
            .value(":step", n(step)),
        SpentCode::Passkey => expression,
        SpentCode::Recovery { hash } => {
            let expression = expression
                .when("attribute_exists(recovery_codes.#code)")
                .name("#code", hash);
            if whole_set_changes {
                expression
            } else {
                expression.remove("recovery_codes.#code")
            }
        }
    }
}

fn recovery_map(hashes: &[String]) -> AttributeValue {
    AttributeValue::M(hashes.iter().map(|h| (h.clone(), boolean(true))).collect())
}

#[async_trait]
impl MfaStore for DynamoStore {
    async fn set_pending_totp(
        &self,
        user_id: Uuid,
        pending: &SealedSecret,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let sealed = serde_dynamo::to_attribute_value(pending).map_err(internal)?;
        let expression = Expression::new()
            .set("totp_pending = :pending")
            .set("updated_at = :now")
            .when("attribute_exists(pk)")
            .when("attribute_not_exists(mfa_enabled) OR mfa_enabled = :false")
            .values([
                (":pending", sealed),
                (":now", n(now)),
                (":false", boolean(false)),
            ]);
        self.update_if(&self.users_table, user_key(user_id), expression)
            .await
    }

    async fn enable_totp(
        &self,
        user_id: Uuid,
        pending: &SealedSecret,
        step: u64,
        recovery_hashes: &[String],
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let sealed = serde_dynamo::to_attribute_value(pending).map_err(internal)?;
        let expression = Expression::new()
            .set("mfa_enabled = :true")
            .set("totp = :secret")
            .set("totp_last_step = :step")
            .set("recovery_codes = :codes")
            .set("updated_at = :now")
            .remove("totp_pending")
            .when("totp_pending.ciphertext = :ciphertext")
            .when("attribute_not_exists(mfa_enabled) OR mfa_enabled = :false")
            .values([
                (":true", boolean(true)),
                (":false", boolean(false)),
                (":secret", sealed),
                (":step", n(step)),
                (":codes", recovery_map(recovery_hashes)),
                (":now", n(now)),
                (":ciphertext", s(&pending.ciphertext)),
            ]);
        self.update_if(&self.users_table, user_key(user_id), expression)
            .await
    }

    async fn spend_code(
        &self,
        user_id: Uuid,
        code: &SpentCode,
        along: AlongWithCode<'_>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let whole_set_changes = along != AlongWithCode::Nothing;
        let expression = spend_code_expression(code, whole_set_changes)
            .set("updated_at = :now")
            .value(":now", n(now));
        let expression = match along {
            AlongWithCode::Nothing => expression,
            // Turning TOTP off: the secret and every code go.
            AlongWithCode::TotpOff => expression
                .set("mfa_enabled = :false")
                .value(":false", boolean(false))
                .remove("totp")
                .remove("totp_pending")
                .remove("recovery_codes"),
            AlongWithCode::NewRecoveryCodes(hashes) => expression
                .set("recovery_codes = :codes")
                .value(":codes", recovery_map(hashes)),
        };
        self.update_if(&self.users_table, user_key(user_id), expression)
            .await
    }

    async fn create_challenge(&self, challenge: &MfaChallenge) -> Result<(), StoreError> {
        self.put_new_session_item(to_item(challenge, mfa_key(&challenge.token_hash))?)
            .await
    }

    async fn challenge(
        &self,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<Option<MfaChallenge>, StoreError> {
        let challenge: Option<MfaChallenge> = self
            .get_item(&self.sessions_table, mfa_key(token_hash))
            .await?;
        Ok(challenge.filter(|c| c.is_live(now)))
    }

    async fn charge_challenge(&self, token_hash: &str, now: UnixTime) -> Result<bool, StoreError> {
        let charge = Expression::new()
            .set("failures = failures + :one")
            .when("attribute_exists(pk) AND expires_at > :now AND failures < :max")
            .values([
                (":one", n(1)),
                (":now", n(now)),
                (":max", n(MfaChallenge::MAX_FAILURES)),
            ]);
        self.update_if(&self.sessions_table, mfa_key(token_hash), charge)
            .await
    }

    async fn pass_challenge(
        &self,
        challenge: &MfaChallenge,
        code: &SpentCode,
        now: UnixTime,
    ) -> Result<ChallengePassed, StoreError> {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Part {
            Challenge,
            Code,
        }
        // Its attempts are counted before the code is checked: this one is among them.
        let spend_challenge = Expression::new()
            .when("attribute_exists(pk) AND expires_at > :now AND failures <= :max")
            .values([(":now", n(now)), (":max", n(MfaChallenge::MAX_FAILURES))]);
        let spend_code = spend_code_expression(code, false)
            .when("attribute_exists(pk)")
            .when("session_epoch = :epoch")
            .value(":epoch", n(challenge.epoch));
        let transaction = Transaction::new()
            .with(
                Part::Challenge,
                spend_challenge.delete(&self.sessions_table, mfa_key(&challenge.token_hash))?,
            )
            .with(
                Part::Code,
                match code {
                    // Nothing to spend on the user: its ceremony is spent already.
                    SpentCode::Passkey => {
                        spend_code.check(&self.users_table, user_key(challenge.user_id))?
                    }
                    _ => spend_code.update(&self.users_table, user_key(challenge.user_id))?,
                },
            );
        match self.transact(transaction, Uuid::new_v4()).await? {
            Ok(()) => Ok(ChallengePassed::Passed),
            Err(cancelled) if cancelled.failed(Part::Challenge) => {
                Ok(ChallengePassed::ChallengeGone)
            }
            Err(cancelled) if cancelled.failed(Part::Code) => Ok(ChallengePassed::CodeSpent),
            Err(cancelled) => Err(StoreError::Internal(format!(
                "pass_challenge cancelled: {cancelled:?}"
            ))),
        }
    }
}
