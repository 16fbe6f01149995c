//! Which address a request comes from, and whether it came through our own edge.
//!
//! With edge protection on (`EdgeProtection` in the template), a CloudFront distribution with
//! an AWS WAF web ACL sits in front of the API. API Gateway then sees CloudFront's address as
//! the source; the client's is in `CloudFront-Viewer-Address`. Anyone can send that header, so
//! it is believed only when the request also carries the origin secret our distribution adds
//! (`X-Origin-Verify`, a value kept in Secrets Manager), checked in constant time. With the
//! protection on, a request without the secret did not come through the distribution (a direct
//! call to the API's own URL, around the web ACL) and is refused before any work. With it off,
//! `CloudFront-Viewer-Address` is ignored and the source address API Gateway saw is the
//! client's.
//!
//! [`EdgeTrust::admit`] runs once per request, before its handler (the serving loop, the local
//! server), and leaves the client's address on the request for [`super::source_ip`].

use std::net::IpAddr;

use aws_lc_rs::digest;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use subtle::ConstantTimeEq;

use super::RequestError;

/// The header our distribution adds to every request it forwards to the API.
pub const ORIGIN_SECRET_HEADER: &str = "x-origin-verify";
/// The viewer's address and port, as CloudFront adds it (`198.51.100.7:46532`, `2001:db8::1:443`).
pub const VIEWER_ADDRESS_HEADER: &str = "cloudfront-viewer-address";
/// The secret itself, for development and tests (the local server, the RIE).
pub const ORIGIN_SECRET_VAR: &str = "EDGE_ORIGIN_SECRET";
/// The host the viewer asked for, which the distribution's viewer-request function copies here
/// (the origin request itself carries the API's own host): where emailed links and a provider's
/// redirect should point.
pub const FORWARDED_HOST_HEADER: &str = "x-forwarded-host";
/// The Secrets Manager secret that holds it, in AWS.
pub const ORIGIN_SECRET_ARN_VAR: &str = "EDGE_ORIGIN_SECRET_ARN";

/// Shortest secret accepted: the template generates 48 characters.
const MIN_SECRET_CHARS: usize = 32;

/// Whom the function trusts to name the client's address.
#[derive(Clone, Default)]
pub enum EdgeTrust {
    /// No edge: the source address API Gateway saw is the client's.
    #[default]
    Direct,
    /// Our distribution: only requests with its origin secret are served.
    Distribution(OriginSecret),
}

impl std::fmt::Debug for EdgeTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EdgeTrust::Direct => "EdgeTrust::Direct",
            EdgeTrust::Distribution(_) => "EdgeTrust::Distribution",
        })
    }
}

