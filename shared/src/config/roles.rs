//! `ROUTE_ROLES`: which roles may call which routes, checked by the authorizer before any
//! function runs. A JSON object from a route pattern to the roles that may call it:
//! `{"GET /admin/*": ["admin"], "ANY /reports/{id}": ["analyst", "admin"]}`.
//!
//! A pattern is a method (or `ANY`) and a path whose segments are literal, `{name}` (any one
//! segment) or, last, `*` (everything below, at least one segment). A request matched by
//! several patterns must satisfy each of them.

use super::ConfigError;
use crate::model::is_role_name;

const NAME: &str = "ROUTE_ROLES";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Any,
}

/// One rule: a route pattern, and the roles of which the caller needs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRoles {
    /// `None` for `ANY`.
    method: Option<String>,
    segments: Vec<Segment>,
    /// Ends in `*`: the path goes on below the segments.
    below: bool,
    pub roles: Vec<String>,
}

impl RouteRoles {
    /// A rule for `pattern` (`METHOD /path`).
    pub fn new(pattern: &str, roles: Vec<String>) -> Result<Self, String> {
        let (method, path) = pattern
            .split_once(' ')
            .ok_or_else(|| format!("{pattern:?}: expected \"METHOD /path\""))?;
        let method = match method {
            "ANY" => None,
            m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => Some(m.to_owned()),
            _ => {
                return Err(format!(
                    "{pattern:?}: the method must be upper case, or ANY"
                ));
            }
        };
        let path = path
            .strip_prefix('/')
            .ok_or_else(|| format!("{pattern:?}: the path must start with /"))?;
        let mut parts: Vec<&str> = path.split('/').collect();
        let below = parts.last() == Some(&"*");
        if below {
            parts.pop();
        }
        let mut segments = Vec::new();
        for part in parts {
            segments.push(match part {
                "" | "*" => {
                    return Err(format!(
                        "{pattern:?}: empty segments and * anywhere but last are not patterns"
                    ));
                }
                p if p.starts_with('{') && p.ends_with('}') && p.len() > 2 => Segment::Any,
                p if p.contains(['{', '}', '*']) => {
                    return Err(format!("{pattern:?}: {p:?} is not a segment"));
                }
                p => Segment::Literal(p.to_owned()),
            });
        }
        if roles.is_empty() || roles.iter().any(|r| !is_role_name(r)) {
            return Err(format!(
                "{pattern:?}: roles must be a non-empty list of names matching [a-z][a-z0-9_-]{{0,31}}"
            ));
        }
        Ok(Self {
            method,
            segments,
            below,
            roles,
        })
    }

    /// The rule as the resource of an IAM policy after the stage's ARN: `METHOD/seg/*`, with
    /// `*` for `ANY` and for each `{name}` (IAM's `*` spans segments: it covers paths below).
    pub fn resource(&self) -> String {
        let mut resource = self.method.clone().unwrap_or_else(|| "*".to_owned());
        for segment in &self.segments {
            resource.push('/');
            resource.push_str(match segment {
                Segment::Literal(literal) => literal,
                Segment::Any => "*",
            });
        }
        if self.below {
            resource.push_str("/*");
        }
        resource
    }

    /// Whether the rule covers `method path` (a path or an API Gateway route's path template).
    pub fn covers(&self, method: &str, path: &str) -> bool {
        if self.method.as_deref().is_some_and(|m| m != method) {
            return false;
        }
        let Some(path) = path.strip_prefix('/') else {
            return false;
        };
        let parts: Vec<&str> = path.split('/').collect();
        let enough = if self.below {
            parts.len() > self.segments.len()
        } else {
            parts.len() == self.segments.len()
        };
        enough
            && self
                .segments
                .iter()
                .zip(&parts)
                .all(|(segment, part)| match segment {
                    Segment::Literal(literal) => literal == part,
                    Segment::Any => !part.is_empty(),
                })
    }
}

pub(crate) fn parse(raw: Option<String>) -> Result<Vec<RouteRoles>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let invalid = |reason: String| ConfigError::Invalid { name: NAME, reason };
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&raw)
        .map_err(|e| invalid(format!("expected a JSON object of route patterns: {e}")))?;
    map.into_iter()
        .map(|(pattern, roles)| {
            let roles: Vec<String> = serde_json::from_value(roles)
                .map_err(|_| invalid(format!("{pattern:?}: roles must be a list of names")))?;
            RouteRoles::new(&pattern, roles).map_err(invalid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str) -> RouteRoles {
        RouteRoles::new(pattern, vec!["admin".into()]).unwrap()
    }

    #[test]
    fn patterns_match_methods_segments_and_what_is_below() {
        let admin = rule("GET /admin/*");
        assert!(admin.covers("GET", "/admin/users"));
        assert!(admin.covers("GET", "/admin/users/{id}"));
        assert!(!admin.covers("GET", "/admin"), "* is at least one segment");
        assert!(!admin.covers("POST", "/admin/users"));
        assert!(!admin.covers("GET", "/administrator/x"));
        let report = rule("ANY /reports/{id}");
        assert!(report.covers("DELETE", "/reports/42"));
        assert!(report.covers("GET", "/reports/{id}"));
        assert!(!report.covers("GET", "/reports"));
        assert!(!report.covers("GET", "/reports/42/more"));
        assert!(!report.covers("GET", "/reports/"));
    }

    #[test]
    fn bad_rules_are_refused() {
        for raw in [
            r#"["admin"]"#,
            r#"{"/admin/*": ["admin"]}"#,
            r#"{"get /admin": ["admin"]}"#,
            r#"{"GET admin": ["admin"]}"#,
            r#"{"GET /a/*/b": ["admin"]}"#,
            r#"{"GET /a//b": ["admin"]}"#,
            r#"{"GET /a{b}": ["admin"]}"#,
            r#"{"GET /admin": []}"#,
            r#"{"GET /admin": ["Admin"]}"#,
            r#"{"GET /admin": "admin"}"#,
        ] {
            assert!(parse(Some(raw.into())).is_err(), "{raw}");
        }
        let rules = parse(Some(
            r#"{"GET /admin/*": ["admin"], "ANY /r": ["a", "b"]}"#.into(),
        ));
        assert_eq!(rules.unwrap().len(), 2);
    }
}
