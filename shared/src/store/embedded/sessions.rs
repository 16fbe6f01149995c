//! Sessions (chains) and the tokens issued in them; rotation in one write transaction.

use super::*;

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn start_chain(
        &self,
        chain: &SessionChain,
        access: &IssuedToken,
        refresh: &IssuedToken,
    ) -> Result<(), StoreError> {
        let (chain, access, refresh) = (chain.clone(), access.clone(), refresh.clone());
        self.write_lazily(move |txn| {
            put_chain(txn, &chain)?;
            let mut index = txn.open_multimap_table(USER_CHAINS).map_err(internal)?;
            index
                .insert(chain.user_id.as_u128(), chain.chain_id.as_u128())
                .map_err(internal)?;
            put_session(txn, &access)?;
            put_session(txn, &refresh)
        })
        .await
    }

    async fn snapshot(
        &self,
        user_id: Uuid,
        chain_id: Uuid,
        token_id: Uuid,
        now: UnixTime,
    ) -> Result<SessionSnapshot, StoreError> {
        self.read(|txn| {
            let user: Option<User> =
                get(&txn.open_table(USERS).map_err(internal)?, user_id.as_u128())?;
            let chain: Option<SessionChain> = get(
                &txn.open_table(CHAINS).map_err(internal)?,
                chain_id.as_u128(),
            )?;
            let token: Option<IssuedToken> = get(
                &txn.open_table(TOKENS).map_err(internal)?,
                token_id.as_u128(),
            )?;
            Ok(SessionSnapshot {
                user,
                chain: chain.filter(|c| c.expires_at > now),
                token: token.filter(|t| t.expires_at > now),
            })
        })
    }

    async fn rotate(&self, request: RotationRequest<'_>) -> Result<RotateOutcome, StoreError> {
        let spent_id = request.spent.token_id;
        let chain_id = request.spent.chain_id;
        let expected_hash = request.spent.token_hash.clone();
        let rotation = request.rotation.clone();
        let (access, refresh, now) = (request.access.clone(), request.refresh.clone(), request.now);
        let epoch = request.epoch;
        self.write(move |txn| {
            let tokens = txn.open_table(TOKENS).map_err(internal)?;
            let spent: Option<IssuedToken> = get(&tokens, spent_id.as_u128())?;
            drop(tokens);
            let Some(mut spent) =
                spent.filter(|s| s.expires_at > now && s.token_hash == expected_hash)
            else {
                return Ok(RotateOutcome::AlreadyRotated);
            };
            if spent.rotation.is_some() {
                return Ok(RotateOutcome::AlreadyRotated);
            }
            let Some(mut chain) =
                load_chain(txn, chain_id)?.filter(|c| c.revoked_at.is_none() && c.expires_at > now)
            else {
                return Ok(RotateOutcome::ChainGone);
            };
            if !load_user(txn, spent.user_id)?
                .is_some_and(|u| u.is_active && u.session_epoch == epoch)
            {
                return Ok(RotateOutcome::ChainGone);
            }
            spent.rotation = Some(rotation);
            spent.last_used_at = Some(now);
            put_session(txn, &spent)?;
            put_session(txn, &access)?;
            put_session(txn, &refresh)?;
            chain.expires_at = refresh.expires_at;
            chain.last_used_at = now;
            put_chain(txn, &chain)?;
            Ok(RotateOutcome::Rotated)
        })
        .await
    }

    async fn revoke_chain(
        &self,
        user_id: Uuid,
        chain_id: Uuid,
        epoch: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.write(move |txn| {
            let Some(mut chain) = load_chain(txn, chain_id)? else {
                return Ok(false);
            };
            let live = chain.user_id == user_id
                && chain.epoch == epoch
                && chain.revoked_at.is_none()
                && chain.expires_at > now;
            if !live {
                return Ok(false);
            }
            chain.revoked_at = Some(now);
            put_chain(txn, &chain)?;
            Ok(true)
        })
        .await
    }

    async fn chains_of(
        &self,
        user_id: Uuid,
        now: UnixTime,
    ) -> Result<Vec<SessionChain>, StoreError> {
        self.read(|txn| {
            let index = txn.open_multimap_table(USER_CHAINS).map_err(internal)?;
            let chains = txn.open_table(CHAINS).map_err(internal)?;
            let mut live = Vec::new();
            for chain_id in index.get(user_id.as_u128()).map_err(internal)? {
                let chain_id = chain_id.map_err(internal)?.value();
                if let Some(chain) = get::<_, SessionChain>(&chains, chain_id)?
                    && chain.revoked_at.is_none()
                    && chain.expires_at > now
                {
                    live.push(chain);
                }
            }
            Ok(live)
        })
    }

    async fn touch_chain(
        &self,
        chain_id: Uuid,
        now: UnixTime,
        min_interval: i64,
    ) -> Result<(), StoreError> {
        self.write_lazily(move |txn| {
            if let Some(mut chain) = load_chain(txn, chain_id)?
                && now - chain.last_used_at >= min_interval
            {
                chain.last_used_at = now;
                put_chain(txn, &chain)?;
            }
            Ok(())
        })
        .await
    }
}
