//! The auth core shared by every Lambda function and the local server.
//!
//! Split by concern: [`config`] (environment, read once), [`model`] (entities), [`validation`]
//! (emails and the password policy), [`passwords`] (Argon2id), [`tokens`] (EdDSA JWTs and keys),
//! [`store`] (a trait with a DynamoDB and an embedded implementation) and [`service`] (the
//! operations of the API (docs/api.md), independent of the store). [`http`] parses requests and maps
//! every error to `problem+json` in one place; [`handlers`] are the endpoints the Lambda
//! functions and the local server share, [`routes`] the one table of which function serves
//! which route with which handler; [`bootstrap`] wires a function at cold start.

pub mod authorizer;
pub mod bootstrap;
pub mod clock;
pub mod config;
pub mod events;
pub mod handlers;
pub mod http;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod mfa;
pub mod model;
pub mod oidc;
pub mod outbound;
pub mod passkeys;
pub mod passwords;
pub mod routes;
pub mod service;
pub mod store;
pub mod tokens;
pub mod validation;

pub use clock::{Clock, ManualClock, SystemClock, UnixTime};
pub use config::{Config, ConfigError, Defaults};
pub use passwords::{Password, Passwords};
pub use service::{AuthError, AuthService, Principal, SessionInfo, SignedIn};
pub use store::{Store, StoreError, dynamo::DynamoStore, embedded::EmbeddedStore};
pub use tokens::{KeyRing, SigningKey, Tokens};
