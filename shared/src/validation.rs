//! Input validation: email normalisation and the password policy of docs/api.md.

use email_address::{EmailAddress, Options};
use serde::Serialize;
use zxcvbn::{Score, zxcvbn};

pub const MAX_EMAIL_CHARS: usize = 254;
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;

/// One reason a field was refused, in the shape of a problem's `errors` array (docs/api.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    fn new(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            code,
            message: message.into(),
        }
    }
}

/// Characters that change how text displays without being visible: bidirectional overrides,
/// zero-width characters, soft hyphens. In an email they only serve spoofing.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Normalises an email before any use: trimmed, the local part in Unicode NFC, the whole address
/// lower-cased, the domain in its IDNA (UTS 46) ASCII form; then checks it is a plain address
/// (no display name, no domain literal, a dotted domain) of at most 254 characters. So
/// `José@Exämple.com` typed with a precomposed `é` or with `e` and a combining accent, and
/// `jose\u{301}@xn--exmple-cua.com`, are one address and cannot hold two accounts.
pub fn normalize_email(raw: &str) -> Result<String, FieldError> {
    let nfc = icu_normalizer::ComposingNormalizerBorrowed::new_nfc();
    // Lower-casing can decompose (İ), so NFC comes after it too.
    let email = nfc
        .normalize(&nfc.normalize(raw.trim()).to_lowercase())
        .into_owned();
    let invalid = |message: &str| FieldError::new("email", "invalid_email", message);
    if email.is_empty() {
        return Err(invalid("Enter an email address."));
    }
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err(invalid("An email address has at most 254 characters."));
    }
    if email
        .chars()
        .any(|c| c.is_control() || is_invisible_format(c))
    {
        return Err(invalid(
            "The email address contains control or invisible characters.",
        ));
    }
    let email = match email.rsplit_once('@') {
        Some((local, domain)) => {
            let ascii = idna::domain_to_ascii(domain)
                .map_err(|_| invalid("Enter a valid email address, like name@example.com."))?;
            format!("{local}@{ascii}")
        }
        _ => email,
    };
    let options = Options {
        minimum_sub_domains: 2,
        allow_domain_literal: false,
        allow_display_text: false,
        ..Options::default()
    };
    EmailAddress::parse_with_options(&email, options)
        .map_err(|_| invalid("Enter a valid email address, like name@example.com."))?;
    Ok(email)
}

/// The password policy: 8 to 128 characters, no control characters, and a zxcvbn score of at
/// least `min_score` judged with the email as context.
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    min_score: u8,
}

impl PasswordPolicy {
    pub fn new(min_score: u8) -> Self {
        Self {
            min_score: min_score.min(4),
        }
    }

    /// Every reason the password is refused; empty when it is acceptable.
    pub fn check(&self, password: &str, email: &str) -> Result<(), Vec<FieldError>> {
        let field = |code, message: String| vec![FieldError::new("password", code, message)];
        let length = password.chars().count();
        if length < MIN_PASSWORD_CHARS {
            return Err(field(
                "too_short",
                format!("Use at least {MIN_PASSWORD_CHARS} characters."),
            ));
        }
        if length > MAX_PASSWORD_CHARS {
            return Err(field(
                "too_long",
                format!("Use at most {MAX_PASSWORD_CHARS} characters."),
            ));
        }
        if password.chars().any(char::is_control) {
            return Err(field(
                "invalid_characters",
                "Remove control characters (such as tabs or line breaks).".into(),
            ));
        }

        let context = email_context(email);
        let context: Vec<&str> = context.iter().map(String::as_str).collect();
        let entropy = zxcvbn(password, &context);
        if u8::from(entropy.score()) >= self.min_score {
            return Ok(());
        }
        Err(field(
            "too_weak",
            weakness_message(&entropy, entropy.score()),
        ))
    }
}

/// Words a password must not be built from: the email, its local part and that part's pieces.
fn email_context(email: &str) -> Vec<String> {
    let mut words = vec![email.to_owned()];
    if let Some((local, domain)) = email.split_once('@') {
        words.push(local.to_owned());
        words.extend(
            local
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.chars().count() >= 3)
                .map(str::to_owned),
        );
        if let Some(label) = domain.split('.').next().filter(|l| l.chars().count() >= 3) {
            words.push(label.to_owned());
        }
    }
    words
}