/// The origin secret, kept only as its SHA-256 digest: what a request presents is hashed and
/// the digests compared in constant time, so neither its content nor its length leaks.
#[derive(Clone)]
pub struct OriginSecret([u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the edge origin secret must be at least {MIN_SECRET_CHARS} characters")]
pub struct WeakOriginSecret;

impl OriginSecret {
    pub fn new(secret: &str) -> Result<Self, WeakOriginSecret> {
        let secret = secret.trim();
        if secret.chars().count() < MIN_SECRET_CHARS {
            return Err(WeakOriginSecret);
        }
        Ok(Self(sha256(secret.as_bytes())))
    }

    fn matches(&self, presented: &[u8]) -> bool {
        sha256(presented).ct_eq(&self.0).into()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

/// The client's address as [`EdgeTrust::admit`] established it, kept on the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress(pub Option<String>);

/// The public host a request came in on through our distribution, kept on the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicHost(pub String);

impl EdgeTrust {
    /// Admits `request` or refuses it (`403`, before any work), and leaves the client's
    /// address on it. The origin secret is taken off the request either way, so no handler
    /// or log ever sees it.
    pub fn admit(&self, request: &mut Request) -> Result<(), RequestError> {
        let presented = request.headers_mut().remove(ORIGIN_SECRET_HEADER);
        let client = match self {
            EdgeTrust::Direct => gateway_source_ip(request),
            EdgeTrust::Distribution(secret) => {
                if !presented.is_some_and(|value| secret.matches(value.as_bytes())) {
                    tracing::warn!(
                        "refused a request that did not come through the API's distribution"
                    );
                    return Err(RequestError::NotThroughEdge);
                }
                if let Some(host) = forwarded_host(request) {
                    request.extensions_mut().insert(PublicHost(host));
                }
                viewer_address(request).or_else(|| {
                    // Our distribution always adds it; without it the origin request policy
                    // is wrong, and every client would share CloudFront's address.
                    tracing::error!(
                        "the distribution forwarded no valid CloudFront-Viewer-Address: check \
                         its origin request policy"
                    );
                    gateway_source_ip(request)
                })
            }
        };
        request.extensions_mut().insert(ClientAddress(client));
        Ok(())
    }
}

/// The address in `CloudFront-Viewer-Address`: everything before the last `:` (the port).
fn viewer_address(request: &Request) -> Option<String> {
    let value = request
        .headers()
        .get(VIEWER_ADDRESS_HEADER)?
        .to_str()
        .ok()?;
    let (address, port) = value.trim().rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let address = address.trim_start_matches('[').trim_end_matches(']');
    address.parse::<IpAddr>().ok().map(|ip| ip.to_string())
}

/// The viewer's host as the distribution forwarded it: a DNS name, with no port or path.
fn forwarded_host(request: &Request) -> Option<String> {
    let host = request
        .headers()
        .get(FORWARDED_HOST_HEADER)?
        .to_str()
        .ok()?
        .trim();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then(|| host.to_ascii_lowercase())
}

/// The source address API Gateway saw, behind an HTTP API or a REST API.
pub(super) fn gateway_source_ip(request: &Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.http.source_ip.clone(),
        RequestContext::ApiGatewayV1(context) => context.identity.source_ip.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::source_ip;

    const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";

    fn request(headers: &[(&str, &str)]) -> Request {
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "POST /auth/login",
            "rawPath": "/auth/login",
            "rawQueryString": "",
            "headers": headers.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                .collect::<serde_json::Map<_, _>>(),
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
                "domainPrefix": "api", "requestId": "id", "routeKey": "POST /auth/login",
                "stage": "$default", "time": "04/Dec/2026:10:00:00 +0000", "timeEpoch": 0,
                "http": {"method": "POST", "path": "/auth/login", "protocol": "HTTP/1.1",
                         "sourceIp": "130.176.1.1", "userAgent": "test"}
            },
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).expect("a v2 event")
    }

    fn distribution() -> EdgeTrust {
        EdgeTrust::Distribution(OriginSecret::new(SECRET).unwrap())
    }

    #[test]
    fn without_an_edge_the_viewer_header_is_ignored() {
        let mut r = request(&[(VIEWER_ADDRESS_HEADER, "203.0.113.9:443")]);
        EdgeTrust::Direct.admit(&mut r).unwrap();
        assert_eq!(source_ip(&r).as_deref(), Some("130.176.1.1"));
    }

    #[test]
    fn through_the_distribution_the_viewer_is_the_client() {
        for (header, expected) in [
            ("203.0.113.9:46532", "203.0.113.9"),
            ("2001:db8::7:443", "2001:db8::7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
        ] {
            let mut r = request(&[
                (VIEWER_ADDRESS_HEADER, header),
                (ORIGIN_SECRET_HEADER, SECRET),
            ]);
            distribution().admit(&mut r).unwrap();
            assert_eq!(source_ip(&r).as_deref(), Some(expected), "{header}");
            assert!(
                r.headers().get(ORIGIN_SECRET_HEADER).is_none(),
                "the secret is taken off the request"
            );
        }
    }

    #[test]
    fn without_the_secret_a_request_is_refused() {
        for secret in [None, Some("wrong"), Some(&SECRET[1..]), Some("")] {
            let mut headers = vec![(VIEWER_ADDRESS_HEADER, "203.0.113.9:443")];
            headers.extend(secret.map(|s| (ORIGIN_SECRET_HEADER, s)));
            let mut r = request(&headers);
            assert!(
                matches!(
                    distribution().admit(&mut r),
                    Err(RequestError::NotThroughEdge)
                ),
                "{secret:?}"
            );
        }
    }

    #[test]
    fn a_malformed_viewer_address_falls_back_to_the_source() {
        for header in ["", "203.0.113.9", "nonsense:443", "203.0.113.9:port"] {
            let mut r = request(&[
                (VIEWER_ADDRESS_HEADER, header),
                (ORIGIN_SECRET_HEADER, SECRET),
            ]);
            distribution().admit(&mut r).unwrap();
            assert_eq!(source_ip(&r).as_deref(), Some("130.176.1.1"), "{header}");
        }
    }

    #[test]
    fn the_public_host_is_taken_only_from_the_distribution() {
        let forwarded = [
            (ORIGIN_SECRET_HEADER, SECRET),
            (FORWARDED_HOST_HEADER, "Auth.Example.com"),
        ];
        let mut r = request(&forwarded);
        distribution().admit(&mut r).unwrap();
        assert_eq!(
            crate::http::api_base(&r).as_deref(),
            Some("https://auth.example.com")
        );
        let mut direct = request(&[(FORWARDED_HOST_HEADER, "evil.example")]);
        EdgeTrust::Direct.admit(&mut direct).unwrap();
        assert_eq!(
            crate::http::api_base(&direct).as_deref(),
            Some("https://api.example.com")
        );
        for bad in ["evil.example/path", "evil.example:8443", "a b", ""] {
            let mut r = request(&[(ORIGIN_SECRET_HEADER, SECRET), (FORWARDED_HOST_HEADER, bad)]);
            distribution().admit(&mut r).unwrap();
            assert_eq!(
                crate::http::api_base(&r).as_deref(),
                Some("https://api.example.com"),
                "{bad}"
            );
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(OriginSecret::new("short").err(), Some(WeakOriginSecret));
        assert!(OriginSecret::new(SECRET).is_ok());
    }
}
