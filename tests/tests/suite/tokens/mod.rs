//! Tokens: the authorizer, the token attack battery, and tokens of an external issuer (Better
//! Auth) beside our own.

mod authorizer;
mod better_auth;
mod roles;
mod token_attacks;
