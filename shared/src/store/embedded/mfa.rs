//! Second factors: the TOTP secret and recovery codes on the user, and challenges.

use super::*;

/// Spends `code` on `user` if TOTP is on and the code is unspent: a later step than any
/// accepted, or a recovery code still in the set.
fn spend_code_on(user: &mut User, code: &SpentCode) -> bool {
    if !user.mfa.mfa_enabled {
        return false;
    }
    match code {
        SpentCode::Totp { step } if *step > user.mfa.totp_last_step => {
            user.mfa.totp_last_step = *step;
            true
        }
        SpentCode::Totp { .. } => false,
        SpentCode::Recovery { hash } => user.mfa.recovery_codes.remove(hash).is_some(),
        SpentCode::Passkey => true,
    }
}

fn load_challenge(
    txn: &WriteTransaction,
    token_hash: &str,
    now: UnixTime,
) -> Result<Option<MfaChallenge>, StoreError> {
    let challenge: Option<MfaChallenge> =
        get(&txn.open_table(CHALLENGES).map_err(internal)?, token_hash)?;
    Ok(challenge.filter(|c| c.is_live(now)))
}

#[async_trait]
impl MfaStore for EmbeddedStore {
    async fn set_pending_totp(
        &self,
        user_id: Uuid,
        pending: &SealedSecret,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let pending = pending.clone();
        self.write(move |txn| {
            let Some(mut user) = load_user(txn, user_id)?.filter(|u| !u.mfa.mfa_enabled) else {
                return Ok(false);
            };
            user.mfa.totp_pending = Some(pending);
            user.updated_at = now;
            put_user(txn, &user)?;
            Ok(true)
        })
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
        let (pending, hashes) = (pending.clone(), recovery_hashes.to_vec());
        self.write(move |txn| {
            let Some(mut user) = load_user(txn, user_id)?
                .filter(|u| !u.mfa.mfa_enabled && u.mfa.totp_pending.as_ref() == Some(&pending))
            else {
                return Ok(false);
            };
            user.mfa.mfa_enabled = true;
            user.mfa.totp = user.mfa.totp_pending.take();
            user.mfa.totp_last_step = step;
            user.mfa.recovery_codes = hashes.into_iter().map(|h| (h, true)).collect();
            user.updated_at = now;
            put_user(txn, &user)?;
            Ok(true)
        })
        .await
    }

    async fn spend_code(
        &self,
        user_id: Uuid,
        code: &SpentCode,
        along: AlongWithCode<'_>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let code = code.clone();
        let new_recovery = match along {
            AlongWithCode::Nothing => None,
            AlongWithCode::TotpOff => Some(None),
            AlongWithCode::NewRecoveryCodes(hashes) => Some(Some(hashes.to_vec())),
        };
        self.write(move |txn| {
            let Some(mut user) = load_user(txn, user_id)? else {
                return Ok(false);
            };
            if !spend_code_on(&mut user, &code) {
                return Ok(false);
            }
            match new_recovery {
                None => {}
                Some(None) => {
                    user.mfa = crate::model::MfaState {
                        totp_last_step: user.mfa.totp_last_step,
                        ..Default::default()
                    }
                }
                Some(Some(hashes)) => {
                    user.mfa.recovery_codes = hashes.into_iter().map(|h| (h, true)).collect()
                }
            }
            user.updated_at = now;
            put_user(txn, &user)?;
            Ok(true)
        })
        .await
    }

    async fn create_challenge(&self, challenge: &MfaChallenge) -> Result<(), StoreError> {
        let challenge = challenge.clone();
        self.write_lazily(move |txn| {
            let mut challenges = txn.open_table(CHALLENGES).map_err(internal)?;
            challenges
                .insert(
                    challenge.token_hash.as_str(),
                    to_json(&challenge)?.as_slice(),
                )
                .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn challenge(
        &self,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<Option<MfaChallenge>, StoreError> {
        self.read(|txn| {
            let challenge: Option<MfaChallenge> =
                get(&txn.open_table(CHALLENGES).map_err(internal)?, token_hash)?;
            Ok(challenge.filter(|c| c.is_live(now)))
        })
    }

    async fn charge_challenge(&self, token_hash: &str, now: UnixTime) -> Result<bool, StoreError> {
        let token_hash = token_hash.to_owned();
        self.write(move |txn| {
            let Some(mut challenge) = load_challenge(txn, &token_hash, now)? else {
                return Ok(false);
            };
            challenge.failures += 1;
            let mut challenges = txn.open_table(CHALLENGES).map_err(internal)?;
            challenges
                .insert(token_hash.as_str(), to_json(&challenge)?.as_slice())
                .map_err(internal)?;
            Ok(true)
        })
        .await
    }

    async fn pass_challenge(
        &self,
        challenge: &MfaChallenge,
        code: &SpentCode,
        now: UnixTime,
    ) -> Result<ChallengePassed, StoreError> {
        let (challenge, code) = (challenge.clone(), code.clone());
        self.write(move |txn| {
            let stored: Option<MfaChallenge> = get(
                &txn.open_table(CHALLENGES).map_err(internal)?,
                challenge.token_hash.as_str(),
            )?;
            if !stored.is_some_and(|c| c.may_pass(now)) {
                return Ok(ChallengePassed::ChallengeGone);
            }
            let Some(mut user) =
                load_user(txn, challenge.user_id)?.filter(|u| u.session_epoch == challenge.epoch)
            else {
                return Ok(ChallengePassed::ChallengeGone);
            };
            if !spend_code_on(&mut user, &code) {
                return Ok(ChallengePassed::CodeSpent);
            }
            put_user(txn, &user)?;
            let mut challenges = txn.open_table(CHALLENGES).map_err(internal)?;
            challenges
                .remove(challenge.token_hash.as_str())
                .map_err(internal)?;
            Ok(ChallengePassed::Passed)
        })
        .await
    }
}
