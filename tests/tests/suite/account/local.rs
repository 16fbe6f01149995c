//! The account routes black-box through the local server and its authorizer: the security
//! history, `DELETE /auth/account` and re-registration of the address, the events kept at
//! `GET /_dev/events`, and `DELETE /admin/users/{id}` refused without the role.

use bytes::Bytes;
use integration_tests::{Harness, PASSWORD, on_both_stores};
use serde_json::json;

on_both_stores!(delete_the_account_over_http_and_register_again,);

async fn delete_the_account_over_http_and_register_again(h: Harness) {
    let h = h.with_dev_events();
    let api = h.serve_local_api().await;
    let email = "http-leaver@example.com";
    let credentials = json!({"email": email, "password": PASSWORD});
    let registered = api.post_json("/auth/register", &credentials, None).await;
    assert_eq!(registered.status, 201, "{:?}", registered.json());
    let access = registered.string("access_token");
    let user_id = registered.json()["user"]["id"].as_str().unwrap().to_owned();

    let history = api
        .get("/auth/security-events?limit=10", Some(&access))
        .await;
    assert_eq!(history.status, 200, "{:?}", history.json());
    let types: Vec<String> = history.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["signed_in", "registered"]);
    assert!(
        history.json()["events"][0]["occurred_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(history.json()["events"][0]["ip_prefix"], "127.0.0.0/24");
    let bad = api
        .get("/auth/security-events?limit=0", Some(&access))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(api.get("/auth/security-events", None).await.status, 401);

    // Not an admin: the authorizer refuses the admin route before any function runs.
    let refused = api
        .send(
            "DELETE",
            &format!("/admin/users/{user_id}"),
            &[("authorization", &format!("Bearer {access}"))],
            Bytes::new(),
        )
        .await;
    assert_eq!(refused.status, 403);

    let delete = |body: serde_json::Value| {
        let (api, access) = (&api, access.clone());
        async move {
            api.send(
                "DELETE",
                "/auth/account",
                &[
                    ("authorization", &format!("Bearer {access}")),
                    ("content-type", "application/json"),
                ],
                Bytes::from(body.to_string()),
            )
            .await
        }
    };
    let wrong = delete(json!({"password": "not the right one at all"})).await;
    assert_eq!(wrong.status, 401, "{:?}", wrong.json());
    let unknown_field = delete(json!({"password": PASSWORD, "confirm": true})).await;
    assert_eq!(unknown_field.status, 400);
    let deleted = delete(json!({"password": PASSWORD})).await;
    assert_eq!(deleted.status, 204, "{:?}", deleted.json());
    // The authorizer refuses the token: API Gateway answers 403 to a denied request.
    assert_eq!(api.get("/auth/me", Some(&access)).await.status, 403);

    let again = api.post_json("/auth/register", &credentials, None).await;
    assert_eq!(again.status, 201, "the address is free at once");
    assert_ne!(again.json()["user"]["id"].as_str().unwrap(), user_id);

    let events = api.get("/_dev/events", None).await;
    assert_eq!(events.status, 200);
    let kept: Vec<(String, String)> = events.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["user_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(kept[1], ("user.deleted".to_owned(), user_id.clone()));
    assert_eq!(kept[2], ("user.registered".to_owned(), user_id.clone()));
    assert_eq!(
        kept[0].0, "user.registered",
        "the new account, newest first"
    );
    let filtered = api.get("/_dev/events?type=user.deleted", None).await;
    assert_eq!(filtered.json()["events"].as_array().unwrap().len(), 1);
}
