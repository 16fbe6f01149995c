//! Sign-in with an external OpenID Provider.

mod fake;
mod provider;
