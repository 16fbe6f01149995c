//! What an on-call engineer gets from `template.yaml`: JSON logs with levels, X-Ray tracing,
//! alarms on the functions' own metrics (held to `shared::metrics`) that notify an optional SNS
//! topic, and the exports other stacks attach their routes with.
//!
//! Beside it, the edge in front of the API with EdgeProtection (`edge`); what an update of one
//! stack does to the routes of every stack (`updates`); and what the functions tell the engineer
//! at run time: their metrics (`metrics`) and their logs, which carry no secret (`log_secrets`); and the functions as AWS runs them: the
//! environment the SAM CLI gives them (`sam_cli`), and their real binaries under AWS's Runtime
//! Interface Emulator (`rie`).

mod deploy_setup;
mod edge;
mod log_secrets;
mod metrics;
mod rie;
mod sam_cli;
mod updates;

use integration_tests::rie::repository;
use integration_tests::template::repository_template;
use serde_yaml_ng::Value;
use shared::metrics::{
    EVENTS_NOT_DELIVERED, MAIL_NOT_SENT, METRICS, NAMESPACE, REFRESH_REUSE, STORE_ERRORS, THROTTLED,
};
use shared::routes::{Cost, ROUTES};

fn tag<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Tagged(tagged) if tagged.tag == name => Some(&tagged.value),
        _ => None,
    }
}

/// The intrinsic functions a parameter-derived value uses, evaluated with `MailFrom` given.
fn evaluate(
    template: &integration_tests::template::Template,
    value: &Value,
    mail_from: &str,
) -> Value {
    let eval = |v: &Value| evaluate(template, v, mail_from);
    let list = |v: &Value| -> Vec<Value> {
        match eval(v) {
            Value::Sequence(items) => items,
            other => panic!("a list, got {other:?}"),
        }
    };
    let Value::Tagged(tagged) = value else {
        return value.clone();
    };
    let args = tagged.value.as_sequence();
    let arg = |i: usize| &args.expect("arguments")[i];
    match tagged.tag.to_string().trim_start_matches('!') {
        "Ref" if tagged.value == "MailFrom" => Value::from(mail_from),
        "Split" => {
            let separator = eval(arg(0));
            let text = eval(arg(1));
            let parts = text.as_str().unwrap().split(separator.as_str().unwrap());
            Value::Sequence(parts.map(Value::from).collect())
        }
        "Join" => {
            let separator = eval(arg(0));
            let joined: Vec<String> = list(arg(1))
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            Value::from(joined.join(separator.as_str().unwrap()))
        }
        "Select" => {
            let index = eval(arg(0)).as_u64().unwrap() as usize;
            list(arg(1))[index].clone()
        }
        "Equals" => Value::from(eval(arg(0)) == eval(arg(1))),
        "Not" => Value::from(!eval(arg(0)).as_bool().unwrap()),
        "If" => {
            let name = arg(0).as_str().unwrap();
            let holds = eval(&template.raw["Conditions"][name]).as_bool().unwrap();
            eval(arg(if holds { 1 } else { 2 }))
        }
        other => panic!("no evaluation of !{other} here"),
    }
}

