//! `local-api`: the whole API on http://127.0.0.1:3000.
//!
//! ```text
//! local-api [--port N] [--data-dir DIR] [--dynamodb URL] [--extra-route 'GET /orders=BINARY']...
//! ```
//! `--extra-route` serves another team's Lambda binary (built for this machine, e.g. with
//! `cargo build`) on a route behind this API's authorizer, as `examples/orders` shows.
//! `PORT`, `DATA_DIR` and `AWS_ENDPOINT_URL_DYNAMODB` do the same as the flags; every variable of
//! the configuration of docs/api.md applies too.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use local_api::lifecycle::FolderEvents;
use local_api::mail::FolderMailer;
use local_api::{
    ExtraRouteSpec, Gateway, LocalStore, load_or_create_keys, load_or_create_mfa_keys, server,
};
use shared::handlers::Published;
use shared::{AuthService, Config, Defaults, Passwords, SystemClock};
use tokio::net::TcpListener;

const USAGE: &str = "usage: local-api [--port N] [--data-dir DIR] [--dynamodb URL] [--extra-route 'METHOD /path=BINARY']...";

struct Options {
    port: u16,
    data_dir: PathBuf,
    dynamodb: Option<String>,
    extra_routes: Vec<ExtraRouteSpec>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        port: env("PORT")
            .map(|p| p.parse().map_err(|_| format!("PORT is not a port: {p:?}")))
            .transpose()?
            .unwrap_or(3000),
        data_dir: env("DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".data")),
        dynamodb: env("AWS_ENDPOINT_URL_DYNAMODB"),
        extra_routes: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--port" => {
                let raw = value("--port")?;
                options.port = raw
                    .parse()
                    .map_err(|_| format!("--port: not a port: {raw:?}"))?;
            }
            "--data-dir" => options.data_dir = PathBuf::from(value("--data-dir")?),
            "--dynamodb" => options.dynamodb = Some(value("--dynamodb")?),
            "--extra-route" => options
                .extra_routes
                .push(ExtraRouteSpec::parse(&value("--extra-route")?)?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    // The runtime, the SDK and hyper never below info, whatever RUST_LOG says.
    shared::logging::init_local();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("local-api: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let options = options()?;

    let listener = TcpListener::bind(("127.0.0.1", options.port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", options.port))?;
    let base_url = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().map_err(|e| e.to_string())?.port()
    );

    let defaults = Defaults {
        users_table: Some("users".into()),
        sessions_table: Some("sessions".into()),
        history_table: Some("history".into()),
        issuer: Some(base_url.clone()),
        audience: Some(base_url.clone()),
        app_url: Some(base_url.clone()),
        mail_from: Some("no-reply@localhost".into()),
    };
    let config = Arc::new(Config::from_lookup(env, &defaults).map_err(|e| e.to_string())?);

    std::fs::create_dir_all(&options.data_dir)
        .map_err(|e| format!("{}: {e}", options.data_dir.display()))?;
    let (keys, key_created) = load_or_create_keys(&options.data_dir)?;
    let keys = Arc::new(keys);
    let store = Arc::new(
        LocalStore::open(
            &options.data_dir,
            options.dynamodb.as_deref(),
            &config.users_table,
            &config.sessions_table,
            &config.history_table,
        )
        .await?,
    );
    let discovery =
        Published::new(config.issuer.clone(), &keys).with_providers(&config.oidc_providers);
    let mailer = FolderMailer::new(options.data_dir.join(local_api::MAIL_DIR));
    let events = FolderEvents::new(options.data_dir.join(local_api::EVENTS_FILE));
    let service = AuthService::new(
        config,
        store.as_store(),
        keys,
        Passwords::new(),
        Arc::new(SystemClock),
    )
    .with_mailer(Arc::new(mailer.clone()))
    .with_events(Arc::new(events.clone()))
    .with_mfa_keys(Arc::new(load_or_create_mfa_keys(&options.data_dir)?));
    // Passkeys for `http://localhost:PORT`: browsers take no IP address as a relying party.
    let service = shared::bootstrap::with_relying_party(service).map_err(|e| e.to_string())?;
    let service =
        Arc::new(shared::bootstrap::with_inline_oidc(service).map_err(|e| e.to_string())?);
    let mut extra_routes = Vec::new();
    for spec in &options.extra_routes {
        extra_routes.push(spec.start().await?);
    }
    let gateway = Arc::new(
        Gateway::new(service, discovery)
            .with_dev_mail(mailer)
            .with_dev_events(events)
            .with_extra_routes(extra_routes),
    );

    let store_description = match &options.dynamodb {
        Some(endpoint) => format!("DynamoDB at {endpoint}"),
        None => format!(
            "embedded store in {}",
            options.data_dir.join(local_api::STORE_FILE).display()
        ),
    };
    let key_note = if key_created { "created" } else { "loaded" };
    println!();
    println!("  Local API on {base_url}  ({store_description})");
    println!(
        "  {} routes; development signing key {key_note} in {}",
        shared::routes::ENDPOINTS.len(),
        options.data_dir.join(local_api::SIGNING_KEY_FILE).display()
    );
    println!("  Mail is kept, not sent: {base_url}/_dev/inbox");
    let port = base_url.rsplit(':').next().unwrap_or_default();
    println!("  Your account, passkeys included: http://localhost:{port}/account");
    for spec in &options.extra_routes {
        println!(
            "  {} {} -> {} (behind the authorizer)",
            spec.method,
            spec.path,
            spec.binary.display()
        );
    }
    println!();
    println!("  Try:");
    println!(
        "    curl -s {base_url}/auth/register -H 'content-type: application/json' \\\n         -d '{{\"email\":\"ada@example.com\",\"password\":\"correct horse battery staple\"}}'"
    );
    println!();
    println!("  Ctrl-C to stop.");
    println!();

    // Sessions and counters reach the disk within a second (users and revocations at once).
    let flusher = store.clone();
    tokio::spawn(async move {
        let mut every_second = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            every_second.tick().await;
            flusher.flush().await;
        }
    });
    server::serve(listener, gateway, shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    store.flush().await;
    println!("local-api: stopped");
    Ok(())
}

/// Ctrl-C, or SIGTERM where there is one.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
