//! The edge in front of the API with `EdgeProtection`: a CloudFront distribution with an AWS WAF
//! web ACL, held to the route table (the tight per-client rule covers every sign-in and mail
//! route) and to the names `shared::http::edge` reads (the origin secret's header and
//! variables, the forwarded host).

use integration_tests::template::repository_template;
use regex::Regex;
use serde_yaml_ng::Value;
use shared::http::edge::{
    FORWARDED_HOST_HEADER, ORIGIN_SECRET_ARN_VAR, ORIGIN_SECRET_HEADER, ORIGIN_SECRET_VAR,
};
use shared::routes::{Cost, Function, ROUTES};

use super::{function_roles, policy_roles, tag};

/// The route's path as a request would carry it: each `{parameter}` given a sample value.
fn sample_path(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "sample-1"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn web_acl_rule<'a>(acl: &'a Value, name: &str) -> &'a Value {
    acl["Properties"]["Rules"]
        .as_sequence()
        .expect("EdgeWebAcl: Rules")
        .iter()
        .find(|rule| rule["Name"] == name)
        .unwrap_or_else(|| panic!("EdgeWebAcl: no rule {name}"))
}

/// The tight rule's scope-down regex matches every route that costs a hash, a guess or a mail,
/// and no other path: a route added to the table with a cost is under it, or this fails.
#[test]
fn the_tight_per_client_rule_covers_every_sign_in_and_mail_route() {
    let template = repository_template();
    let acl = template.resource("EdgeWebAcl");
    assert_eq!(
        acl["Properties"]["Scope"], "CLOUDFRONT",
        "EdgeWebAcl: Scope"
    );
    let rule = web_acl_rule(acl, "sign-in-and-mail-per-client");
    let statement = &rule["Statement"]["RateBasedStatement"];
    assert_eq!(statement["AggregateKeyType"], "IP", "per client address");
    assert_eq!(
        tag(&statement["Limit"], "Ref").and_then(Value::as_str),
        Some("EdgeSignInRateLimit")
    );
    let scope = &statement["ScopeDownStatement"]["RegexMatchStatement"];
    let pattern = scope["RegexString"].as_str().expect("RegexString");
    let regex = Regex::new(pattern).expect("the WAF regex compiles");

    let costly_paths: Vec<&str> = ROUTES
        .iter()
        .filter(|r| r.cost != Cost::Plain)
        .map(|r| r.path)
        .collect();
    assert!(!costly_paths.is_empty());
    for path in &costly_paths {
        let sample = sample_path(path);
        assert!(
            regex.is_match(&sample),
            "{path} ({sample}) is not under {pattern}"
        );
        assert!(
            regex.is_match(&format!("{sample}/")),
            "{path}/ is not under {pattern}"
        );
    }
    // A plain route is under the loose rule only, unless it shares its path with a costly one
    // (the WAF rule matches paths, not methods).
    for route in ROUTES
        .iter()
        .filter(|r| r.cost == Cost::Plain && !r.is_default())
    {
        if costly_paths.contains(&route.path) {
            continue;
        }
        let sample = sample_path(route.path);
        assert!(
            !regex.is_match(&sample),
            "{} {} costs nothing, yet {pattern} matches it",
            route.method,
            route.path
        );
    }

    let loose = web_acl_rule(acl, "all-routes-per-client");
    let loose_statement = &loose["Statement"]["RateBasedStatement"];
    assert_eq!(loose_statement["AggregateKeyType"], "IP");
    assert!(
        loose_statement.get("ScopeDownStatement").is_none(),
        "the loose rule counts every request"
    );
    let reputation = web_acl_rule(acl, "aws-ip-reputation");
    assert_eq!(
        reputation["Statement"]["ManagedRuleGroupStatement"]["Name"],
        "AWSManagedRulesAmazonIpReputationList"
    );
    for rule in [rule, loose] {
        assert_eq!(
            rule["Action"]["Block"]["CustomResponse"]["ResponseCode"], 429,
            "{:?}: a blocked client is told to slow down",
            rule["Name"]
        );
    }
}

