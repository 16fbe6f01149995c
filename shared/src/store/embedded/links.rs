//! Emailed links, spent together with the user update they allow.

use super::*;

/// The user whose current link of its kind `link` is, if it is live and the user's address is
/// still `email`; `None` when it was spent, superseded or has expired.
fn link_holder(
    txn: &WriteTransaction,
    link: &EmailLink,
    email: &str,
    now: UnixTime,
) -> Result<Option<User>, StoreError> {
    let stored: Option<EmailLink> = get(
        &txn.open_table(LINKS).map_err(internal)?,
        link.token_hash.as_str(),
    )?;
    if stored.is_none_or(|l| l.expires_at <= now) {
        return Ok(None);
    }
    Ok(load_user(txn, link.user_id)?.filter(|user| {
        user.links.current(link.kind) == Some(link.token_hash.as_str())
            && user.email == email
            && user.session_epoch == link.epoch
    }))
}

/// Spends `link`: it works once. `user` is its holder, who no longer has a current link of
/// that kind.
fn spend_link(
    txn: &WriteTransaction,
    link: &EmailLink,
    user: &mut User,
    now: UnixTime,
) -> Result<(), StoreError> {
    let mut links = txn.open_table(LINKS).map_err(internal)?;
    links.remove(link.token_hash.as_str()).map_err(internal)?;
    *user.links.slot(link.kind) = None;
    user.updated_at = now;
    Ok(())
}

#[async_trait]
impl LinkStore for EmbeddedStore {
    async fn issue_link(&self, link: &EmailLink) -> Result<bool, StoreError> {
        let link = link.clone();
        self.write(move |txn| {
            let Some(mut user) =
                load_user(txn, link.user_id)?.filter(|u| u.session_epoch == link.epoch)
            else {
                return Ok(false);
            };
            *user.links.slot(link.kind) = Some(link.token_hash.clone());
            put_user(txn, &user)?;
            let mut links = txn.open_table(LINKS).map_err(internal)?;
            links
                .insert(link.token_hash.as_str(), to_json(&link)?.as_slice())
                .map_err(internal)?;
            Ok(true)
        })
        .await
    }

    async fn link(&self, token_hash: &str, now: UnixTime) -> Result<Option<EmailLink>, StoreError> {
        self.read(|txn| {
            let link: Option<EmailLink> =
                get(&txn.open_table(LINKS).map_err(internal)?, token_hash)?;
            Ok(link.filter(|l| l.expires_at > now))
        })
    }

    async fn spend_verification(
        &self,
        link: &EmailLink,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let link = link.clone();
        self.write(move |txn| {
            let Some(mut user) = link_holder(txn, &link, &link.email, now)? else {
                return Ok(false);
            };
            spend_link(txn, &link, &mut user, now)?;
            user.email_verified = true;
            put_user(txn, &user)?;
            Ok(true)
        })
        .await
    }

    async fn spend_reset(
        &self,
        link: &EmailLink,
        password_hash: &str,
        wipe_unproven: bool,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let (link, password_hash) = (link.clone(), password_hash.to_owned());
        self.write(move |txn| {
            let Some(mut user) = link_holder(txn, &link, &link.email, now)? else {
                return Ok(false);
            };
            spend_link(txn, &link, &mut user, now)?;
            user.password_hash = password_hash;
            user.email_verified = true;
            // A new session epoch ends every session in the same write.
            user.session_epoch += 1;
            user.links = Default::default();
            if wipe_unproven {
                user.mfa = Default::default();
            }
            put_user(txn, &user)?;
            Ok(true)
        })
        .await
    }

    async fn spend_email_change(
        &self,
        link: &EmailLink,
        old_email: &str,
        now: UnixTime,
    ) -> Result<EmailChange, StoreError> {
        let (link, old_email) = (link.clone(), old_email.to_owned());
        self.write(move |txn| {
            let Some(mut user) = link_holder(txn, &link, &old_email, now)? else {
                return Ok(EmailChange::Stale);
            };
            let mut emails = txn.open_table(EMAILS).map_err(internal)?;
            if emails
                .get(old_email.as_str())
                .map_err(internal)?
                .map(|g| g.value())
                != Some(user.id.as_u128())
            {
                return Ok(EmailChange::Stale);
            }
            // Checked before anything is written: a taken address changes nothing.
            if emails.get(link.email.as_str()).map_err(internal)?.is_some() {
                return Ok(EmailChange::Taken);
            }
            spend_link(txn, &link, &mut user, now)?;
            emails.remove(old_email.as_str()).map_err(internal)?;
            emails
                .insert(link.email.as_str(), user.id.as_u128())
                .map_err(internal)?;
            user.email = link.email.clone();
            user.email_verified = true;
            user.links = Default::default();
            // The epoch moves; the session that asked moves with it if it is still live.
            let epoch = user.session_epoch;
            user.session_epoch = epoch + 1;
            put_user(txn, &user)?;
            if let Some(mut chain) = link
                .keep_chain
                .map(|chain_id| load_chain(txn, chain_id))
                .transpose()?
                .flatten()
                .filter(|c| {
                    c.user_id == user.id
                        && c.epoch == epoch
                        && c.revoked_at.is_none()
                        && c.expires_at > now
                })
            {
                chain.epoch = epoch + 1;
                put_chain(txn, &chain)?;
            }
            Ok(EmailChange::Changed)
        })
        .await
    }
}