fn weakness_message(entropy: &zxcvbn::Entropy, score: Score) -> String {
    let mut message = format!("This password is too easy to guess (strength {score} of 4).");
    if let Some(feedback) = entropy.feedback() {
        if let Some(warning) = feedback.warning() {
            message.push(' ');
            message.push_str(&warning.to_string());
        }
        for suggestion in feedback.suggestions() {
            message.push(' ');
            message.push_str(&suggestion.to_string());
        }
    } else {
        message.push_str(" Add more words or characters that are not in your email.");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lower_cased() {
        assert_eq!(
            normalize_email("  Alice@Example.COM \n").unwrap(),
            "alice@example.com"
        );
    }

    #[test]
    fn invalid_emails_are_refused() {
        for raw in [
            "",
            "   ",
            "plainaddress",
            "@example.com",
            "alice@",
            "alice@localhost",
            "alice@[127.0.0.1]",
            "Alice <alice@example.com>",
            "alice@@example.com",
            "ali ce@example.com",
            "alice\0@example.com",
            "alice@exa\u{7}mple.com",
        ] {
            let err = normalize_email(raw).unwrap_err();
            assert_eq!((err.field, err.code), ("email", "invalid_email"), "{raw:?}");
        }
    }

    #[test]
    fn invisible_and_bidirectional_characters_are_refused() {
        for raw in [
            "a\u{202e}b@example.com",
            "a\u{200b}@example.com",
            "\u{feff}a@example.com",
            "a@exa\u{2066}mple.com",
        ] {
            assert!(normalize_email(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn internationalised_domains_have_one_canonical_form() {
        let unicode = normalize_email("josé@Exämple.com").unwrap();
        let punycode = normalize_email("josé@xn--exmple-cua.com").unwrap();
        assert_eq!(unicode, "josé@xn--exmple-cua.com");
        assert_eq!(unicode, punycode);
    }

    #[test]
    fn composed_and_decomposed_spellings_are_one_address() {
        let precomposed = "jos\u{e9}@example.com";
        let decomposed = "jose\u{301}@example.com";
        assert_ne!(precomposed, decomposed);
        assert_eq!(
            normalize_email(precomposed).unwrap(),
            normalize_email(decomposed).unwrap()
        );
        assert_eq!(
            normalize_email("JOSE\u{301}@EXAMPLE.COM").unwrap(),
            "jos\u{e9}@example.com"
        );
        // The Kelvin sign lower-cases to k; full-width letters are not folded (NFC is not NFKC).
        assert_eq!(
            normalize_email("\u{212a}@example.com").unwrap(),
            "k@example.com"
        );
    }

    #[test]
    fn email_length_limit_is_254_characters() {
        // The parser also limits labels to 63 characters; build a domain of several labels.
        let domain = format!(
            "{}.{}.{}.com",
            "b".repeat(61),
            "c".repeat(61),
            "d".repeat(61)
        );
        let ok = format!("{}@{}", "a".repeat(254 - 1 - domain.len()), domain);
        assert_eq!(ok.chars().count(), 254);
        assert!(normalize_email(&ok).is_ok(), "{}", ok.len());
        let too_long = ok.replacen("@b", "@bb", 1);
        assert_eq!(too_long.chars().count(), 255);
        assert!(normalize_email(&too_long).is_err());
    }

    fn codes(result: Result<(), Vec<FieldError>>) -> Vec<&'static str> {
        result
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.code)
            .collect()
    }

    #[test]
    fn password_length_is_counted_in_characters() {
        let policy = PasswordPolicy::new(3);
        assert_eq!(
            codes(policy.check("Ab1$xyz", "a@example.com")),
            ["too_short"]
        );
        // Eight characters but sixteen bytes: long enough.
        assert_ne!(
            codes(policy.check("ééééééé1", "a@example.com")),
            ["too_short"]
        );
        let long = "x".repeat(MAX_PASSWORD_CHARS + 1);
        assert_eq!(codes(policy.check(&long, "a@example.com")), ["too_long"]);
    }

    #[test]
    fn common_passwords_are_too_weak() {
        let policy = PasswordPolicy::new(3);
        for password in [
            "password",
            "password123",
            "qwertyuiop",
            "iloveyou1",
            "12345678",
        ] {
            let result = policy.check(password, "someone@example.com");
            assert_eq!(codes(result.clone()), ["too_weak"], "{password}");
            assert!(result.unwrap_err()[0].message.contains("too easy to guess"));
        }
    }

    #[test]
    fn passwords_derived_from_the_email_are_too_weak() {
        let policy = PasswordPolicy::new(3);
        let email = "margaret.hamilton@apollo.example";
        for password in [
            "margaret.hamilton",
            "hamiltonmargaret",
            "Margaret.Hamilton1",
            "apollohamilton",
        ] {
            assert_eq!(
                codes(policy.check(password, email)),
                ["too_weak"],
                "{password}"
            );
        }
    }

    #[test]
    fn strong_passwords_pass() {
        let policy = PasswordPolicy::new(3);
        for password in [
            "correct horse battery staple",
            "Tr0ub4dor&3-glacier-moth",
            "vY8#qL2!mZ7@wR4$",
            "ünïcödé-pässwörd-42-kettle",
        ] {
            assert_eq!(
                policy.check(password, "someone@example.com"),
                Ok(()),
                "{password}"
            );
        }
    }

    #[test]
    fn control_characters_are_refused() {
        let policy = PasswordPolicy::new(0);
        assert_eq!(
            codes(policy.check("abc\0defgh12345", "a@example.com")),
            ["invalid_characters"]
        );
        assert_eq!(
            codes(policy.check("abc\ndefgh12345", "a@example.com")),
            ["invalid_characters"]
        );
    }

    #[test]
    fn min_score_is_configurable() {
        assert!(
            PasswordPolicy::new(0)
                .check("password", "a@example.com")
                .is_ok()
        );
        assert!(
            PasswordPolicy::new(4)
                .check("password", "a@example.com")
                .is_err()
        );
    }
}
