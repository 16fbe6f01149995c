//! A model-based test of account recovery across flows: an owner and an attacker who starts
//! with the password and one session (or who registered the owner's address first) act in
//! random order, up to 30 steps. After each step:
//! - no step fails as a 5xx would (`Internal`, `Unavailable`);
//! - once the owner has taken the account back (a reset, or a password change the attacker
//!   did not see), nothing the attacker held before works: sessions, refresh tokens, device
//!   tokens, `mfa_token`s, emailed links;
//! - from then on the account's address is one the owner holds;
//! - the owner's reset works whenever the owner holds the address.
//!
//! Seeded and reproducible: `MODEL_SEED` picks the seed (printed on failure), `MODEL_CASES`
//! the number of sequences.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, TestRng, TestRunner};
use shared::service::AddressChange;
use shared::service::{LinkBase, MfaCode, SignIn, SignedIn};
use shared::{AuthError, Clock, Password, Passwords};
use uuid::Uuid;

use integration_tests::{Backend, Harness};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Party {
    Owner,
    Attacker,
}

/// The addresses in play: the owner holds two mailboxes, the attacker one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mailbox {
    Owner,
    OwnerAlt,
    Attacker,
}

const MAILBOXES: [Mailbox; 3] = [Mailbox::Owner, Mailbox::OwnerAlt, Mailbox::Attacker];

#[derive(Debug, Clone)]
enum Action {
    Verify(Party, usize),
    RequestChange(Party, Mailbox),
    Reset(Party),
    ChangePassword(Party),
    LogoutAll(Party),
    SetupTotp(Party),
    DisableTotp(Party),
    SignIn(Party, bool),
    SpendMfaToken(Party, usize),
    Refresh(Party),
    Wait(i64),
}

fn party() -> impl Strategy<Value = Party> {
    prop_oneof![Just(Party::Owner), Just(Party::Attacker)]
}

fn action() -> impl Strategy<Value = Action> {
    let mailbox = prop_oneof![
        Just(Mailbox::Owner),
        Just(Mailbox::OwnerAlt),
        Just(Mailbox::Attacker)
    ];
    prop_oneof![
        3 => (party(), 0usize..4).prop_map(|(p, i)| Action::Verify(p, i)),
        // The owner moves only to an address of its own; the attacker to any.
        3 => (party(), mailbox).prop_map(|(p, m)| match (p, m) {
            (Party::Owner, Mailbox::Attacker) => Action::RequestChange(p, Mailbox::OwnerAlt),
            _ => Action::RequestChange(p, m),
        }),
        2 => party().prop_map(Action::Reset),
        1 => party().prop_map(Action::ChangePassword),
        1 => party().prop_map(Action::LogoutAll),
        2 => party().prop_map(Action::SetupTotp),
        1 => party().prop_map(Action::DisableTotp),
        3 => (party(), any::<bool>()).prop_map(|(p, d)| Action::SignIn(p, d)),
        1 => (party(), 0usize..3).prop_map(|(p, i)| Action::SpendMfaToken(p, i)),
        1 => party().prop_map(Action::Refresh),
        1 => prop_oneof![Just(61i64), Just(3601)].prop_map(Action::Wait),
    ]
}

/// What one party knows and holds.
#[derive(Default)]
struct Knowledge {
    password: Option<String>,
    /// The current session: user, chain, access and refresh token.
    session: Option<SignedIn>,
    device_token: Option<String>,
    totp_secret: Option<Vec<u8>>,
    mfa_tokens: Vec<String>,
}

/// Everything the attacker ever held, to try once the owner has taken the account back.
#[derive(Default)]
struct Loot {
    access_tokens: BTreeSet<String>,
    refresh_tokens: BTreeSet<String>,
    device_tokens: BTreeSet<String>,
    mfa_tokens: BTreeSet<String>,
    links: BTreeSet<String>,
}

struct World<'h> {
    h: &'h Harness,
    base: LinkBase,
    id: String,
    owner: Knowledge,
    attacker: Knowledge,
    user_id: Uuid,
    /// Set when the owner took the account back: what the attacker held until then.
    recovered: Option<Loot>,
    loot: Loot,
    /// The mail tokens each mailbox has seen, oldest first.
    seen_links: Vec<(Mailbox, String)>,
    resets: u32,
}

