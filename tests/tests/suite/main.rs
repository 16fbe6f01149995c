//! The integration tests, one test binary with a module per feature (linking the AWS SDK once
//! instead of once per file). The harnesses (the local server, the Runtime Interface Emulator,
//! the SAM CLI, DynamoDB Local, the SES emulator) are helpers in `tests/src` that the features
//! use. Run one feature with a filter on its module path, e.g.
//! `cargo nextest run -p integration-tests -E 'test(/^tokens::/)'`.
//!
//! `cargo nextest` runs every test in a process of its own, so the tests that install
//! process-wide state (`operations::log_secrets` a global tracing subscriber,
//! `operations::metrics` the global metrics recorder) see only their own.

mod account;
mod admin;
mod api;
mod devices;
mod email;
mod local_dev;
mod mfa;
mod oidc;
mod operations;
mod passkeys;
mod recovery;
mod refresh;
mod repository;
mod store;
mod throttling;
mod tokens;