/// Every function that serves a route reads the origin secret; the authorizer, which serves
/// none, does not.
#[test]
fn every_function_that_serves_a_route_may_read_the_origin_secret() {
    let template = repository_template();
    let expected = function_roles(&template, |_, binary| {
        Function::from_binary(binary) != Some(Function::Authorizer)
    });
    assert_eq!(
        policy_roles(&template, "EdgeOriginSecretReadPolicy"),
        expected,
        "EdgeOriginSecretReadPolicy: Roles"
    );
    assert_eq!(
        template.functions.len(),
        Function::ALL.len(),
        "one template function per shared::routes::Function"
    );
}

/// The names the functions read are the ones the distribution and the template give them.
#[test]
fn the_distribution_sends_what_the_functions_read() {
    let template = repository_template();
    let config = &template.resource("EdgeDistribution")["Properties"]["DistributionConfig"];
    let origins = config["Origins"].as_sequence().expect("Origins");
    let [origin] = origins.as_slice() else {
        panic!("EdgeDistribution: one origin, the API");
    };
    let headers = origin["OriginCustomHeaders"]
        .as_sequence()
        .expect("OriginCustomHeaders");
    assert!(
        headers.iter().any(|h| h["HeaderName"]
            .as_str()
            .is_some_and(|name| name.eq_ignore_ascii_case(ORIGIN_SECRET_HEADER))),
        "EdgeDistribution: the origin secret in {ORIGIN_SECRET_HEADER}"
    );
    assert_eq!(
        origin["CustomOriginConfig"]["OriginProtocolPolicy"],
        "https-only"
    );
    assert_eq!(
        config["DefaultCacheBehavior"]["ViewerProtocolPolicy"],
        "https-only"
    );
    let variables = &template.raw["Globals"]["Function"]["Environment"]["Variables"];
    for name in [ORIGIN_SECRET_ARN_VAR, ORIGIN_SECRET_VAR] {
        assert!(
            variables.get(name).is_some(),
            "template.yaml: Globals declares {name}"
        );
    }
    let code = template.resource("EdgeForwardedHostFunction")["Properties"]["FunctionCode"]
        .as_str()
        .expect("FunctionCode");
    assert!(
        code.contains(&format!("'{FORWARDED_HOST_HEADER}'")),
        "the CloudFront function sets {FORWARDED_HOST_HEADER}"
    );
    let public_url = &template.raw["Outputs"]["PublicUrl"]["Value"];
    let branches = tag(public_url, "If").expect("PublicUrl: !If [EdgeProtected, ...]");
    assert_eq!(branches[0], "EdgeProtected");
    let edge_branch = serde_yaml_ng::to_string(&branches[1]).unwrap();
    assert!(
        edge_branch.contains("EdgeDistribution.DomainName"),
        "PublicUrl with EdgeProtection: the distribution's domain"
    );
}

/// The web ACL's log: bounded, and without tokens, cookies, the origin secret or the OpenID
/// callback's code.
#[test]
fn the_web_acl_log_is_bounded_and_holds_no_secret() {
    let template = repository_template();
    let group = &template.resource("EdgeWafLogGroup")["Properties"];
    let name = tag(&group["LogGroupName"], "Sub")
        .and_then(Value::as_str)
        .expect("LogGroupName: !Sub");
    assert!(
        name.starts_with("aws-waf-logs-"),
        "WAF logs only to aws-waf-logs-*"
    );
    assert_eq!(
        tag(&group["RetentionInDays"], "Ref").and_then(Value::as_str),
        Some("LogRetentionDays")
    );
    let logging = &template.resource("EdgeWafLogging")["Properties"];
    let redacted = logging["RedactedFields"]
        .as_sequence()
        .expect("RedactedFields");
    let headers: Vec<String> = redacted
        .iter()
        .filter_map(|f| f["SingleHeader"]["Name"].as_str())
        .map(str::to_ascii_lowercase)
        .collect();
    for header in ["authorization", "cookie", ORIGIN_SECRET_HEADER] {
        assert!(headers.iter().any(|h| h == header), "redact {header}");
    }
    assert!(
        redacted.iter().any(|f| f.get("QueryString").is_some()),
        "redact the query string"
    );
}
