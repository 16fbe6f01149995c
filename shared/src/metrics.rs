//! Operational metrics, counted through the `metrics` facade. In Lambda they leave as CloudWatch
//! Embedded Metric Format lines on stdout, one document per invocation that counted something
//! ([`install_emf`], flushed by [`flush`]); CloudWatch turns them into metrics without any API
//! call. Elsewhere (the local server, tests) no recorder is installed and counting costs nothing.
//!
//! Dimensions are low-cardinality words chosen here and the function's name: never a user id,
//! an email, an address or a token. The alarms of `template.yaml` name these metrics, and a
//! test holds them to this module.

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "LambdaAuth";
/// The dimension every metric carries: the Lambda function's name.
pub const FUNCTION_DIMENSION: &str = "FunctionName";

/// Sign-ins with a password, by [`OUTCOME`]: `Succeeded` or `Failed`.
pub const SIGN_INS: &str = "SignIns";
/// Attempts refused because a throttling budget was spent (`429`).
pub const THROTTLED: &str = "ThrottledAttempts";
/// Refresh tokens presented again after rotation: each revokes its sign-in chain.
pub const REFRESH_REUSE: &str = "RefreshReuseDetected";
/// The authorizer's answers, by [`DECISION`]: `Allow`, `Deny` or `Error` (API Gateway answers
/// 500 to the caller, e.g. when the store cannot be reached).
pub const AUTHORIZER_DECISIONS: &str = "AuthorizerDecisions";
/// Store calls that failed, by [`KIND`]: `Unavailable` (retry later) or `Internal`.
pub const STORE_ERRORS: &str = "StoreErrors";

/// Lifecycle events that did not reach the EventBridge bus within their deadline.
pub const EVENTS_NOT_DELIVERED: &str = "EventsNotDelivered";
/// Mails that SES refused or that were not sent within their deadline (in the SES sandbox, a
/// recipient that is not verified; a sender the policy does not allow; SES throttling).
pub const MAIL_NOT_SENT: &str = "MailNotSent";

pub const OUTCOME: &str = "Outcome";
pub const DECISION: &str = "Decision";
pub const KIND: &str = "Kind";

/// A dimension besides [`FUNCTION_DIMENSION`]: its name and every value it takes.
pub type Dimension = (&'static str, &'static [&'static str]);

/// Every metric with its dimension besides [`FUNCTION_DIMENSION`], if any.
pub const METRICS: &[(&str, Option<Dimension>)] = &[
    (SIGN_INS, Some((OUTCOME, &["Succeeded", "Failed"]))),
    (THROTTLED, None),
    (REFRESH_REUSE, None),
    (
        AUTHORIZER_DECISIONS,
        Some((DECISION, &["Allow", "Deny", "Error"])),
    ),
    (STORE_ERRORS, Some((KIND, &["Unavailable", "Internal"]))),
    (EVENTS_NOT_DELIVERED, None),
    (MAIL_NOT_SENT, None),
];

pub fn event_not_delivered() {
    metrics::counter!(EVENTS_NOT_DELIVERED).increment(1);
}

pub fn mail_not_sent() {
    metrics::counter!(MAIL_NOT_SENT).increment(1);
}

pub fn sign_in(succeeded: bool) {
    let outcome = if succeeded { "Succeeded" } else { "Failed" };
    metrics::counter!(SIGN_INS, OUTCOME => outcome).increment(1);
}

pub fn throttled() {
    metrics::counter!(THROTTLED).increment(1);
}

pub fn refresh_reuse() {
    metrics::counter!(REFRESH_REUSE).increment(1);
}

/// The authorizer's decision: `Some(true)` allow, `Some(false)` deny, `None` error.
pub fn authorizer_decision(decision: Option<bool>) {
    let decision = match decision {
        Some(true) => "Allow",
        Some(false) => "Deny",
        None => "Error",
    };
    metrics::counter!(AUTHORIZER_DECISIONS, DECISION => decision).increment(1);
}

pub fn store_error(unavailable: bool) {
    let kind = if unavailable {
        "Unavailable"
    } else {
        "Internal"
    };
    metrics::counter!(STORE_ERRORS, KIND => kind).increment(1);
}

/// The collector behind the facade once [`install_emf`] ran.
static COLLECTOR: std::sync::OnceLock<&'static metrics_cloudwatch_embedded::Collector> =
    std::sync::OnceLock::new();

/// Counts into Embedded Metric Format documents, each dimensioned by `function_name`.
pub fn install_emf(function_name: &str) {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension(FUNCTION_DIMENSION, function_name.to_owned())
        .init();
    match collector {
        Ok(collector) => {
            let _ = COLLECTOR.set(collector);
        }
        Err(e) => tracing::warn!(error = %e, "metrics are off"),
    }
}

/// Writes what was counted since the last flush as one EMF line, tagged with the request id (a
/// property for finding the invocation's logs, not a dimension).
pub fn flush(request_id: &str) {
    if let Some(collector) = COLLECTOR.get() {
        collector.set_property("RequestId", request_id.to_owned());
        if let Err(e) = collector.flush(std::io::stdout().lock()) {
            tracing::warn!(error = %e, "could not write metrics");
        }
    }
}

/// Renders what was counted since the last flush into `writer` (tests).
pub fn flush_into(writer: impl std::io::Write) -> std::io::Result<()> {
    match COLLECTOR.get() {
        Some(collector) => collector.flush(writer),
        None => Ok(()),
    }
}
