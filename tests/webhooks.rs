//! Webhooks: check-in events and command results reach the receiver, signed, in order, even when
//! the receiver is down for a while and the server restarts in between; devices are never held
//! up by it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use baton_e2e::{Pki, ServerOptions, TestServer};
use baton_proto::Status;
use baton_server::config::WebhookConfig;
use baton_server::webhook;

const UDID: &str = "00008030-001A2B3C4D5E802E";
const SECRET: &str = "webhook-test-secret";

#[derive(Default)]
struct Receiver {
    up: AtomicBool,
    events: Mutex<Vec<serde_json::Value>>,
}

async fn receive(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if !rx.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let signature = headers
        .get(webhook::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        webhook::verify(SECRET.as_bytes(), &body, signature),
        "bad webhook signature"
    );
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        headers.get("X-Baton-Delivery").unwrap().to_str().unwrap(),
        event["id"].as_str().unwrap()
    );
    rx.events.lock().unwrap().push(event);
    StatusCode::NO_CONTENT
}

async fn wait_for(rx: &Receiver, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..500 {
        let events = rx.events.lock().unwrap().clone();
        if events.len() >= n {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "only {} webhook events arrived",
        rx.events.lock().unwrap().len()
    );
}

#[tokio::test]
async fn events_survive_a_dead_receiver_and_a_restart() {
    let rx = Arc::new(Receiver::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(Arc::clone(&rx));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut hook = WebhookConfig::new(url, Some(SECRET.to_owned()));
    hook.initial_backoff = Duration::from_millis(10);
    hook.max_backoff = Duration::from_millis(50);
    let pki = Pki::generate();
    let device = pki.device(UDID);
    let mut server = TestServer::start(
        &pki,
        ServerOptions {
            tls: false,
            webhook: Some(hook),
            ..ServerOptions::default()
        },
    )
    .await;

    // Receiver down: the device is served normally.
    server.enroll(&device).await;
    let uuid = server
        .queue(UDID, serde_json::json!({"request_type": "ProfileList"}))
        .await;
    let r = server.connect(&device, device.idle()).await;
    assert!(!r.body.is_empty());
    let r = server
        .connect(&device, device.report(Status::Acknowledged, &uuid))
        .await;
    assert_eq!(r.status, 200);

    // Restart while the receiver is still down: the outbox is durable.
    server.restart().await;
    rx.up.store(true, Ordering::SeqCst);
    let events = wait_for(&rx, 3).await;
    assert_eq!(events[0]["type"], "checkin");
    assert_eq!(events[0]["message_type"], "Authenticate");
    assert_eq!(events[1]["message_type"], "TokenUpdate");
    assert_eq!(events[1]["first_token_update"], true);
    assert_eq!(events[2]["type"], "command.result");
    assert_eq!(events[2]["status"], "Acknowledged");
    assert_eq!(events[2]["command_uuid"], uuid.as_str());
    assert_eq!(events[2]["request_type"], "ProfileList");

    // New events flow at once; none is delivered twice.
    let r = server.checkin(&device, device.check_out()).await;
    assert_eq!(r.status, 200);
    let events = wait_for(&rx, 4).await;
    assert_eq!(events[3]["message_type"], "CheckOut");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.events.lock().unwrap().len(), 4);
    let metrics = server.client.get("/metrics").await.text();
    assert!(
        metrics.contains("baton_webhook_events_delivered_total 4"),
        "{metrics}"
    );
    server.stop().await;
}
