//! Matching request paths as API Gateway does, below the route table: the table, the
//! authorizer and the local server all match with these.

use std::collections::BTreeMap;

use lambda_http::{Request, RequestExt};

/// The request's path as API Gateway received it.
pub fn request_path(request: &Request) -> &str {
    let path = request.raw_http_path();
    if path.is_empty() {
        request.uri().path()
    } else {
        path
    }
}

/// The path parameters if `path` matches `pattern`.
pub fn match_path(pattern: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let mut parameters = BTreeMap::new();
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some(parameters),
            (Some(p), Some(s)) if p.starts_with('{') && p.ends_with('}') && !s.is_empty() => {
                parameters.insert(p[1..p.len() - 1].to_owned(), s.to_owned());
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_literal_and_parameter_segments() {
        assert!(match_path("/auth/me", "/auth/me").is_some());
        assert_eq!(
            match_path("/auth/sessions/{id}", "/auth/sessions/abc").unwrap()["id"],
            "abc"
        );
        assert!(match_path("/auth/sessions/{id}", "/auth/sessions/").is_none());
        assert!(match_path("/auth/sessions/{id}", "/auth/sessions/a/b").is_none());
        assert!(match_path("/auth/me", "/auth/me/").is_none());
        assert!(match_path("/auth/me", "/auth").is_none());
    }
}
