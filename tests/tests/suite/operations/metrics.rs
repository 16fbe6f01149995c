//! Every metric of `shared::metrics` is counted where it happens and rendered as an Embedded
//! Metric Format document whose dimensions are the function's name and fixed words: never a
//! user id, an email or an address. One test only, since the metrics recorder is global: nextest
//! runs it in a process of its own (under `cargo test` the other tests' counts join in, which
//! these checks allow: each metric at least once, no user in any dimension).

use std::collections::BTreeMap;

use integration_tests::{Harness, invoke, test_config};
use serde_json::{Value, json};
use shared::authorizer;
use shared::metrics;
use shared::{Password, SignedIn};

const IP: &str = "203.0.113.77";
const PASSWORD: &str = "correct horse battery staple";

fn login_event(email: &str, password: &str) -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/login.json"))
            .unwrap();
    let mut event: Value = serde_json::from_str(&text).unwrap();
    event["body"] = json!(json!({"email": email, "password": password}).to_string());
    event["requestContext"]["http"]["sourceIp"] = json!(IP);
    event
}

fn authorizer_event(token: &str) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/authorizer-v2-request.json"
    ))
    .unwrap();
    let mut event: Value = serde_json::from_str(&text).unwrap();
    event["identitySource"] = json!([format!("Bearer {token}")]);
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_metric_is_counted_and_its_dimensions_name_no_user() {
    metrics::install_emf("test-function");
    let h = Harness::embedded();
    let email = "metrics@example.com";
    let signed_in: SignedIn = h
        .service
        .register(email, &Password::new(PASSWORD), Some(IP))
        .await
        .unwrap();
    let user_id = signed_in.user.id.to_string();

    // Sign-ins: one wrong password, one right; then wrong ones until the email is throttled.
    assert_eq!(
        invoke(&*h.service, &login_event(email, "wrong password here"))
            .await
            .status(),
        401
    );
    assert_eq!(
        invoke(&*h.service, &login_event(email, PASSWORD))
            .await
            .status(),
        200
    );
    let mut throttled = false;
    for _ in 0..10 {
        if invoke(&*h.service, &login_event(email, "wrong password here"))
            .await
            .status()
            == 429
        {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "the email was never throttled");

    // Refresh reuse: spend a token, wait past the grace window, present it again.
    h.service.refresh(&signed_in.refresh_token).await.unwrap();
    h.clock.advance(h.config.refresh_reuse_grace_secs + 1);
    assert!(h.service.refresh(&signed_in.refresh_token).await.is_err());

    // The authorizer: allow, deny, and an error when the store cannot be reached.
    let fresh = h
        .service
        .register("metrics2@example.com", &Password::new(PASSWORD), None)
        .await
        .unwrap();
    let allowed = authorizer::handle(&h.service, authorizer_event(&fresh.access_token)).await;
    assert_eq!(allowed.unwrap()["isAuthorized"], true);
    let denied = authorizer::handle(&h.service, authorizer_event("not-a-token")).await;
    assert_eq!(denied.unwrap()["isAuthorized"], false);
    let down = Harness::unreachable_dynamo(test_config()).await;
    let token = down.mint_token_for_unknown_session(shared::model::TokenType::Access);
    let failed = authorizer::handle(&down.service, authorizer_event(&token)).await;
    assert_eq!(failed, Err(authorizer::AuthorizerError::Unavailable));

    // An event the bus refuses (no such bus at the EventBridge emulator), counted once it
    // has given up.
    let sdk = shared::DynamoStore::sdk_loader().load().await;
    let bus = shared::events::eventbridge::EventBridgeSink::new(&sdk, "no-such-bus");
    let event = shared::events::LifecycleEvent {
        id: uuid::Uuid::now_v7(),
        kind: "user.registered".into(),
        user_id: fresh.user.id,
        occurred_at: "2026-12-04T00:00:00Z".into(),
        detail: Default::default(),
    };
    shared::events::deliver(&bus, &event).await;

    // A mail SES refuses: the "SES" here is DynamoDB Local, which answers SendEmail with a 4xx.
    let not_ses = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("DynamoDB Local"))
        .load()
        .await;
    let mailer = shared::mail::ses::SesMailer::new(&not_ses, "no-reply@example.com");
    let message = shared::mail::Mail::PasswordResetDone.render("someone@example.com");
    shared::mail::deliver(&mailer, &message, "password_reset_done").await;

    let mut rendered = Vec::new();
    metrics::flush_into(&mut rendered).unwrap();
    let rendered = String::from_utf8(rendered).unwrap();
    let mut counted: BTreeMap<(String, String), f64> = BTreeMap::new();
    for line in rendered.lines() {
        let document: Value = serde_json::from_str(line).expect("one JSON document a line");
        let aws = &document["_aws"];
        assert!(aws["Timestamp"].is_u64(), "{line}");
        for directive in aws["CloudWatchMetrics"]
            .as_array()
            .expect("CloudWatchMetrics")
        {
            assert_eq!(directive["Namespace"], metrics::NAMESPACE);
            let names: Vec<&str> = directive["Dimensions"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|set| set.as_array().unwrap())
                .map(|n| n.as_str().unwrap())
                .collect();
            assert!(names.contains(&metrics::FUNCTION_DIMENSION), "{line}");
            let mut label = String::new();
            for name in &names {
                let value = document[*name].as_str().expect("a dimension value");
                for secret in [user_id.as_str(), email, IP, "metrics2@example.com"] {
                    assert!(
                        !value.contains(secret),
                        "dimension {name} carries {secret}: {line}"
                    );
                }
                if *name == metrics::FUNCTION_DIMENSION {
                    assert_eq!(value, "test-function");
                } else {
                    label = value.to_owned();
                }
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                let name = metric["Name"].as_str().unwrap();
                let value = document[name].as_f64().expect("a count");
                *counted.entry((name.to_owned(), label.clone())).or_default() += value;
            }
        }
    }
    for (name, dimension) in metrics::METRICS {
        let labels: Vec<&str> = match dimension {
            Some((_, values)) => values.to_vec(),
            None => vec![""],
        };
        for label in labels {
            if (*name, label) == (metrics::STORE_ERRORS, "Internal") {
                continue; // no internal store error is provoked here
            }
            assert!(
                counted
                    .get(&(name.to_string(), label.to_owned()))
                    .is_some_and(|n| *n >= 1.0),
                "{name} {label} was not counted: {counted:?}\n{rendered}"
            );
        }
    }
}
