//! The layer in a real axum server: limits per client IP read from `ConnectInfo`.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use ezthrottle_tower::rate_limit::{Algorithm, RateLimitLayer, Rule, Scope};

#[tokio::test]
async fn per_client_ip_limits_in_an_axum_server() {
    let layer = RateLimitLayer::new().rule(Rule::new(
        "per_ip",
        Scope::client_ip(),
        Algorithm::sliding_window(3, Duration::from_secs(60)),
    ));
    let app = Router::new().route("/pay", get(|| async { "paid" })).layer(layer);
    let addr = ezthrottle_test_support::serve_with_peer_addr(app).await;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = http.get(format!("http://{addr}/pay")).send().await.expect("answer");
        statuses.push(response.status().as_u16());
        if response.status() == 200 {
            assert_eq!(response.text().await.expect("body"), "paid");
        } else {
            assert_eq!(response.headers()["retry-after"], "60");
            let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
            assert_eq!(body["limit"], "per_ip");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
}
