//! The tests' real OpenID Provider: the npm package oidc-provider (a certified OP) on loopback,
//! configured in `tests/oidc-provider/provider.mjs` and started by `scripts/oidc-provider` (which
//! `scripts/test` runs), and a client that signs in at it the way a browser would.
//!
//! The provider's accounts: any login, any password; the login is the subject and the `email`
//! claim, `email_verified` is false only for a login that starts with `unverified`, and the ID
//! token's `amr` is `["pwd", "mfa"]` for a login that contains `+mfa`, else `["pwd"]`. Its
//! clients accept any http(s) redirect_uri on 127.0.0.1, localhost or auth.test.example, any
//! port, whose path matches `^/auth/oidc/[a-z0-9-]+/callback$`, and require PKCE (S256).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, LOCATION, SET_COOKIE};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

/// The provider's client whose ID tokens are signed as they should be (RS256).
pub const APP_CLIENT_ID: &str = "app";
pub const APP_CLIENT_SECRET: &str = "app-secret-5f0c1d2e3b4a69788796a5b4c3d2e1f0";
/// The provider's hostile client: its ID tokens are HS256, keyed with its secret, which a
/// relying party must refuse.
pub const HS256_CLIENT_ID: &str = "hs256";
pub const HS256_CLIENT_SECRET: &str = "hs256-secret-0a1b2c3d4e5f60718293a4b5c6d7e8f9";

/// What the provider is given as the password: it accepts any.
const ANY_PASSWORD: &str = "any password";
/// More steps than a sign-in takes (authorize, login, resume, consent, resume).
const MAX_STEPS: usize = 20;
/// How long one answer of the provider may take.
const PATIENCE: Duration = Duration::from_secs(10);

/// The issuer of the provider the test command started (`OIDC_PROVIDER_URL`, e.g.
/// `http://127.0.0.1:PORT`). Tests that need it fail loudly without it.
pub fn provider_url() -> String {
    match std::env::var("OIDC_PROVIDER_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "the OpenID Provider is not running: OIDC_PROVIDER_URL is unset. Run the tests with \
             scripts/test, which installs and starts it, or start it by hand: \
             `read -r port pid <<<\"$(scripts/oidc-provider)\"; \
             export OIDC_PROVIDER_URL=http://127.0.0.1:$port`"
        ),
    }
}

/// The provider's redirect off itself, not followed: the authorization response to the client.
#[derive(Debug, Clone)]
pub struct Redirected {
    /// The `Location` as the provider sent it (`<redirect_uri>?code=..&state=..&iss=..`, or
    /// `?error=..` when it refused the request).
    pub location: String,
    /// The `Set-Cookie` headers of that answer, as sent.
    pub set_cookies: Vec<String>,
}

/// Where a sign-in stopped at the provider instead: an answer that is neither a redirect nor a
/// page with a form (its error page, for a redirect_uri it will not redirect to).
#[derive(Debug, Clone)]
pub struct Stuck {
    pub url: String,
    pub status: u16,
    pub body: String,
}

/// Signs `login` in at the provider from `authorize_url` (an authorization request), as a
/// browser would: follows the provider's own redirects, fills in its login form (any password)
/// and its consent form, and returns the first redirect off the provider (the redirect to the
/// client's redirect_uri) without following it. Panics, showing the page, if the provider
/// stops anywhere else.
pub async fn sign_in_at_provider(authorize_url: &str, login: &str) -> Redirected {
    try_sign_in_at_provider(authorize_url, login)
        .await
        .unwrap_or_else(|stuck| {
            panic!(
                "the sign-in stopped at the provider: {} answered {}:\n{}",
                stuck.url, stuck.status, stuck.body
            )
        })
}

