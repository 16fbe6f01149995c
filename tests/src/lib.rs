//! Test support: a service on a real store (DynamoDB Local or the embedded file store), a clock
//! the test moves, and a macro that runs one test body against both stores.

mod counting;
pub mod fake_oidc;
pub mod iam;
pub mod jwks_server;
pub mod local;
pub mod oidc;
pub mod openapi;
pub mod passkeys;
pub mod rie;
pub mod round_trips;
pub mod template;

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use lambda_http::{Body, Response};
use local_api::mail::{FolderMailer, StoredMessage};
use shared::mail::ses::SesMailer;
use shared::routes::{HandlerState, ROUTES};
use shared::store::Store;
use shared::tokens::JwkSet;
use shared::{
    AuthService, Config, Defaults, DynamoStore, EmbeddedStore, KeyRing, ManualClock, Passwords,
    SigningKey,
};
use tempfile::TempDir;

pub use counting::{CountingStore, StoreCalls};

/// Which backend a harness runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Dynamo,
    Embedded,
}

/// The password of every test user: strong enough for the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// Where the links of test mail point.
pub fn app_links() -> shared::service::LinkBase {
    shared::service::LinkBase("https://app.example.com".into())
}

/// A service wired to a fresh, empty store of its own.
pub struct Harness {
    pub backend: Backend,
    pub service: Arc<AuthService>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub config: Arc<Config>,
    pub keys: Arc<KeyRing>,
    /// Every call the service made to the store.
    pub calls: Arc<StoreCalls>,
    /// Where the service's mail goes (the local server's mail folder).
    pub mail: FolderMailer,
    /// The lifecycle events kept (`GET /_dev/events`), with [`Harness::with_dev_events`].
    pub dev_events: Option<local_api::lifecycle::FolderEvents>,
    _mail_dir: TempDir,
    /// The store the service sees: the backend behind the call counter.
    counted: Arc<dyn Store>,
    dynamo: Option<(Client, Arc<Config>)>,
    embedded: Option<Arc<EmbeddedStore>>,
    _dir: Option<TempDir>,
}

/// The configuration tests run with: the documented defaults (docs/api.md) and tables of their own.
pub fn test_config() -> Config {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let defaults = Defaults {
        users_table: Some(format!("users-{id}")),
        sessions_table: Some(format!("sessions-{id}")),
        history_table: Some(format!("history-{id}")),
        issuer: Some("https://auth.test.example".into()),
        audience: Some("https://api.test.example".into()),
        ..Defaults::default()
    };
    let mut config = Config::from_lookup(|_| None, &defaults).expect("test configuration is valid");
    config.webauthn = Some(shared::config::WebauthnSettings {
        rp_id: PASSKEY_RP_ID.into(),
        origins: vec![url::Url::parse(PASSKEY_ORIGIN).expect("an origin")],
    });
    config
}

/// playwright-core for the browser tests, beside Debian's Chromium; fails loudly without them.
pub fn playwright_core() -> std::path::PathBuf {
    let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let playwright = repository.join(".tools/browser/node_modules/playwright-core");
    assert!(
        playwright.join("package.json").exists()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium or playwright-core is missing: run the tests with scripts/test, which \
         installs both (scripts/browser-tools)"
    );
    playwright
}

/// The relying party of the tests' passkeys, and the page origin their ceremonies run on.
pub const PASSKEY_RP_ID: &str = "auth.test.example";
pub const PASSKEY_ORIGIN: &str = "https://auth.test.example";

/// What a TOTP enrolment left the test with.
pub struct Enrolled {
    pub secret: Vec<u8>,
    pub recovery_codes: Vec<String>,
}

/// A fresh key for sealing TOTP secrets.
pub fn test_mfa_keys() -> Arc<shared::mfa::MfaKeys> {
    let entry = shared::mfa::MfaKeys::generate_entry("test-key").expect("a key");
    Arc::new(shared::mfa::MfaKeys::parse(&entry).expect("a key"))
}

