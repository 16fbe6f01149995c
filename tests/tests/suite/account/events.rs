//! Lifecycle events on EventBridge, through the real SDK client to moto's EventBridge
//! emulator (`scripts/eventbridge-local`, `AWS_ENDPOINT_URL_EVENTBRIDGE`): a bus with a rule
//! whose target is an SQS queue of the same emulator, so what the test reads is what a
//! subscriber's rule would have delivered, not what our code believes it sent.

use std::sync::Arc;

use bytes::Bytes;
use integration_tests::local::LocalApi;
use integration_tests::{Harness, PASSWORD, on_both_stores};
use serde_json::{Value, json};
use shared::Password;
use shared::events::eventbridge::EventBridgeSink;
use shared::service::AccountDeletion;

on_both_stores!(
    lifecycle_events_reach_a_subscriber_of_the_bus,
    an_unreachable_bus_fails_no_request,
);

/// The emulator the test command started; fails loudly without it.
fn emulator() -> LocalApi {
    let url = std::env::var("AWS_ENDPOINT_URL_EVENTBRIDGE").expect(
        "AWS_ENDPOINT_URL_EVENTBRIDGE: run scripts/test, which starts the EventBridge emulator",
    );
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    LocalApi::at(authority.parse().expect("an IP address and port"))
}

/// One call of the emulator's JSON protocol (`AWSEvents.PutRule`, `AmazonSQS.ReceiveMessage`).
async fn call(target: &str, body: Value) -> Value {
    let (service, content_type) = if target.starts_with("AmazonSQS.") {
        ("sqs", "application/x-amz-json-1.0")
    } else {
        ("events", "application/x-amz-json-1.1")
    };
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
    );
    let reply = emulator()
        .send(
            "POST",
            "/",
            &[
                ("content-type", content_type),
                ("x-amz-target", target),
                ("authorization", &authorization),
            ],
            Bytes::from(body.to_string()),
        )
        .await;
    assert_eq!(
        reply.status,
        200,
        "{target}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    serde_json::from_slice(&reply.body).expect("JSON")
}

/// A bus whose every event of ours goes to a new queue; the queue's URL.
async fn subscribed_bus(bus: &str) -> String {
    call("AWSEvents.CreateEventBus", json!({"Name": bus})).await;
    let queue = call("AmazonSQS.CreateQueue", json!({"QueueName": bus})).await;
    call(
        "AWSEvents.PutRule",
        json!({
            "Name": "everything", "EventBusName": bus,
            "EventPattern": json!({"source": [shared::events::SOURCE]}).to_string(),
        }),
    )
    .await;
    call(
        "AWSEvents.PutTargets",
        json!({
            "Rule": "everything", "EventBusName": bus,
            "Targets": [{"Id": "queue", "Arn": format!("arn:aws:sqs:us-east-1:123456789012:{bus}")}],
        }),
    )
    .await;
    queue["QueueUrl"].as_str().expect("a queue URL").to_owned()
}

/// What the queue received, as EventBridge's envelopes.
async fn delivered(queue: &str, at_least: usize) -> Vec<Value> {
    let mut envelopes = Vec::new();
    for _ in 0..50 {
        let received = call(
            "AmazonSQS.ReceiveMessage",
            json!({"QueueUrl": queue, "MaxNumberOfMessages": 10}),
        )
        .await;
        for message in received["Messages"].as_array().into_iter().flatten() {
            let body = message["Body"].as_str().expect("a body");
            envelopes.push(serde_json::from_str::<Value>(body).expect("an envelope"));
        }
        if envelopes.len() >= at_least {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    envelopes
}

async fn sink(bus: &str) -> Arc<EventBridgeSink> {
    let sdk = shared::DynamoStore::sdk_loader().load().await;
    Arc::new(EventBridgeSink::new(&sdk, bus))
}

async fn lifecycle_events_reach_a_subscriber_of_the_bus(h: Harness) {
    let bus = format!("auth-{}", uuid::Uuid::new_v4().simple());
    let queue = subscribed_bus(&bus).await;
    let h = h.with_events(sink(&bus).await);
    let email = "evented@example.com";
    let signed_in = h.register_with_mail(email).await;
    let token = h.link_token(email, "verify-email").await;
    h.service.verify_email(&token).await.unwrap();
    let principal = h.service.authorize(&signed_in.access_token).await.unwrap();
    let new_password = "an entirely new passphrase";
    h.service
        .change_password(
            principal.user_id,
            principal.chain_id,
            &Password::new(PASSWORD),
            &Password::new(new_password),
        )
        .await
        .unwrap();
    let password = Password::new(new_password);
    h.service
        .delete_account(
            principal.user_id,
            principal.chain_id,
            AccountDeletion {
                password: Some(&password),
                code: None,
            },
        )
        .await
        .unwrap();
    h.service.after_answer_idle().await;

    let envelopes = delivered(&queue, 4).await;
    let types: Vec<&str> = envelopes
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "user.registered",
            "user.email_verified",
            "user.password_changed",
            "user.deleted"
        ],
        "in order, and no history-only kind (sign-ins) on the bus"
    );
    for envelope in &envelopes {
        assert_eq!(envelope["source"], shared::events::SOURCE);
        let event = &envelope["detail"];
        assert_eq!(event["type"], envelope["detail-type"]);
        assert_eq!(event["user_id"], signed_in.user.id.to_string());
        assert!(event["id"].as_str().is_some_and(|id| id.len() == 36));
        assert!(event["occurred_at"].as_str().unwrap().ends_with('Z'));
        assert!(event["detail"].is_object());
        let text = envelope.to_string();
        for secret in [
            PASSWORD,
            new_password,
            &signed_in.access_token,
            &signed_in.refresh_token,
            &token,
            email,
        ] {
            assert!(!text.contains(secret), "an event holds no secret: {text}");
        }
    }
}

async fn an_unreachable_bus_fails_no_request(h: Harness) {
    // No such bus: EventBridge refuses every put; the requests still succeed.
    let h = h.with_events(sink("no-such-bus").await);
    let signed_in = h.register("unheard@example.com").await;
    let principal = h.service.authorize(&signed_in.access_token).await.unwrap();
    let password = Password::new(PASSWORD);
    h.service
        .delete_account(
            principal.user_id,
            principal.chain_id,
            AccountDeletion {
                password: Some(&password),
                code: None,
            },
        )
        .await
        .expect("a failed put is not the caller's failure");
    h.service.after_answer_idle().await;
    assert!(
        h.store
            .user_by_id(signed_in.user.id)
            .await
            .unwrap()
            .is_none()
    );
}