/// [`sign_in_at_provider`], with where it stopped when it did not end in a redirect off the
/// provider.
pub async fn try_sign_in_at_provider(
    authorize_url: &str,
    login: &str,
) -> Result<Redirected, Stuck> {
    let start =
        Url::parse(authorize_url).unwrap_or_else(|e| panic!("not a URL: {authorize_url}: {e}"));
    let provider = start.origin();
    let mut jar = CookieJar::default();
    let mut request = Request {
        method: "GET",
        url: start,
        form: None,
    };
    for _ in 0..MAX_STEPS {
        let answer = send(&request, &jar).await;
        jar.store(&request.url, &answer.set_cookies);
        if (300..400).contains(&answer.status) {
            let location = answer.location.clone().unwrap_or_else(|| {
                panic!(
                    "{} answered {} without a Location",
                    request.url, answer.status
                )
            });
            let next = request
                .url
                .join(&location)
                .unwrap_or_else(|e| panic!("a Location that is no URL: {location}: {e}"));
            if next.origin() != provider {
                return Ok(Redirected {
                    location,
                    set_cookies: answer.set_cookies,
                });
            }
            // 307 and 308 repeat the request; the others turn it into a GET.
            request = if matches!(answer.status, 307 | 308) {
                Request {
                    url: next,
                    ..request
                }
            } else {
                Request {
                    method: "GET",
                    url: next,
                    form: None,
                }
            };
            continue;
        }
        let form = (answer.status == 200)
            .then(|| Form::parse(&answer.body))
            .flatten();
        let Some(form) = form else {
            return Err(Stuck {
                url: request.url.to_string(),
                status: answer.status,
                body: answer.body,
            });
        };
        let action = match form.action.as_deref() {
            None | Some("") => request.url.clone(),
            Some(action) => request
                .url
                .join(action)
                .unwrap_or_else(|e| panic!("a form action that is no URL: {action}: {e}")),
        };
        let fields = form
            .fields
            .into_iter()
            .map(|(name, value)| match name.as_str() {
                "login" => (name, login.to_owned()),
                "password" => (name, ANY_PASSWORD.to_owned()),
                _ => (name, value),
            })
            .collect();
        request = Request {
            method: if form.post { "POST" } else { "GET" },
            url: action,
            form: Some(fields),
        };
    }
    panic!("no redirect off the provider after {MAX_STEPS} steps from {authorize_url}")
}

/// One request of the sign-in.
struct Request {
    method: &'static str,
    url: Url,
    /// The form's fields: the body of a POST, the query of a GET.
    form: Option<Vec<(String, String)>>,
}

/// One answer of the provider.
struct Answer {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

/// Sends `request` on a fresh connection, with the cookies of `jar` that are for it.
async fn send(request: &Request, jar: &CookieJar) -> Answer {
    let mut url = request.url.clone();
    assert_eq!(
        url.scheme(),
        "http",
        "the test provider serves plain HTTP on loopback: {url}"
    );
    let encoded = request.form.as_ref().map(|fields| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish()
    });
    let mut body = Bytes::new();
    match (&encoded, request.method) {
        (Some(encoded), "GET") => url.set_query(Some(encoded)),
        (Some(encoded), _) => body = Bytes::from(encoded.clone()),
        (None, _) => {}
    }
    let host = url.host_str().expect("a host").to_owned();
    let port = url.port_or_known_default().expect("a port");
    let exchange = async {
        let stream = TcpStream::connect((host.as_str(), port))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot reach the OpenID Provider at {host}:{port} ({e}): is it running? \
                     scripts/oidc-provider starts it"
                )
            });
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let mut builder = hyper::Request::builder()
            .method(request.method)
            .uri(target)
            .header("host", format!("{host}:{port}"))
            .header("accept", "text/html");
        if let Some(cookie) = jar.header_for(&url) {
            builder = builder.header("cookie", cookie);
        }
        if request.method == "POST" && encoded.is_some() {
            builder = builder.header("content-type", "application/x-www-form-urlencoded");
        }
        let response = sender
            .send_request(builder.body(Full::new(body)).expect("a request"))
            .await
            .unwrap_or_else(|e| panic!("{} {url}: {e}", request.method));
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("a body").to_bytes();
        let text = |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
        Answer {
            status: parts.status.as_u16(),
            location: parts.headers.get(LOCATION).map(text),
            set_cookies: parts.headers.get_all(SET_COOKIE).iter().map(text).collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    };
    tokio::time::timeout(PATIENCE, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer from {} {} in {PATIENCE:?}", request.method, url))
}

