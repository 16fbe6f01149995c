//! The one log filter of every process: the Lambda functions (through [`init_lambda`]) and the
//! local server (through [`init_local`]).
//!
//! Whatever `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL` say, the crates in [`QUIET_TARGETS`] never log
//! below `info`: at `debug` and `trace` the Lambda runtime logs each raw event (passwords,
//! refresh tokens, `Authorization` headers), the AWS SDK and hyper log request and response
//! bodies (password hashes, token hashes). Our own crates log no secret at any level.

use lambda_runtime::tracing::subscriber;
use subscriber::filter::{FilterExt, LevelFilter, Targets};
use subscriber::fmt::MakeWriter;
use subscriber::layer::{Layer, SubscriberExt};
use tracing::Subscriber;

/// Target prefixes held at `info` (a prefix: `hyper` is also `hyper_util` and `hyper_rustls`,
/// `lambda_runtime` also `lambda_runtime_api_client`, and `aws_` every crate of the AWS SDK:
/// `aws_smithy_*`, `aws_sdk_*`, `aws_config`, and `aws_sigv4` and `aws_runtime`, which at trace
/// log each signed request's headers and canonical form).
pub const QUIET_TARGETS: [&str; 6] = [
    "lambda_runtime",
    "lambda_http",
    "lambda_extension",
    "aws_",
    "hyper",
    "h2",
];

/// What the Lambda runtime's own default does: `AWS_LAMBDA_LOG_LEVEL` first, then `RUST_LOG`
/// (as a level or as directives), `info` without either.
pub fn lambda_directives(aws_lambda_log_level: Option<&str>, rust_log: Option<&str>) -> String {
    let level = |value: &str| value.trim().parse::<LevelFilter>().ok();
    match (aws_lambda_log_level.and_then(level), rust_log) {
        (Some(level), _) => level.to_string(),
        (None, Some(rust_log)) if !rust_log.trim().is_empty() => rust_log.to_owned(),
        _ => "info".to_owned(),
    }
}

/// `directives` as per-target levels (`info`, `shared=debug`), each unparseable one skipped and
/// `error` when none is left, as the runtime's own filter does. Span and field directives are
/// not supported: per-target levels need no regular-expression engine in every binary.
fn targets(directives: &str) -> Targets {
    let valid: Vec<&str> = directives
        .split(',')
        .map(str::trim)
        .filter(|directive| directive.parse::<Targets>().is_ok())
        .collect();
    valid
        .join(",")
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::ERROR))
}

/// A subscriber logging `directives` (`RUST_LOG` syntax; unparseable parts ignored) to
/// `writer`, as text or JSON lines, with [`QUIET_TARGETS`] held at `info`.
pub fn subscriber<W>(directives: &str, json: bool, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let quiet = QUIET_TARGETS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |targets, target| targets.with_target(*target, LevelFilter::INFO),
    );
    // Both must let an event through: the directives, and the cap on the quiet crates.
    let filter = targets(directives).and(quiet);
    let layer = subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_writer(writer);
    let registry = subscriber::registry();
    if json {
        Box::new(registry.with(layer.json().with_filter(filter)))
    } else {
        Box::new(registry.with(layer.with_filter(filter)))
    }
}

/// A Lambda function's logging: level as the runtime reads it, text or JSON per
/// `AWS_LAMBDA_LOG_FORMAT`, to standard output.
pub fn init_lambda() {
    let var = |name| std::env::var(name).ok();
    let directives = lambda_directives(
        var("AWS_LAMBDA_LOG_LEVEL").as_deref(),
        var("RUST_LOG").as_deref(),
    );
    let json = var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = tracing::subscriber::set_global_default(subscriber(&directives, json, std::io::stdout));
}

/// The local server's logging: `RUST_LOG`, or `info` with the SDK's retries quiet, to standard
/// output beside its banner.
pub fn init_local() {
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| "info,aws_smithy_runtime=warn,aws_config=warn".to_owned());
    let _ =
        tracing::subscriber::set_global_default(subscriber(&directives, false, std::io::stdout));
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What a subscriber for `directives` writes of one event per level per target.
    fn logged(directives: &str, json: bool) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = subscriber(directives, json, move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            macro_rules! each_level {
                ($target:literal) => {
                    tracing::trace!(target: $target, "{}:trace", $target);
                    tracing::debug!(target: $target, "{}:debug", $target);
                    tracing::info!(target: $target, "{}:info", $target);
                };
            }
            each_level!("lambda_runtime::layers::api_response");
            each_level!("lambda_runtime_api_client");
            each_level!("lambda_http::request");
            each_level!("lambda_extension");
            each_level!("aws_smithy_runtime::client::http");
            each_level!("aws_sdk_dynamodb::operation");
            each_level!("aws_config::default_provider");
            each_level!("aws_sigv4::http_request::sign");
            each_level!("aws_runtime::service_clock_skew");
            each_level!("hyper::proto::h1::io");
            each_level!("hyper_util::client::legacy");
            each_level!("h2::codec");
            each_level!("shared::service");
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn quiet_crates_never_log_below_info_whatever_the_directives() {
        for directives in [
            "trace",
            "TRACE",
            "debug",
            "trace,lambda_runtime=trace,aws_smithy_runtime=trace,hyper=trace,h2=trace",
            "lambda_runtime=trace,aws_sdk_dynamodb=debug,shared=trace",
        ] {
            for json in [false, true] {
                let log = logged(directives, json);
                for line in log.lines() {
                    let quiet = !line.contains("shared::service:");
                    assert!(
                        !(quiet && (line.contains(":trace") || line.contains(":debug"))),
                        "{directives}: {line}"
                    );
                }
                // Their info lines, and our own lines at every level, still come through.
                let everything = !directives.starts_with("lambda_runtime=");
                assert_eq!(
                    log.contains("hyper::proto::h1::io:info"),
                    everything,
                    "{log}"
                );
                assert!(log.contains("lambda_runtime::layers::api_response:info"));
                assert!(log.contains("shared::service:debug"), "{directives}: {log}");
            }
        }
    }

    #[test]
    fn the_directives_still_choose_the_rest() {
        let log = logged("warn", false);
        assert!(!log.contains("shared::service:info"), "{log}");
        let log = logged("info", false);
        assert!(log.contains("shared::service:info") && !log.contains("shared::service:debug"));
    }

    #[test]
    fn unparseable_directives_are_skipped_and_none_left_means_errors_only() {
        let log = logged("shared=debug,shared[span{f=1}]=trace,==", false);
        assert!(log.contains("shared::service:debug") && !log.contains("shared::service:trace"));
        assert!(!log.contains("hyper::proto::h1::io:info"), "{log}");
        tracing::subscriber::with_default(subscriber("shared=loud", false, std::io::sink), || {
            assert!(tracing::enabled!(target: "shared::service", tracing::Level::ERROR));
            assert!(!tracing::enabled!(target: "shared::service", tracing::Level::WARN));
        });
    }

    #[test]
    fn the_level_is_read_as_the_lambda_runtime_reads_it() {
        assert_eq!(lambda_directives(Some("TRACE"), Some("warn")), "trace");
        assert_eq!(lambda_directives(Some("DEBUG"), None), "debug");
        assert_eq!(
            lambda_directives(None, Some("shared=trace,hyper=trace")),
            "shared=trace,hyper=trace"
        );
        assert_eq!(lambda_directives(Some("nonsense"), Some("debug")), "debug");
        assert_eq!(lambda_directives(None, None), "info");
    }
}
