//! Account recovery across flows: one epoch ends everything pending when the owner takes an
//! account back (emailed links of every kind, `mfa_token`s, device tokens, sessions), fresh
//! factors for sensitive changes, and a model-based test that pits an owner against an attacker
//! who starts with the password and a session.

mod epoch;
mod model;
