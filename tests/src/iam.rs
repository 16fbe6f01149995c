//! What API Gateway does with a REST authorizer's policy for a method ARN: IAM's evaluation of
//! `execute-api:Invoke` statements (an explicit `Deny` wins; without an `Allow`, denied), with
//! `*` and `?` wildcards in resources.

use serde_json::Value;

/// IAM's wildcard match: `*` any run of characters (`/` included), `?` any one.
fn matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn resources(statement: &Value) -> Vec<&str> {
    match &statement["Resource"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        other => panic!("a Resource, got {other}"),
    }
}

/// Whether `policy` (an authorizer answer's `policyDocument`) lets the caller invoke `arn`.
pub fn allows(policy: &Value, arn: &str) -> bool {
    let statements = policy["Statement"].as_array().expect("Statement");
    let applies = |effect: &str| {
        statements.iter().any(|s| {
            s["Effect"] == effect
                && s["Action"] == "execute-api:Invoke"
                && resources(s).iter().any(|r| matches(r, arn))
        })
    };
    !applies("Deny") && applies("Allow")
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(matches("a/*", "a/b/c"));
        assert!(matches("a/*/c", "a/b/x/c"));
        assert!(matches("a/?", "a/b"));
        assert!(!matches("a/?", "a/bc"));
        assert!(!matches("a/b", "a/bc"));
        assert!(matches("*", ""));
    }
}