fn fatal(e: &AuthError) -> bool {
    matches!(e, AuthError::Internal(_) | AuthError::Unavailable(_))
}

impl<'h> World<'h> {
    fn address(&self, mailbox: Mailbox) -> String {
        let who = match mailbox {
            Mailbox::Owner => "owner",
            Mailbox::OwnerAlt => "owner-alt",
            Mailbox::Attacker => "attacker",
        };
        format!("{who}-{}@example.com", self.id)
    }

    fn holder(&self, address: &str) -> Option<Mailbox> {
        MAILBOXES.into_iter().find(|m| self.address(*m) == address)
    }

    fn knows(&mut self, party: Party) -> &mut Knowledge {
        match party {
            Party::Owner => &mut self.owner,
            Party::Attacker => &mut self.attacker,
        }
    }

    fn holds(party: Party, mailbox: Mailbox) -> bool {
        (mailbox == Mailbox::Attacker) == (party == Party::Attacker)
    }

    fn new_password(&self) -> String {
        format!("{} staple battery {}", Uuid::new_v4().simple(), self.id)
    }

    async fn user(&self) -> shared::model::User {
        self.h
            .store
            .user_by_id(self.user_id)
            .await
            .expect("store")
            .expect("user")
    }

    async fn current_address(&self) -> String {
        self.user().await.email
    }

    fn remember(&mut self, party: Party, signed_in: &SignedIn) {
        if party == Party::Attacker {
            self.loot
                .access_tokens
                .insert(signed_in.access_token.clone());
            self.loot
                .refresh_tokens
                .insert(signed_in.refresh_token.clone());
            if let Some(device) = &signed_in.device_token {
                self.loot.device_tokens.insert(device.clone());
            }
        }
        let knows = self.knows(party);
        if let Some(device) = &signed_in.device_token {
            knows.device_token = Some(device.clone());
        }
        knows.session = Some(signed_in.clone());
    }

    /// Reads every mailbox for new link tokens.
    async fn read_mail(&mut self) {
        for mailbox in MAILBOXES {
            let address = self.address(mailbox);
            for message in self.h.mail_to(&address).await.iter().rev() {
                let Some((_, rest)) = message.text.split_once("#token=") else {
                    continue;
                };
                let token = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if !self.seen_links.iter().any(|(_, t)| *t == token) {
                    if mailbox == Mailbox::Attacker {
                        self.loot.links.insert(token.clone());
                    }
                    self.seen_links.push((mailbox, token));
                }
            }
        }
    }