/// The cookies the provider set, by name and path (one host: the provider's).
#[derive(Default)]
struct CookieJar {
    cookies: BTreeMap<(String, String), String>,
}

impl CookieJar {
    /// Keeps (or, when expired or emptied, drops) the cookies of an answer to `url`.
    fn store(&mut self, url: &Url, set_cookies: &[String]) {
        for set_cookie in set_cookies {
            let mut parts = set_cookie.split(';');
            let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
                continue;
            };
            let mut path = None;
            let mut expired = value.trim().is_empty();
            for attribute in parts {
                let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
                match key.trim().to_ascii_lowercase().as_str() {
                    "path" if val.trim().starts_with('/') => path = Some(val.trim().to_owned()),
                    "max-age" => expired |= val.trim().parse::<i64>().is_ok_and(|age| age <= 0),
                    "expires" => expired |= val.contains("1970"),
                    _ => {}
                }
            }
            let path = path.unwrap_or_else(|| default_path(url));
            let key = (name.trim().to_owned(), path);
            if expired {
                self.cookies.remove(&key);
            } else {
                self.cookies.insert(key, value.trim().to_owned());
            }
        }
    }

    /// The `Cookie` header for a request to `url`, if any cookie is for its path.
    fn header_for(&self, url: &Url) -> Option<String> {
        let path = url.path();
        let mut matching: Vec<_> = self
            .cookies
            .iter()
            .filter(|((_, cookie_path), _)| path_matches(path, cookie_path))
            .collect();
        // Longer paths first, as browsers send them.
        matching.sort_by_key(|((_, cookie_path), _)| std::cmp::Reverse(cookie_path.len()));
        let header: Vec<String> = matching
            .into_iter()
            .map(|((name, _), value)| format!("{name}={value}"))
            .collect();
        (!header.is_empty()).then(|| header.join("; "))
    }
}

/// RFC 6265 §5.1.4: the directory of the request's path.
fn default_path(url: &Url) -> String {
    match url.path().rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(end) => url.path()[..end].to_owned(),
    }
}

/// RFC 6265 §5.1.4: whether a cookie of `cookie_path` goes with a request for `path`.
fn path_matches(path: &str, cookie_path: &str) -> bool {
    path == cookie_path
        || (path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || path[cookie_path.len()..].starts_with('/')))
}

/// The first form of a page: where it goes, how, and its named inputs with their values.
struct Form {
    action: Option<String>,
    post: bool,
    fields: Vec<(String, String)>,
}

impl Form {
    /// The page's first `<form>`, if it has one.
    fn parse(html: &str) -> Option<Self> {
        let lower = html.to_ascii_lowercase();
        let start = lower.find("<form")?;
        let tag_end = start + lower[start..].find('>')?;
        let form_attributes = attributes(&html[start + "<form".len()..tag_end]);
        let end = lower[tag_end..]
            .find("</form")
            .map_or(html.len(), |end| tag_end + end);
        let action = attribute(&form_attributes, "action");
        let post =
            attribute(&form_attributes, "method").is_some_and(|m| m.eq_ignore_ascii_case("post"));
        let mut fields = Vec::new();
        let mut at = tag_end;
        while let Some(found) = lower[at..end].find("<input") {
            let input = at + found + "<input".len();
            let close = lower[input..end]
                .find('>')
                .map_or(end, |close| input + close);
            let input_attributes = attributes(&html[input..close]);
            if let Some(name) = attribute(&input_attributes, "name") {
                let value = attribute(&input_attributes, "value").unwrap_or_default();
                fields.push((name, value));
            }
            at = close;
        }
        Some(Self {
            action,
            post,
            fields,
        })
    }
}

