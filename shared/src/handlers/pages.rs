//! The pages: the account page (`GET /account`), and those emailed links open, `GET
//! /verify-email` and `GET /reset-password`. The link pages read the
//! token from the fragment (which reaches no server log and no `Referer`) and post it only when
//! the person presses the button, so a mail scanner that opens the link spends nothing.
//!
//! The pages are in `shared/pages/`, self-contained: their style and script are inline and
//! allowed by hash in a strict Content-Security-Policy, and nothing is fetched from elsewhere.

use std::sync::OnceLock;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};

use super::Published;

/// A page, assembled once per instance.
struct Page {
    html: String,
    policy: String,
}

const STYLE: &str = include_str!("../../pages/page.css");

fn csp_hash(source: &str) -> String {
    format!(
        "'sha256-{}'",
        STANDARD.encode(digest(&SHA256, source.as_bytes()))
    )
}

fn assemble(html: &str, script: &str) -> Page {
    assemble_with(html, script, "")
}

/// [`assemble`], its policy allowing `extra` (a directive such as `img-src data:`) besides.
fn assemble_with(html: &str, script: &str, extra: &str) -> Page {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!("; {extra}")
    };
    Page {
        html: html
            .replace("{{style}}", STYLE)
            .replace("{{script}}", script),
        policy: format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
             form-action 'none'; base-uri 'none'; frame-ancestors 'none'{extra}",
            csp_hash(script),
            csp_hash(STYLE)
        ),
    }
}

fn respond(page: &Page) -> Response<Body> {
    let mut response = Response::new(Body::Text(page.html.clone()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(policy) = HeaderValue::from_str(&page.policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /verify-email`.
pub async fn verify_email(_published: &Published, _request: Request) -> Response<Body> {
    static PAGE: OnceLock<Page> = OnceLock::new();
    respond(PAGE.get_or_init(|| {
        assemble(
            include_str!("../../pages/verify-email.html"),
            include_str!("../../pages/verify-email.js"),
        )
    }))
}

/// `GET /reset-password`.
pub async fn reset_password(_published: &Published, _request: Request) -> Response<Body> {
    static PAGE: OnceLock<Page> = OnceLock::new();
    respond(PAGE.get_or_init(|| {
        assemble(
            include_str!("../../pages/reset-password.html"),
            include_str!("../../pages/reset-password.js"),
        )
    }))
}

/// `GET /account`: the account page (signing in, sessions, password, TOTP, passkeys, the
/// address). Its QR code is an SVG data URL, the one image source its policy allows.
pub async fn account(_published: &Published, _request: Request) -> Response<Body> {
    static PAGE: OnceLock<Page> = OnceLock::new();
    respond(PAGE.get_or_init(|| {
        assemble_with(
            include_str!("../../pages/account.html"),
            include_str!("../../pages/account.js"),
            "img-src data:",
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pages_are_self_contained_under_a_strict_policy() {
        let keys = crate::KeyRing::verify_only(&crate::tokens::JwkSet::default()).unwrap();
        let published = Published::new("https://issuer.example", &keys);
        for response in [
            verify_email(&published, Request::default()).await,
            reset_password(&published, Request::default()).await,
            account(&published, Request::default()).await,
        ] {
            assert_eq!(response.status(), 200);
            let headers = response.headers();
            assert_eq!(headers["content-type"], "text/html; charset=utf-8");
            let policy = headers["content-security-policy"].to_str().unwrap();
            assert!(policy.starts_with("default-src 'none'"), "{policy}");
            assert!(!policy.contains("unsafe"), "{policy}");
            let html = match response.body() {
                Body::Text(text) => text.clone(),
                _ => panic!("text"),
            };
            assert!(!html.contains("{{"), "every placeholder filled");
            assert!(!html.contains("src=\"http"), "no external assets");
            assert!(!html.contains("href=\"http"), "no external assets");
            // The inline script is exactly what the policy's hash allows.
            let script = html
                .split("<script>")
                .nth(1)
                .and_then(|s| s.split("</script>").next())
                .unwrap();
            assert!(policy.contains(&csp_hash(script)), "{policy}");
        }
    }
}
