//! The contract's routes, for the catch-all that answers `404 not_found` and
//! `405 method_not_allowed` the way the contract says. A test keeps this table equal to the
//! routes `template.yaml` declares.

/// `(method, path)` of every route; `{name}` is one path segment.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/auth/register"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"),
    ("POST", "/auth/password"),
    ("GET", "/auth/me"),
    ("GET", "/auth/sessions"),
    ("DELETE", "/auth/sessions/{id}"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/openid-configuration"),
];

/// Whether `path` matches the route pattern `pattern`.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let mut pattern = pattern.split('/');
    let mut path = path.split('/');
    loop {
        match (pattern.next(), path.next()) {
            (None, None) => return true,
            (Some(p), Some(s)) if p.starts_with('{') && p.ends_with('}') => {
                if s.is_empty() {
                    return false;
                }
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return false,
        }
    }
}

/// The methods `path` accepts, as an `Allow` header value; `None` for an unknown path.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    // Each path of the contract takes exactly one method.
    ROUTES
        .iter()
        .find(|(_, pattern)| path_matches(pattern, path))
        .map(|(method, _)| *method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_literal_and_parameter_segments() {
        assert!(path_matches("/auth/me", "/auth/me"));
        assert!(path_matches("/auth/sessions/{id}", "/auth/sessions/abc"));
        assert!(!path_matches("/auth/sessions/{id}", "/auth/sessions/"));
        assert!(!path_matches("/auth/sessions/{id}", "/auth/sessions/a/b"));
        assert!(!path_matches("/auth/me", "/auth/me/"));
        assert!(!path_matches("/auth/me", "/auth"));
    }

    #[test]
    fn allowed_methods_per_path() {
        assert_eq!(allowed_methods("/auth/login"), Some("POST"));
        assert_eq!(allowed_methods("/auth/sessions/123"), Some("DELETE"));
        assert_eq!(allowed_methods("/nope"), None);
    }
}