/// The roles a managed policy is attached to (`Roles: [!Ref <Function>Role, ...]`), sorted.
fn policy_roles(template: &integration_tests::template::Template, policy: &str) -> Vec<String> {
    let mut roles: Vec<String> = template.resource(policy)["Properties"]["Roles"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{policy}: Roles"))
        .iter()
        .map(|role| {
            tag(role, "Ref")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{policy}: Roles: !Ref <Function>Role"))
                .to_owned()
        })
        .collect();
    roles.sort_unstable();
    roles
}

/// The roles of the functions `picks` (by logical id and binary) chooses, sorted.
fn function_roles(
    template: &integration_tests::template::Template,
    picks: impl Fn(&str, &str) -> bool,
) -> Vec<String> {
    let mut roles: Vec<String> = template
        .functions
        .iter()
        .filter(|(id, binary)| picks(id, binary))
        .map(|(id, _)| format!("{id}Role"))
        .collect();
    roles.sort_unstable();
    roles
}

/// Whether the function sends mail: it is given the sender.
fn sends_mail(template: &integration_tests::template::Template, id: &str) -> bool {
    template.resource(id)["Properties"]["Environment"]["Variables"]
        .get("MAIL_FROM")
        .is_some()
}

/// The functions that send mail may, from `MailFrom`'s address and through any identity SES
/// evaluates (the sender's most specific one; in the sandbox, the recipients' too); no other
/// function may send, nor any function from another address.
#[test]
fn the_mailing_functions_may_send_from_mail_froms_address_only() {
    let template = repository_template();
    let policy = &template.resource("MailSendPolicy")["Properties"];
    let expected = function_roles(&template, |id, _| sends_mail(&template, id));
    assert!(expected.len() >= 5, "{expected:?}");
    assert_eq!(
        policy_roles(&template, "MailSendPolicy"),
        expected,
        "MailSendPolicy: Roles, the functions given MAIL_FROM"
    );
    let [statement] = policy["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap()
        .as_slice()
    else {
        panic!("MailSendPolicy: one statement");
    };
    assert_eq!(statement["Action"][0], "ses:SendEmail");
    let resource = tag(&statement["Resource"], "Sub")
        .and_then(Value::as_str)
        .unwrap();
    assert!(resource.ends_with(":identity/*"), "{resource}");
    assert!(
        statement["Condition"]["StringEquals"]
            .get("ses:FromAddress")
            .is_some(),
        "MailSendPolicy: only from MailFrom's address"
    );
    // The address, as CloudFormation computes it from MailFrom.
    let address = &statement["Condition"]["StringEquals"]["ses:FromAddress"];
    for (mail_from, expected) in [
        ("Example <no-reply@example.com>", "no-reply@example.com"),
        ("no-reply@example.com", "no-reply@example.com"),
    ] {
        let value = evaluate(&template, address, mail_from);
        assert_eq!(value, Value::from(expected), "MailFrom {mail_from:?}");
    }
    // No function sends mail by a statement of its own.
    for id in template.functions.keys() {
        let own =
            serde_yaml_ng::to_string(&template.resource(id)["Properties"]["Policies"]).unwrap();
        assert!(
            !own.contains("ses:"),
            "{id}: SES permissions come from MailSendPolicy"
        );
    }
}

#[test]
fn every_function_logs_json_and_is_traced() {
    let template = repository_template();
    let globals = &template.raw["Globals"]["Function"];
    assert_eq!(
        globals["Tracing"], "Active",
        "template.yaml: Globals.Function.Tracing: Active"
    );
    let logging = &globals["LoggingConfig"];
    assert_eq!(
        logging["LogFormat"], "JSON",
        "template.yaml: LogFormat: JSON"
    );
    for level in ["ApplicationLogLevel", "SystemLogLevel"] {
        let parameter = tag(&logging[level], "Ref")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("template.yaml: LoggingConfig.{level}: !Ref a parameter"));
        assert!(
            template.raw["Parameters"].get(parameter).is_some(),
            "template.yaml: no parameter {parameter}"
        );
    }
    for id in template.functions.keys() {
        let own = &template.resource(id)["Properties"];
        assert!(
            own.get("Tracing").is_none() || own["Tracing"] == "Active",
            "{id}: Tracing"
        );
        assert!(
            own["LoggingConfig"].get("LogFormat").is_none(),
            "{id}: the log format comes from Globals"
        );
        assert!(
            own["LoggingConfig"].get("LogGroup").is_some(),
            "{id}: a log group with the stack's retention"
        );
    }
}

/// The metrics an alarm watches: (namespace, name, the function its FunctionName names).
fn watched(alarm: &Value) -> Vec<(String, String, String)> {
    let mut metrics: Vec<&Value> = vec![alarm];
    for query in alarm["Metrics"].as_sequence().into_iter().flatten() {
        if let Some(stat) = query.get("MetricStat") {
            metrics.push(&stat["Metric"]);
        }
    }
    metrics
        .into_iter()
        .filter(|m| m.get("MetricName").is_some())
        .map(|m| {
            let function = m["Dimensions"]
                .as_sequence()
                .into_iter()
                .flatten()
                .find(|d| d["Name"] == "FunctionName")
                .and_then(|d| tag(&d["Value"], "Ref"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            (
                m["Namespace"].as_str().unwrap_or_default().to_owned(),
                m["MetricName"].as_str().unwrap_or_default().to_owned(),
                function,
            )
        })
        .collect()
}

#[test]
fn alarms_watch_real_metrics_and_notify_the_optional_topic() {
    let template = repository_template();
    let resources = template.raw["Resources"].as_mapping().unwrap();
    let alarms: Vec<(&str, &Value)> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(id, r)| (id.as_str().unwrap(), &r["Properties"]))
        .collect();
    let condition = &template.raw["Conditions"]["HasAlarmTopic"];
    assert!(
        tag(condition, "Not").is_some(),
        "template.yaml: Conditions.HasAlarmTopic"
    );
    assert_eq!(
        template.raw["Parameters"]["AlarmTopicArn"]["Default"], "",
        "the topic is optional"
    );
    let mut covered = Vec::new();
    for (id, alarm) in &alarms {
        for actions in ["AlarmActions", "OKActions"] {
            let branches = tag(&alarm[actions], "If")
                .and_then(Value::as_sequence)
                .unwrap_or_else(|| panic!("{id}: {actions}: !If [HasAlarmTopic, ...]"));
            assert_eq!(branches[0], "HasAlarmTopic", "{id}");
        }
        for (namespace, name, function) in watched(alarm) {
            if namespace == "AWS/ApiGateway" {
                let dimensions = serde_yaml_ng::to_string(&alarm["Dimensions"]).unwrap();
                assert!(
                    dimensions.contains("!Ref AuthApi"),
                    "{id}: the API's own metrics"
                );
                covered.push((name, "AuthApi".to_owned()));
                continue;
            }
            assert!(
                template.functions.contains_key(&function),
                "{id}: FunctionName must !Ref a function, got {function:?}"
            );
            match namespace.as_str() {
                "AWS/Lambda" => {}
                ns if ns == NAMESPACE => assert!(
                    METRICS.iter().any(|(known, _)| *known == name),
                    "{id}: {name} is no metric of shared/src/metrics.rs"
                ),
                other => panic!("{id}: namespace {other}"),
            }
            covered.push((name, template.functions[&function].clone()));
        }
    }
    // Every function: its crashes and Lambda's throttles; with a store, its store errors; with
    // budgets, its throttled attempts. The authorizer's latency, the API's 5xx, refresh reuse.
    let mut expected: Vec<(String, String)> = vec![
        ("Duration".into(), "authorizer".into()),
        ("5xx".into(), "AuthApi".into()),
        (REFRESH_REUSE.into(), "refresh".into()),
    ];
    for binary in template.functions.values() {
        expected.push(("Errors".into(), binary.clone()));
        expected.push(("Throttles".into(), binary.clone()));
        if binary != "web" {
            expected.push((STORE_ERRORS.into(), binary.clone()));
        }
        if binary != "web" && binary != "authorizer" {
            expected.push((THROTTLED.into(), binary.clone()));
        }
    }
    for (metric, binary) in &expected {
        assert!(
            covered.iter().any(|(m, b)| m == metric && b == binary),
            "template.yaml: no alarm on {metric} of {binary}"
        );
    }
    // Every function that sends mail is watched for the mail it could not send.
    for (id, binary) in &template.functions {
        if sends_mail(&template, id) {
            assert!(
                covered
                    .iter()
                    .any(|(m, b)| m == MAIL_NOT_SENT && b == binary),
                "template.yaml: no alarm on {MAIL_NOT_SENT} of {binary}, which sends mail"
            );
        }
    }
    // Every function that publishes lifecycle events is watched for the ones it could not.
    for (id, binary) in &template.functions {
        let variables = &template.resource(id)["Properties"]["Environment"]["Variables"];
        if variables.get("EVENT_BUS_NAME").is_some() {
            assert!(
                covered
                    .iter()
                    .any(|(m, b)| m == EVENTS_NOT_DELIVERED && b == binary),
                "template.yaml: no alarm on {EVENTS_NOT_DELIVERED} of {binary}, which publishes events"
            );
        }
    }
}

/// Other stacks put their functions behind this stack's checks with their own API, whose Lambda
/// authorizer is the exported authorizer function (`examples/orders`); nothing is exported to
/// attach routes to AuthApi, whose re-imported definition would remove them (`updates`).
#[test]
fn the_stack_exports_the_authorizer_function_for_other_apis() {
    let template = repository_template();
    for output in ["AuthorizerFunctionArn", "ApiUrl"] {
        let name = &template.raw["Outputs"][output]["Export"]["Name"];
        let name = tag(name, "Sub")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("template.yaml: Outputs.{output}.Export.Name"));
        assert_eq!(name, format!("${{AWS::StackName}}-{output}"));
    }
    let value = &template.raw["Outputs"]["AuthorizerFunctionArn"]["Value"];
    assert_eq!(
        tag(value, "GetAtt").and_then(Value::as_str),
        Some("AuthorizerFunction.Arn")
    );
    for output in ["ApiId", "AuthorizerId"] {
        assert!(
            template.raw["Outputs"].get(output).is_none(),
            "template.yaml exports {output}, an invitation to attach routes to AuthApi"
        );
    }

    // The example imports only exported names, and its authorizer is the same as ours: the
    // route in the cache key, simple responses, payload 2.0.
    let text = std::fs::read_to_string(repository().join("examples/orders/template.yaml"))
        .expect("examples/orders/template.yaml");
    let prefix = "\"${AuthStackName}-";
    for (at, _) in text.match_indices(prefix) {
        let rest = &text[at + prefix.len()..];
        let output = rest.split('"').next().unwrap();
        assert!(
            template.raw["Outputs"][output]["Export"].is_mapping(),
            "examples/orders/template.yaml imports {output}, which template.yaml does not export"
        );
    }
    let example: Value = serde_yaml_ng::from_str(&text).unwrap();
    let theirs = &example["Resources"]["OrdersApi"]["Properties"]["Auth"]["Authorizers"]["SessionAuthorizer"];
    let ours =
        &template.resource("AuthApi")["Properties"]["Auth"]["Authorizers"]["SessionAuthorizer"];
    for key in ["AuthorizerPayloadFormatVersion", "EnableSimpleResponses"] {
        assert_eq!(
            theirs[key], ours[key],
            "examples/orders: SessionAuthorizer.{key}"
        );
    }
    assert_eq!(
        theirs["Identity"]["Context"], ours["Identity"]["Context"],
        "examples/orders: the route in the cache key"
    );
    assert!(
        tag(&theirs["FunctionArn"], "ImportValue").is_some(),
        "examples/orders: the authorizer is the imported AuthorizerFunctionArn"
    );
}

/// The template's parameters for a route's ceiling, by its cost.
fn ceiling_parameters(cost: Cost) -> Option<(&'static str, &'static str)> {
    match cost {
        Cost::Plain => None,
        Cost::SignIn => Some(("SignInThrottlingBurstLimit", "SignInThrottlingRateLimit")),
        Cost::Mail => Some(("MailThrottlingBurstLimit", "MailThrottlingRateLimit")),
    }
}

/// Every route whose requests cost a hash, a guess or a mail has its ceiling, below the API's
/// default, from the parameters of its cost; no other route has one.
#[test]
fn costly_routes_have_ceilings_below_the_api_default() {
    let template = repository_template();
    let api = &template.resource("AuthApi")["Properties"];
    let parameter_of = |setting: &Value| -> String {
        tag(setting, "Ref")
            .and_then(Value::as_str)
            .expect("throttling settings !Ref parameters")
            .to_owned()
    };
    let default_of = |parameter: &str| -> i64 {
        template.raw["Parameters"][parameter]["Default"]
            .as_i64()
            .unwrap_or_else(|| panic!("template.yaml: parameter {parameter} needs a Default"))
    };
    let stage_burst = default_of(&parameter_of(
        &api["DefaultRouteSettings"]["ThrottlingBurstLimit"],
    ));
    let stage_rate = default_of(&parameter_of(
        &api["DefaultRouteSettings"]["ThrottlingRateLimit"],
    ));
    let settings = api["RouteSettings"]
        .as_mapping()
        .expect("template.yaml: HttpApi.Properties.RouteSettings");
    let mut keys: Vec<&str> = settings.keys().filter_map(Value::as_str).collect();
    keys.sort_unstable();
    let mut expected: Vec<String> = ROUTES
        .iter()
        .filter(|r| r.cost != Cost::Plain)
        .map(|r| r.key())
        .collect();
    expected.sort_unstable();
    assert_eq!(
        keys, expected,
        "template.yaml: RouteSettings, one per costly route of shared::routes::ROUTES"
    );
    for route in ROUTES {
        let Some((burst, rate)) = ceiling_parameters(route.cost) else {
            continue;
        };
        let key = route.key();
        let setting = &settings[key.as_str()];
        assert_eq!(
            parameter_of(&setting["ThrottlingBurstLimit"]),
            burst,
            "{key}"
        );
        assert_eq!(parameter_of(&setting["ThrottlingRateLimit"]), rate, "{key}");
        assert!(
            default_of(burst) < stage_burst,
            "{key}: burst below the API's"
        );
        assert!(default_of(rate) < stage_rate, "{key}: rate below the API's");
    }
}

/// A decision depends on the route (`REQUIRE_VERIFIED_EMAIL` admits an unverified address to a
/// few routes only), so with the authorizer cache on, the route must be part of the cache key:
/// one route's decision is never reused for another.
#[test]
fn the_authorizer_cache_key_holds_the_route() {
    let template = repository_template();
    let api = template.resource("AuthApi");
    let identity = &api["Properties"]["Auth"]["Authorizers"]["SessionAuthorizer"]["Identity"];
    let context: Vec<&str> = identity["Context"]
        .as_sequence()
        .expect("SessionAuthorizer's Identity has a Context")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        context,
        ["routeKey"],
        "template.yaml: SessionAuthorizer Identity"
    );
}

