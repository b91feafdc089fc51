//! Webhook-secret management through the envelope and directly.

use ezthrottle_core::{Error, Method};

use crate::support::{Answer, Clients, TestServer};

#[tokio::test]
async fn create_sends_the_secrets_as_a_string_body() {
    let proxy = TestServer::always(|| Answer::proxied(200, serde_json::json!({"status": "ok"}))).await;
    proxy.cloud_client().create_webhook_secret("primary-secret-0001", None).await.expect("created");
    assert_eq!(
        proxy.only_request().body_text(),
        r#"{"scope":"customer","metric_name":"","target_url":"https://ezthrottle.fly.dev/api/v1/webhook-secrets","method":"POST","headers":{"Content-Type":"application/json"},"body":"{\"primary_secret\":\"primary-secret-0001\"}"}"#
    );
}

#[tokio::test]
async fn get_and_delete_send_empty_bodies_and_no_headers() {
    let proxy = TestServer::start(|request| {
        let envelope = request.json();
        match envelope["method"].as_str() {
            Some("GET") => Answer::proxied(
                200,
                serde_json::json!({"customer_id": "cust_1", "primary_secret": "prim****0001", "secondary_secret": null, "has_secondary": false}),
            ),
            _ => Answer::proxied(200, serde_json::json!({"status": "ok", "message": "Webhook secrets deleted"})),
        }
    })
    .await;
    let client = proxy.cloud_client();
    let view = client.get_webhook_secret().await.expect("view");
    assert_eq!(view.primary_secret, "prim****0001");
    assert_eq!(view.customer_id.as_deref(), Some("cust_1"));
    assert!(!view.has_secondary);
    client.delete_webhook_secret().await.expect("deleted");

    let requests = proxy.requests();
    assert_eq!(requests.len(), 2);
    for (request, method) in requests.iter().zip(["GET", "DELETE"]) {
        assert_eq!(
            request.body_text(),
            format!(
                r#"{{"scope":"customer","metric_name":"","target_url":"https://ezthrottle.fly.dev/api/v1/webhook-secrets","method":"{method}","headers":{{}},"body":""}}"#
            )
        );
    }
}

#[tokio::test]
async fn get_without_secrets_is_a_typed_error() {
    let proxy =
        TestServer::always(|| Answer::proxied(404, serde_json::json!({"error": "No webhook secrets configured"})))
            .await;
    let error = proxy.cloud_client().get_webhook_secret().await.expect_err("none");
    assert!(matches!(error, Error::NoWebhookSecrets), "{error:?}");
    assert_eq!(error.to_string(), "no webhook secrets configured; call create_webhook_secret first");
}

#[tokio::test]
async fn rotation_keeps_the_previous_secret_as_secondary() {
    let engine = TestServer::always(|| Answer::json(200, serde_json::json!({"status": "ok"}))).await;
    engine
        .direct_client()
        .rotate_webhook_secret("new-secret-value-002", "old-secret-value-001")
        .await
        .expect("rotated");
    let sent = engine.only_request();
    assert_eq!(sent.method, Method::POST);
    assert_eq!(sent.path, "/api/v1/webhook-secrets");
    assert_eq!(
        sent.json(),
        serde_json::json!({"primary_secret": "new-secret-value-002", "secondary_secret": "old-secret-value-001"})
    );
}

#[tokio::test]
async fn secret_refusals_keep_their_status() {
    let engine =
        TestServer::always(|| Answer::json(400, serde_json::json!({"error": "primary_secret: too short"}))).await;
    let error = engine.direct_client().create_webhook_secret("primary-secret-0001", None).await.expect_err("400");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(400));
    assert!(error.to_string().contains("primary_secret: too short"), "{error}");
}