/// The sender of the mail tests send through SES.
pub const SES_SENDER: &str = "no-reply@auth.test.example";

/// The SES v2 emulator the test command started. Tests that need it fail loudly without it.
pub fn ses_emulator_url() -> String {
    std::env::var("AWS_ENDPOINT_URL_SESV2").unwrap_or_else(|_| {
        panic!(
            "the SES v2 emulator is not running: AWS_ENDPOINT_URL_SESV2 is unset. \
             Run the tests with scripts/test, which installs and starts it."
        )
    })
}

/// What the SES v2 emulator received for `to`, oldest first, waiting up to `patience` for at
/// least `count` messages (mail goes out after the answer).
pub async fn ses_mail_to(
    to: &str,
    count: usize,
    patience: std::time::Duration,
) -> Vec<serde_json::Value> {
    let url = format!("{}/store", ses_emulator_url());
    let started = std::time::Instant::now();
    loop {
        let store: serde_json::Value =
            serde_json::from_slice(&local::http_get(&url).await).expect("JSON from the emulator");
        let mail: Vec<serde_json::Value> = store["emails"]
            .as_array()
            .expect("the emulator's store lists emails")
            .iter()
            .filter(|m| {
                m["destination"]["to"]
                    .as_array()
                    .is_some_and(|list| list.iter().any(|t| t == to))
            })
            .cloned()
            .collect();
        if mail.len() >= count || started.elapsed() > patience {
            return mail;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The token of the link to `page` in an emulator's message.
pub fn ses_link_token(message: &serde_json::Value, page: &str) -> String {
    let text = message["body"]["text"].as_str().expect("a text part");
    let marker = format!("/{page}#token=");
    let (_, rest) = text
        .split_once(&marker)
        .unwrap_or_else(|| panic!("no /{page} link in {text}"));
    rest.split_whitespace().next().unwrap().to_owned()
}

/// A client for the DynamoDB Local that the test command started. Tests that need it fail
/// loudly without it rather than skip.
pub async fn dynamo_client() -> Client {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| {
        panic!(
            "DynamoDB Local is not running: AWS_ENDPOINT_URL_DYNAMODB is unset. \
             Run the tests with scripts/test, which installs and starts it."
        )
    });
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region("us-east-1")
        .endpoint_url(endpoint)
        .test_credentials()
        .load()
        .await;
    Client::new(&config)
}

impl Harness {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Dynamo => Self::dynamo().await,
            Backend::Embedded => Self::embedded(),
        }
    }

    /// [`Self::new`] with `config`.
    pub async fn new_with(backend: Backend, config: Config) -> Self {
        match backend {
            Backend::Dynamo => Self::dynamo_with(config).await,
            Backend::Embedded => Self::embedded_with(config),
        }
    }

    /// A service on fresh tables in DynamoDB Local.
    pub async fn dynamo() -> Self {
        Self::dynamo_with(test_config()).await
    }

    pub async fn dynamo_with(config: Config) -> Self {
        Self::dynamo_through(dynamo_client().await, config).await
    }

    /// A service on fresh tables in DynamoDB Local whose client records every request.
    pub async fn dynamo_recording(config: Config) -> (Self, round_trips::RoundTrips) {
        let recorder = round_trips::RoundTrips::default();
        let sdk = dynamo_client().await.config().clone();
        let client = Client::from_conf(sdk.to_builder().interceptor(recorder.clone()).build());
        let harness = Self::dynamo_through(client, config).await;
        recorder.take();
        (harness, recorder)
    }

    /// A service on fresh tables, reached through `client`.
    async fn dynamo_through(client: Client, config: Config) -> Self {
        let config = Arc::new(config);
        let store = DynamoStore::new(
            client.clone(),
            &config.users_table,
            &config.sessions_table,
            &config.history_table,
        );
        store
            .create_tables()
            .await
            .expect("create tables in DynamoDB Local");
        let mut harness = Self::build(Backend::Dynamo, Arc::new(store), config.clone());
        harness.dynamo = Some((client, config));
        harness
    }

    /// A service whose DynamoDB endpoint refuses connections, with the production client
    /// settings (timeouts and retries).
    pub async fn unreachable_dynamo(config: Config) -> Self {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address").port()
        }; // dropped: nothing listens there any more
        Self::dynamo_at(&format!("http://127.0.0.1:{port}"), config).await
    }

    /// A service on the DynamoDB at `endpoint`, tables not created.
    pub async fn dynamo_at(endpoint: &str, config: Config) -> Self {
        let client = DynamoStore::client_for_endpoint(endpoint).await;
        let store = DynamoStore::new(
            client,
            &config.users_table,
            &config.sessions_table,
            &config.history_table,
        );
        Self::build(Backend::Dynamo, Arc::new(store), Arc::new(config))
    }

    /// A correctly signed token for a user and session the store has never seen.
    pub fn mint_token_for_unknown_session(&self, token_type: shared::model::TokenType) -> String {
        use shared::model::Claims;
        let now = shared::Clock::now(&*self.clock);
        let user = uuid::Uuid::new_v4();
        let claims = Claims {
            iss: self.config.issuer.clone(),
            sub: user,
            aud: self.config.audience.clone(),
            exp: now + 900,
            nbf: now,
            iat: now,
            jti: uuid::Uuid::new_v4(),
            user_id: user,
            user_email: "ghost@example.com".into(),
            token_type,
            sid: uuid::Uuid::new_v4(),
            email_verified: Some(false),
            amr: Some(vec![shared::model::Amr::Pwd]),
            idp: None,
            roles: Vec::new(),
        };
        self.service
            .tokens()
            .mint(&claims, "test-key")
            .expect("mint")
    }

    /// A service on a fresh embedded store in a temporary directory.
    pub fn embedded() -> Self {
        Self::embedded_with(test_config())
    }

    pub fn embedded_with(config: Config) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store =
            Arc::new(EmbeddedStore::open(dir.path().join("auth.redb")).expect("open store"));
        let mut harness = Self::build(Backend::Embedded, store.clone(), Arc::new(config));
        harness.embedded = Some(store);
        harness._dir = Some(dir);
        harness
    }

    fn build(backend: Backend, store: Arc<dyn Store>, config: Arc<Config>) -> Self {
        let (counting, calls) = CountingStore::new(store.clone());
        let counted: Arc<dyn Store> = Arc::new(counting);
        let clock = Arc::new(ManualClock::starting_now());
        let key = SigningKey::generate("test-key").expect("generate key");
        let keys = Arc::new(KeyRing::new(Some(key), &JwkSet::default()).expect("key ring"));
        let mail_dir = tempfile::tempdir().expect("temporary directory");
        let mail = FolderMailer::new(mail_dir.path());
        let service = AuthService::new(
            config.clone(),
            counted.clone(),
            keys.clone(),
            Passwords::new(),
            clock.clone(),
        )
        .with_mailer(Arc::new(mail.clone()))
        .with_mfa_keys(test_mfa_keys());
        let service = shared::bootstrap::with_relying_party(service).expect("relying party");
        let service = shared::bootstrap::with_inline_oidc(service).expect("OpenID providers");
        Self {
            backend,
            service: Arc::new(service),
            store,
            clock,
            config,
            keys,
            calls,
            mail,
            dev_events: None,
            _mail_dir: mail_dir,
            counted,
            dynamo: None,
            embedded: None,
            _dir: None,
        }
    }

    /// The harness's service built again with `passwords` and `mailer`, everything else kept.
    fn rebuilt_service(
        &self,
        passwords: Passwords,
        mailer: Arc<dyn shared::mail::Mailer>,
    ) -> Arc<AuthService> {
        let service = AuthService::new(
            self.config.clone(),
            self.counted.clone(),
            self.keys.clone(),
            passwords,
            self.clock.clone(),
        )
        .with_mailer(mailer)
        .with_mfa_keys(test_mfa_keys());
        let service = shared::bootstrap::with_relying_party(service).expect("relying party");
        Arc::new(shared::bootstrap::with_inline_oidc(service).expect("OpenID providers"))
    }

    /// The same harness, its service hashing with `passwords` (cheap parameters for tests that
    /// run thousands of flows and are about the flows, not the hashing).
    pub fn with_passwords(mut self, passwords: Passwords) -> Self {
        let mailer = self.service.outbox().expect("the harness mails").mailer();
        self.service = self.rebuilt_service(passwords, mailer);
        self
    }

    /// The same harness, its service putting lifecycle events through `sink` as well.
    pub fn with_events(mut self, sink: Arc<dyn shared::events::EventSink>) -> Self {
        let mailer = self.service.outbox().expect("the harness mails").mailer();
        let passwords = self.service.passwords().clone();
        let service = Arc::try_unwrap(self.rebuilt_service(passwords, mailer))
            .unwrap_or_else(|_| unreachable!("just built"));
        self.service = Arc::new(service.with_events(sink));
        self
    }

    /// The same harness keeping its lifecycle events in a file, as the local server does, and
    /// serving them at `GET /_dev/events`.
    pub fn with_dev_events(self) -> Self {
        // Beside the mail, which lists only `.json` files.
        let events = local_api::lifecycle::FolderEvents::new(self.mail.dir().join("events.jsonl"));
        let mut harness = self.with_events(Arc::new(events.clone()));
        harness.dev_events = Some(events);
        harness
    }

    /// The same harness, its service sending mail through Amazon SES v2 to the emulator the
    /// test command started (`AWS_ENDPOINT_URL_SESV2`). Fails loudly without it.
    pub async fn with_ses(mut self) -> Self {
        ses_emulator_url();
        let sdk = DynamoStore::sdk_loader().load().await;
        let mailer = SesMailer::new(&sdk, SES_SENDER);
        self.service = self.rebuilt_service(self.service.passwords().clone(), Arc::new(mailer));
        self
    }

    /// Marks the user's address verified through the store's own link path, as following the
    /// verification mail would.
    pub async fn verify_address(&self, user_id: uuid::Uuid) {
        // The registration's own link goes out in the background: let it land first.
        self.service.outbox_idle().await;
        let user = self.store.user_by_id(user_id).await.unwrap().expect("user");
        let now = shared::Clock::now(&*self.clock);
        let link = shared::model::EmailLink {
            token_hash: shared::tokens::token_hash(&uuid::Uuid::new_v4().to_string()),
            kind: shared::model::LinkKind::VerifyEmail,
            user_id,
            email: user.email.clone(),
            created_at: now,
            expires_at: now + 3600,
            epoch: user.session_epoch,
            keep_chain: None,
        };
        assert!(self.store.issue_link(&link).await.unwrap(), "link issued");
        assert!(
            self.store.spend_verification(&link, now).await.unwrap(),
            "address verified"
        );
    }

    /// Turns TOTP on for the user as a person would (a verified address, setup with the
    /// password, confirm with the app's code), and moves the clock to the next step, since the
    /// confirming step is spent.
    pub async fn enrol_totp(&self, user_id: uuid::Uuid, password: &str) -> Enrolled {
        if !self
            .store
            .user_by_id(user_id)
            .await
            .unwrap()
            .expect("user")
            .email_verified
        {
            self.verify_address(user_id).await;
        }
        let enrolment = self
            .service
            .totp_setup(
                user_id,
                uuid::Uuid::new_v4(),
                &shared::Password::new(password),
            )
            .await
            .expect("setup");
        let secret = base32::decode(
            base32::Alphabet::Rfc4648 { padding: false },
            &enrolment.secret,
        )
        .expect("a base32 secret");
        let code = self.totp_code(&secret);
        let recovery_codes = self
            .service
            .totp_confirm(
                user_id,
                &shared::service::MfaCode::totp(&code, "code").unwrap(),
            )
            .await
            .expect("confirm");
        self.clock.advance(30);
        Enrolled {
            secret,
            recovery_codes,
        }
    }

    /// The code an authenticator app shows for `secret` now (by the harness's clock).
    pub fn totp_code(&self, secret: &[u8]) -> String {
        let now = shared::Clock::now(&*self.clock);
        shared::mfa::TotpCode::new(secret, "test", "test@example.com")
            .expect("a TOTP")
            .generate(now as u64)
    }

    /// The mail sent to `to` so far, newest first, once the outbox has sent what it holds.
    /// Registers `email` with [`PASSWORD`] (mail, if any, links to `APP_URL`).
    pub async fn register(&self, email: &str) -> shared::SignedIn {
        self.service
            .register(email, &shared::Password::new(PASSWORD), None)
            .await
            .expect("register")
    }

    /// Registers `email` with [`PASSWORD`], its verification mail linking to [`app_links`].
    pub async fn register_with_mail(&self, email: &str) -> shared::SignedIn {
        self.service
            .register_with_links(
                email,
                &shared::Password::new(PASSWORD),
                None,
                Some(&app_links()),
            )
            .await
            .expect("register")
    }

    /// Signs `email` in with `password`, where no second factor is asked.
    pub async fn sign_in(&self, email: &str, password: &str) -> shared::SignedIn {
        self.service
            .login(email, &shared::Password::new(password), None)
            .await
            .expect("login")
            .signed_in()
            .expect("a sign-in without a second step")
    }

    pub async fn mail_to(&self, to: &str) -> Vec<StoredMessage> {
        self.service.outbox_idle().await;
        self.mail.messages(Some(to)).expect("read the mail folder")
    }

    /// The token in the link of the newest mail to `to` whose link opens `page`.
    pub async fn link_token(&self, to: &str, page: &str) -> String {
        let mail = self.mail_to(to).await;
        let marker = format!("/{page}#token=");
        mail.iter()
            .find_map(|m| {
                let (_, rest) = m.text.split_once(&marker)?;
                Some(rest.split_whitespace().next()?.to_owned())
            })
            .unwrap_or_else(|| panic!("no mail to {to} with a /{page} link"))
    }

    /// A user whose stored password hash the service cannot read, to provoke an internal error.
    pub async fn create_user_with_unreadable_hash(&self, email: &str) {
        let now = shared::Clock::now(&*self.clock);
        let user = shared::model::User {
            id: uuid::Uuid::new_v4(),
            email: email.into(),
            password_hash: "not-a-phc-string".into(),
            created_at: now,
            updated_at: now,
            is_active: true,
            session_epoch: 0,
            email_verified: false,
            links: Default::default(),
            mfa: Default::default(),
            passkeys: Default::default(),
            identities: Default::default(),
            roles: Vec::new(),
        };
        self.store.create_user(&user).await.expect("create user");
    }

    /// How many users the backend holds, read from the backend itself rather than through the
    /// store trait under test.
    pub async fn stored_user_count(&self) -> usize {
        if let Some((client, config)) = &self.dynamo {
            let mut pages = client
                .scan()
                .table_name(&config.users_table)
                .consistent_read(true)
                .into_paginator()
                .items()
                .send();
            let mut users = 0;
            while let Some(item) = pages.next().await {
                let item = item.expect("scan users");
                if item
                    .get("pk")
                    .and_then(|pk| pk.as_s().ok())
                    .is_some_and(|pk| pk.starts_with("USER#"))
                {
                    users += 1;
                }
            }
            return users;
        }
        self.embedded
            .as_ref()
            .expect("one backend")
            .user_count()
            .expect("count users")
    }

    /// How many items of the user the backend still holds besides the user itself: sessions,
    /// tokens, links, challenges, devices, ceremonies (any `user_id`) and history entries.
    pub async fn stored_items_of(&self, user_id: uuid::Uuid) -> usize {
        if let Some((client, config)) = &self.dynamo {
            let id = user_id.to_string();
            let mut pages = client
                .scan()
                .table_name(&config.sessions_table)
                .consistent_read(true)
                .into_paginator()
                .items()
                .send();
            let mut items = 0;
            while let Some(item) = pages.next().await {
                let item = item.expect("scan sessions");
                items += usize::from(
                    item.get("user_id")
                        .and_then(|v| v.as_s().ok())
                        .is_some_and(|v| *v == id),
                );
            }
            let history = client
                .query()
                .table_name(&config.history_table)
                .key_condition_expression("pk = :user")
                .expression_attribute_values(
                    ":user",
                    aws_sdk_dynamodb::types::AttributeValue::S(id),
                )
                .consistent_read(true)
                .send()
                .await
                .expect("query history");
            return items + history.items().len();
        }
        self.embedded
            .as_ref()
            .expect("one backend")
            .items_of(user_id)
            .expect("count items")
    }

    /// How many token items the backend holds for a sign-in chain.
    pub async fn stored_token_count(&self, sid: uuid::Uuid) -> usize {
        if let Some((client, config)) = &self.dynamo {
            let mut pages = client
                .scan()
                .table_name(&config.sessions_table)
                .consistent_read(true)
                .into_paginator()
                .items()
                .send();
            let mut tokens = 0;
            let sid = sid.to_string();
            while let Some(item) = pages.next().await {
                let item = item.expect("scan sessions");
                let is_token = item
                    .get("pk")
                    .and_then(|pk| pk.as_s().ok())
                    .is_some_and(|pk| pk.starts_with("TOKEN#"));
                let in_chain = item
                    .get("sid")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|v| *v == sid);
                if is_token && in_chain {
                    tokens += 1;
                }
            }
            return tokens;
        }
        self.embedded
            .as_ref()
            .expect("one backend")
            .token_count(sid)
            .expect("count tokens")
    }
}

