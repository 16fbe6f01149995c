//! The account lifecycle by email: verification, password reset and address change, through the
//! service, the local server, Amazon SES (its emulator) and a real browser.

mod browser;
mod email_lifecycle;
mod email_local_api;
mod mail_ses;