    fn links_of(&self, party: Party) -> Vec<String> {
        self.seen_links
            .iter()
            .filter(|(m, _)| Self::holds(party, *m))
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// The owner took the account back: what the attacker held until now must be dead.
    fn recovered_now(&mut self) {
        let loot = std::mem::take(&mut self.loot);
        let held = self.recovered.get_or_insert_with(Loot::default);
        held.access_tokens.extend(loot.access_tokens);
        held.refresh_tokens.extend(loot.refresh_tokens);
        held.device_tokens.extend(loot.device_tokens);
        held.mfa_tokens.extend(loot.mfa_tokens);
        held.links.extend(loot.links);
        self.attacker.session = None;
        self.attacker.device_token = None;
        self.attacker.mfa_tokens.clear();
        self.attacker.password = None;
    }

    fn code(&self, secret: &[u8]) -> MfaCode {
        MfaCode::totp(&self.h.totp_code(secret), "code").expect("six digits")
    }

    /// A party's live session, if it has one.
    async fn live_session(&self, party: Party) -> Option<(Uuid, Uuid)> {
        let knows = match party {
            Party::Owner => &self.owner,
            Party::Attacker => &self.attacker,
        };
        let session = knows.session.as_ref()?;
        let principal = self.h.service.authorize(&session.access_token).await.ok()?;
        Some((principal.user_id, principal.chain_id))
    }

    async fn step(&mut self, action: &Action) -> Result<(), AuthError> {
        let h = self.h;
        match action.clone() {
            Action::Wait(seconds) => {
                h.clock.advance(seconds);
                Ok(())
            }
            Action::Verify(party, index) => {
                self.read_mail().await;
                let links = self.links_of(party);
                match links.get(index.min(links.len().saturating_sub(1))) {
                    Some(token) if !links.is_empty() => {
                        h.service.verify_email(token).await.map(drop)
                    }
                    _ => Ok(()),
                }
            }
            Action::RequestChange(party, target) => {
                let Some((user_id, chain)) = self.live_session(party).await else {
                    return Ok(());
                };
                let knows = self.knows(party);
                let Some(password) = knows.password.clone() else {
                    return Ok(());
                };
                let secret = knows.totp_secret.clone();
                h.clock.advance(31);
                let code = secret.map(|s| self.code(&s));
                let to = self.address(target);
                h.service
                    .start_email_change(
                        user_id,
                        chain,
                        AddressChange {
                            new_email: &to,
                            password: &Password::new(password),
                            code: code.as_ref(),
                        },
                        None,
                        &self.base,
                    )
                    .await
            }
            Action::Reset(party) => {
                let address = self.current_address().await;
                let Some(mailbox) = self.holder(&address).filter(|m| Self::holds(party, *m)) else {
                    return Ok(());
                };
                self.read_mail().await;
                let before = self.seen_links.len();
                h.service
                    .forgot_password(&address, None, &self.base)
                    .await?;
                self.read_mail().await;
                if self.seen_links.len() == before {
                    // Three reset mails an hour per address: wait for the next hour.
                    h.clock.advance(3601);
                    h.service
                        .forgot_password(&address, None, &self.base)
                        .await?;
                    self.read_mail().await;
                }
                let token = self
                    .seen_links
                    .iter()
                    .rev()
                    .find(|(m, _)| *m == mailbox)
                    .map(|(_, t)| t.clone())
                    .expect("a reset mail reaches the address's holder");
                let unverified_before = !self.user().await.email_verified;
                let password = self.new_password();
                let reset = h
                    .service
                    .reset_password(&token, &Password::new(&password))
                    .await;
                if party == Party::Owner {
                    reset.as_ref().expect("the owner's reset works");
                    if unverified_before {
                        let user = self.user().await;
                        assert!(
                            !user.mfa.mfa_enabled && user.mfa.recovery_codes.is_empty(),
                            "a reset that proves the mailbox clears what was set before"
                        );
                    }
                    self.resets += 1;
                    self.owner.password = Some(password);
                    self.owner.session = None;
                    self.recovered_now();
                } else if reset.is_ok() {
                    self.attacker.password = Some(password);
                    self.owner.password = None;
                }
                reset
            }
            Action::ChangePassword(party) => {
                let Some((user_id, chain)) = self.live_session(party).await else {
                    return Ok(());
                };
                let Some(current) = self.knows(party).password.clone() else {
                    return Ok(());
                };
                let new = self.new_password();
                let changed = h
                    .service
                    .change_password(
                        user_id,
                        chain,
                        &Password::new(current),
                        &Password::new(&new),
                    )
                    .await;
                if changed.is_ok() {
                    self.knows(party).password = Some(new);
                    match party {
                        // A recovery only while the owner holds the address: an attacker who
                        // already moved the account to its own mailbox can reset it back.
                        Party::Owner => {
                            let address = self.current_address().await;
                            if self
                                .holder(&address)
                                .is_some_and(|m| Self::holds(Party::Owner, m))
                            {
                                self.recovered_now();
                            } else {
                                self.attacker.password = None;
                            }
                        }
                        Party::Attacker => self.owner.password = None,
                    }
                }
                changed
            }
            Action::LogoutAll(party) => {
                let Some((user_id, chain)) = self.live_session(party).await else {
                    return Ok(());
                };
                h.service.logout(user_id, chain, true).await
            }
            Action::SetupTotp(party) => {
                let Some((user_id, chain)) = self.live_session(party).await else {
                    return Ok(());
                };
                let Some(password) = self.knows(party).password.clone() else {
                    return Ok(());
                };
                let enrolment = h
                    .service
                    .totp_setup(user_id, chain, &Password::new(password))
                    .await?;
                let secret = base32::decode(
                    base32::Alphabet::Rfc4648 { padding: false },
                    &enrolment.secret,
                )
                .expect("base32");
                h.clock.advance(31);
                let code = self.code(&secret);
                h.service.totp_confirm(user_id, &code).await?;
                self.knows(party).totp_secret = Some(secret);
                let other = match party {
                    Party::Owner => Party::Attacker,
                    Party::Attacker => Party::Owner,
                };
                self.knows(other).totp_secret = None;
                Ok(())
            }
            Action::DisableTotp(party) => {
                let Some((user_id, chain)) = self.live_session(party).await else {
                    return Ok(());
                };
                let knows = self.knows(party);
                let (Some(password), Some(secret)) =
                    (knows.password.clone(), knows.totp_secret.clone())
                else {
                    return Ok(());
                };
                h.clock.advance(31);
                let code = self.code(&secret);
                h.service
                    .totp_disable(user_id, chain, &Password::new(password), &code)
                    .await
            }
            Action::SignIn(party, with_device) => {
                let address = self.current_address().await;
                let knows = self.knows(party);
                let Some(password) = knows.password.clone() else {
                    return Ok(());
                };
                let device = knows.device_token.clone().filter(|_| with_device);
                let signed = h
                    .service
                    .login_from_device(&address, &Password::new(password), device.as_deref(), None)
                    .await;
                match signed {
                    Ok(SignIn::SignedIn(signed_in)) => {
                        self.remember(party, &signed_in);
                        Ok(())
                    }
                    Ok(SignIn::MfaRequired(required)) => {
                        if party == Party::Attacker {
                            self.loot.mfa_tokens.insert(required.mfa_token.clone());
                        }
                        self.knows(party).mfa_tokens.push(required.mfa_token);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Action::SpendMfaToken(party, index) => {
                let knows = self.knows(party);
                let Some(token) = knows.mfa_tokens.get(index).cloned() else {
                    return Ok(());
                };
                let Some(secret) = knows.totp_secret.clone() else {
                    return Ok(());
                };
                h.clock.advance(31);
                let code = self.code(&secret);
                let finished = h.service.verify_mfa(&token, &code).await;
                if let Ok(signed_in) = &finished {
                    self.remember(party, signed_in);
                }
                finished.map(drop)
            }
            Action::Refresh(party) => {
                let Some(session) = self.knows(party).session.clone() else {
                    return Ok(());
                };
                let refreshed = h.service.refresh(&session.refresh_token).await;
                if let Ok(signed_in) = &refreshed {
                    self.remember(party, signed_in);
                }
                refreshed.map(drop)
            }
        }
    }

    /// Nothing the attacker held when the owner took the account back works.
    async fn check_recovered(&mut self) -> Result<(), String> {
        let Some(held) = &self.recovered else {
            return Ok(());
        };
        let h = self.h;
        for token in &held.access_tokens {
            if h.service.authorize(token).await.is_ok() {
                return Err("an attacker's access token still works".into());
            }
        }
        for token in &held.refresh_tokens {
            if h.service.refresh(token).await.is_ok() {
                return Err("an attacker's refresh token still works".into());
            }
        }
        let user = h
            .store
            .user_by_id(self.user_id)
            .await
            .map_err(|e| e.to_string())?
            .expect("user");
        let now = h.clock.now();
        for token in &held.device_tokens {
            let device = h
                .store
                .device(&shared::tokens::token_hash(token), now)
                .await
                .map_err(|e| e.to_string())?;
            if device.is_some_and(|d| d.vouches_for(&user, now)) {
                return Err("an attacker's device token still vouches".into());
            }
        }
        for token in &held.mfa_tokens {
            if let Some(secret) = &self.attacker.totp_secret {
                h.clock.advance(31);
                let code = MfaCode::totp(&h.totp_code(secret), "code").unwrap();
                if h.service.verify_mfa(token, &code).await.is_ok() {
                    return Err("an attacker's mfa_token still works".into());
                }
            }
        }
        for token in &held.links {
            if h.service.verify_email(token).await.is_ok() {
                return Err("a link the attacker held still works".into());
            }
        }
        let address = self.current_address().await;
        if self.holder(&address) == Some(Mailbox::Attacker) {
            return Err(format!(
                "the account moved to the attacker's address {address}"
            ));
        }
        Ok(())
    }
}

/// Runs one sequence; `Err` names the step that broke an invariant. `Ok(true)` when the owner
/// took the account back from an attacker who held something.
async fn run_sequence(h: &Harness, pre_hijack: bool, actions: &[Action]) -> Result<bool, String> {
    let mut world = World {
        h,
        base: LinkBase("https://app.example.com".into()),
        id: Uuid::new_v4().simple().to_string()[..12].to_owned(),
        owner: Knowledge::default(),
        attacker: Knowledge::default(),
        user_id: Uuid::nil(),
        recovered: None,
        loot: Loot::default(),
        seen_links: Vec::new(),
        resets: 0,
    };
    let owner_address = world.address(Mailbox::Owner);
    let password = world.new_password();
    // The attacker starts with the password and one session: either it registered the owner's
    // address first (pre-hijacking), or it has the owner's password.
    let registered = h
        .service
        .register(&owner_address, &Password::new(&password), None)
        .await
        .map_err(|e| format!("register: {e}"))?;
    world.user_id = registered.user.id;
    world.attacker.password = Some(password.clone());
    if pre_hijack {
        world.remember(Party::Attacker, &registered);
    } else {
        world.owner.password = Some(password.clone());
        world.remember(Party::Owner, &registered);
        match h
            .service
            .login(&owner_address, &Password::new(&password), None)
            .await
            .map_err(|e| format!("attacker's login: {e}"))?
        {
            SignIn::SignedIn(signed_in) => world.remember(Party::Attacker, &signed_in),
            SignIn::MfaRequired(_) => unreachable!("TOTP is off at first"),
        }
    }
    for (index, action) in actions.iter().enumerate() {
        if let Err(e) = world.step(action).await
            && fatal(&e)
        {
            return Err(format!(
                "step {index} {action:?} answered as a 5xx would: {e}"
            ));
        }
        world.read_mail().await;
        world
            .check_recovered()
            .await
            .map_err(|broken| format!("after step {index} {action:?}: {broken}"))?;
    }
    Ok(world.resets > 0 && world.recovered.is_some())
}

fn sequences() -> impl Strategy<Value = (bool, Vec<Action>)> {
    (any::<bool>(), prop::collection::vec(action(), 1..=30))
}

/// Runs `cases` seeded sequences on `backend`; the seed comes from `MODEL_SEED` or `seed`.
fn run_model(backend: Backend, cases: u32, seed: u64) {
    let seed = std::env::var("MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(seed);
    let cases = std::env::var("MODEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let recoveries = std::cell::Cell::new(0u32);
    let result = runner.run(&sequences(), |(pre_hijack, actions)| {
        // A store of its own for each sequence; Argon2id at its smallest, since this test is
        // about the flows, not the hashing.
        let recovered = runtime
            .block_on(async {
                let harness = Harness::new(backend)
                    .await
                    .with_passwords(Passwords::with_params(8, 1, 1).unwrap());
                run_sequence(&harness, pre_hijack, &actions).await
            })
            .map_err(TestCaseError::fail)?;
        recoveries.set(recoveries.get() + u32::from(recovered));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{backend:?}, MODEL_SEED={seed} MODEL_CASES={cases}: {e}");
    }
    // Not vacuous: a good share of the sequences had the owner take the account back.
    println!(
        "{backend:?}: {cases} sequences, {} with a recovery",
        recoveries.get()
    );
    assert!(
        recoveries.get() * 5 >= cases,
        "only {} of {cases} sequences had a recovery to check",
        recoveries.get()
    );
}

#[test]
fn owner_and_attacker_model_embedded() {
    run_model(Backend::Embedded, 2000, 0x5eed_0019);
}

#[test]
fn owner_and_attacker_model_dynamodb() {
    run_model(Backend::Dynamo, 300, 0x5eed_0019);
}