/// Hands an API Gateway (HTTP API) event to the function whose route its `routeKey` names, the
/// way Lambda would: that function's own routes (`Function::X.routes()`) dispatch it.
pub async fn invoke(state: &impl HandlerState, event: &serde_json::Value) -> Response<Body> {
    let key = event["routeKey"]
        .as_str()
        .expect("the event has a routeKey");
    let route = ROUTES
        .iter()
        .find(|r| r.key() == key)
        .unwrap_or_else(|| panic!("no route {key} in shared::routes::ROUTES"));
    let request =
        lambda_http::request::from_str(&event.to_string()).expect("an API Gateway v2 event");
    route.function.routes().serve(state, request).await
}

/// Every variable `Config` reads, found by asking it to read an empty environment.
pub fn configuration_variables() -> Vec<String> {
    let asked = std::cell::RefCell::new(Vec::new());
    let defaults = Defaults {
        users_table: Some("users".into()),
        sessions_table: Some("sessions".into()),
        history_table: Some("history".into()),
        issuer: Some("https://issuer.example".into()),
        audience: Some("https://audience.example".into()),
        ..Defaults::default()
    };
    Config::from_lookup(
        |name| {
            asked.borrow_mut().push(name.to_owned());
            None
        },
        &defaults,
    )
    .expect("the defaults make a configuration");
    asked.into_inner()
}

/// The function an event file is for: the authorizer's events by their shape, the others by
/// the route their `routeKey` names.
pub fn function_of_event(name: &str, event: &serde_json::Value) -> shared::routes::Function {
    if event.get("methodArn").is_some() || event.get("identitySource").is_some() {
        return shared::routes::Function::Authorizer;
    }
    let key = event["routeKey"]
        .as_str()
        .unwrap_or_else(|| panic!("events/{name}: no routeKey"));
    ROUTES
        .iter()
        .find(|r| r.key() == key)
        .unwrap_or_else(|| panic!("events/{name}: routeKey `{key}` is no route of ROUTES"))
        .function
}

/// Runs each listed `async fn name(h: Harness)` as two tests, `dynamodb::name` and
/// `embedded::name`, so one body covers both stores.
#[macro_export]
macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test($crate::Harness::new($crate::Backend::Dynamo).await).await;
                }
            )*
        }
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test($crate::Harness::new($crate::Backend::Embedded).await).await;
                }
            )*
        }
    };
}