/// The value of the attribute `name` (lowercase) among a tag's.
fn attribute(attributes: &[(String, String)], name: &str) -> Option<String> {
    attributes
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
}

/// A tag's attributes (the text between its name and its `>`): names lowercased, values
/// unquoted and their character references decoded.
fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = tag.trim_start();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '/')
            .unwrap_or(rest.len());
        if name_end == 0 {
            // A stray `/` (of `/>`) or `=`.
            rest = rest[1..].trim_start();
            continue;
        }
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let mut value = String::new();
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (raw, remaining) = match after.chars().next() {
                Some(quote @ ('"' | '\'')) => {
                    let inner = &after[1..];
                    let close = inner.find(quote).unwrap_or(inner.len());
                    (&inner[..close], inner.get(close + 1..).unwrap_or(""))
                }
                _ => {
                    let close = after
                        .find(|c: char| c.is_whitespace())
                        .unwrap_or(after.len());
                    (&after[..close], &after[close..])
                }
            };
            value = decode_entities(raw);
            rest = remaining.trim_start();
        }
        found.push((name, value));
    }
    found
}

/// Decodes the character references HTML escaping produces (`&amp;`, `&quot;`, `&#39;`,
/// `&#x2F;`, ..); others stay as they are.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .map(|hex| u32::from_str_radix(hex, 16))
                    .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            }?;
            Some((c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_form_of_a_page() {
        let html = r#"<p>x</p><FORM autocomplete="off" action="http://127.0.0.1:1/interaction/a&amp;b" method="post">
            <input type="hidden" name="prompt" value="login"/>
            <input required type="text" name="login" placeholder="Enter any login" autofocus="on">
            <input required type=password name='password'>
            <button type="submit">Sign-in</button></form><form action="/other"></form>"#;
        let form = Form::parse(html).expect("a form");
        assert_eq!(
            form.action.as_deref(),
            Some("http://127.0.0.1:1/interaction/a&b")
        );
        assert!(form.post);
        assert_eq!(
            form.fields,
            [
                ("prompt".to_owned(), "login".to_owned()),
                ("login".to_owned(), String::new()),
                ("password".to_owned(), String::new()),
            ]
        );
        assert!(Form::parse("<h1>oops! something went wrong</h1>").is_none());
    }

    #[test]
    fn sends_cookies_by_path_and_forgets_cleared_ones() {
        let url = Url::parse("http://127.0.0.1:1/auth?x=1").unwrap();
        let mut jar = CookieJar::default();
        jar.store(
            &url,
            &[
                "_session=s1; path=/; expires=Wed, 01 Jan 2099 00:00:00 GMT; httponly".into(),
                "_interaction=i1; path=/interaction/u1; httponly".into(),
                "_interaction_resume=r1; path=/auth/u1".into(),
            ],
        );
        let at = |jar: &CookieJar, path: &str| jar.header_for(&url.join(path).unwrap());
        assert_eq!(
            at(&jar, "/interaction/u1").as_deref(),
            Some("_interaction=i1; _session=s1")
        );
        assert_eq!(
            at(&jar, "/auth/u1").as_deref(),
            Some("_interaction_resume=r1; _session=s1")
        );
        assert_eq!(at(&jar, "/auth/u10").as_deref(), Some("_session=s1"));
        jar.store(
            &url,
            &["_interaction_resume=; path=/auth/u1; expires=Thu, 01 Jan 1970 00:00:00 GMT".into()],
        );
        assert_eq!(at(&jar, "/auth/u1").as_deref(), Some("_session=s1"));
    }

    #[test]
    fn decodes_character_references() {
        assert_eq!(
            decode_entities("a&amp;b&#39;c&#x2F;d&quot;&nope;&"),
            "a&b'c/d\"&nope;&"
        );
    }
}