/// A rotation is conditioned on the user's epoch: the refresh function may check, not write,
/// the user's item.
#[test]
fn the_refresh_function_may_check_the_user_it_rotates_for() {
    let template = repository_template();
    let refresh = template.resource("RefreshFunction");
    let text = serde_yaml_ng::to_string(&refresh["Properties"]["Policies"]).unwrap();
    assert!(
        text.contains("dynamodb:ConditionCheckItem"),
        "template.yaml: RefreshFunction needs dynamodb:ConditionCheckItem on UsersTable"
    );
}

/// Refresh reuse pages on a rate, not on one flaky client; the access log names the caller and
/// the integration's error.
#[test]
fn the_reuse_alarm_fires_on_a_rate_and_the_access_log_names_the_caller() {
    let template = repository_template();
    let reuse = &template.resource("RefreshReuseAlarm")["Properties"];
    let parameter = tag(&reuse["Threshold"], "Ref")
        .and_then(Value::as_str)
        .expect("RefreshReuseAlarm: Threshold !Ref a parameter");
    let default = template.raw["Parameters"][parameter]["Default"]
        .as_i64()
        .unwrap();
    assert!(default > 1, "{parameter}: {default}");

    let format = template.resource("AuthApi")["Properties"]["AccessLogSettings"]["Format"]
        .as_str()
        .expect("AccessLogSettings.Format");
    let fields: serde_json::Value = serde_json::from_str(format).expect("a JSON access log");
    // The key the authorizer puts in its context (shared::authorizer), under the name API
    // Gateway's access log variables give it.
    assert_eq!(fields["userId"], "$context.authorizer.user_id");
    assert_eq!(
        fields["integrationError"],
        "$context.integrationErrorMessage"
    );
    // The sample events carry the authorizer's real context keys (api::events holds them to a
    // decision), so the key the access log names is one the authorizer gives.
    let me = std::fs::read_to_string(repository().join("events/me.json")).unwrap();
    let sample: serde_json::Value = serde_json::from_str(&me).unwrap();
    assert!(sample["requestContext"]["authorizer"]["lambda"]["user_id"].is_string());
}

/// With `SecretsKmsKeyArn`, exactly the functions that read the signing-key or MFA-key secret may
/// decrypt with its key, and only through Secrets Manager.
#[test]
fn only_the_secrets_readers_may_decrypt_with_their_key() {
    let template = repository_template();
    let policy = template.resource("SecretsKeyDecryptPolicy");
    assert_eq!(policy["Condition"], "HasSecretsKmsKey");
    let properties = &policy["Properties"];
    let readers = function_roles(&template, |id, _| {
        let policies =
            serde_yaml_ng::to_string(&template.resource(id)["Properties"]["Policies"]).unwrap();
        policies.contains("SigningKeySecretArn") || policies.contains("MfaKeySecretArn")
    });
    assert!(readers.len() >= 3, "{readers:?}");
    assert_eq!(
        policy_roles(&template, "SecretsKeyDecryptPolicy"),
        readers,
        "SecretsKeyDecryptPolicy: Roles"
    );
    let statement = &properties["PolicyDocument"]["Statement"][0];
    assert_eq!(statement["Action"][0], "kms:Decrypt");
    assert!(
        statement["Condition"]["StringEquals"]
            .get("kms:ViaService")
            .is_some()
    );
}
