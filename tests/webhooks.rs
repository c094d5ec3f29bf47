//! Webhooks: check-in events and command results reach the receiver, signed, in order, even when
//! the receiver is down for a while and the server restarts in between; devices are never held
//! up by it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
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
use http::Method;

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
    let events = wait_for(&rx, 4).await;
    assert_eq!(events[0]["type"], "checkin");
    assert_eq!(events[0]["message_type"], "Authenticate");
    assert_eq!(events[1]["message_type"], "TokenUpdate");
    assert_eq!(events[1]["first_token_update"], true);
    // Baton's own DeviceInformation query after enrollment, then ours.
    assert_eq!(events[2]["request_type"], "DeviceInformation");
    assert_eq!(events[3]["type"], "command.result");
    assert_eq!(events[3]["status"], "Acknowledged");
    assert_eq!(events[3]["command_uuid"], uuid.as_str());
    assert_eq!(events[3]["request_type"], "ProfileList");

    // New events flow at once; none is delivered twice.
    let r = server.checkin(&device, device.check_out()).await;
    assert_eq!(r.status, 200);
    let events = wait_for(&rx, 5).await;
    assert_eq!(events[4]["message_type"], "CheckOut");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.events.lock().unwrap().len(), 5);
    let metrics = server.client.get("/metrics").await.text();
    assert!(
        metrics.contains("baton_webhook_events_delivered_total 5"),
        "{metrics}"
    );
    server.stop().await;
}

/// A receiver that answers 413 to every `command.result` event while `refuse_results` is set,
/// and records what it accepts with the time it arrived.
#[derive(Default)]
struct PickyReceiver {
    refuse_results: AtomicBool,
    refused: AtomicU16,
    accepted: Mutex<Vec<(std::time::Instant, serde_json::Value)>>,
    /// When set, answers 503 to everything.
    down: AtomicBool,
}

async fn picky(State(rx): State<Arc<PickyReceiver>>, body: Bytes) -> StatusCode {
    if rx.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
    if rx.refuse_results.load(Ordering::SeqCst) && event["type"] == "command.result" {
        rx.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::PAYLOAD_TOO_LARGE;
    }
    rx.accepted
        .lock()
        .unwrap()
        .push((std::time::Instant::now(), event));
    StatusCode::NO_CONTENT
}

async fn wait_accepted(rx: &PickyReceiver, n: usize, within: Duration) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let events: Vec<serde_json::Value> = rx
            .accepted
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.clone())
            .collect();
        if events.len() >= n {
            return events;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} webhook events arrived within {within:?} ({} refused)",
            events.len(),
            rx.refused.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn metric(text: &str, name: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// One event the receiver refuses with 413 does not hold up the ones after it: they arrive at
/// once (well within the first retry delay), the refused one waits in the dead-letter list,
/// an operator can retry it through the API, and the pending gauge is the true backlog, also
/// after a restart.
#[tokio::test]
async fn a_refused_event_is_dead_lettered_and_does_not_block_later_ones() {
    let rx = Arc::new(PickyReceiver::default());
    rx.refuse_results.store(true, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hook", post(picky))
        .with_state(Arc::clone(&rx));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut hook = WebhookConfig::new(url, None);
    // A retry of the refused event would hold the next ones for at least 5 s.
    hook.initial_backoff = Duration::from_secs(5);
    hook.max_backoff = Duration::from_secs(5);
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
    // The result of Baton's DeviceInformation query after enrollment is accepted.
    rx.refuse_results.store(false, Ordering::SeqCst);
    server.enroll(&device).await;
    wait_accepted(&rx, 3, Duration::from_secs(5)).await;
    rx.refuse_results.store(true, Ordering::SeqCst);
    let uuid = server
        .queue(UDID, serde_json::json!({"request_type": "ProfileList"}))
        .await;
    server.connect(&device, device.idle()).await;
    server
        .connect(&device, device.report(Status::Acknowledged, &uuid))
        .await;
    let refused_at = std::time::Instant::now();
    let r = server.checkin(&device, device.check_out()).await;
    assert_eq!(r.status, 200);
    let events = wait_accepted(&rx, 4, Duration::from_secs(2)).await;
    assert_eq!(events[3]["message_type"], "CheckOut");
    let arrived = rx.accepted.lock().unwrap()[3].0;
    assert!(
        arrived.duration_since(refused_at) < Duration::from_secs(2),
        "the event after the refused one took {:?}",
        arrived.duration_since(refused_at)
    );
    assert_eq!(rx.refused.load(Ordering::SeqCst), 1, "a 413 is not retried");

    // The refused event is in the dead-letter list.
    let r = server
        .api(Method::GET, "/api/v1/webhooks/dead-letters", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let list = r.json();
    let dead = list["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{list}");
    assert_eq!(list["total"], 1);
    assert_eq!(dead[0]["status"], 413);
    assert_eq!(dead[0]["type"], "command.result");
    assert_eq!(dead[0]["event"]["command_uuid"], uuid.as_str());
    let id = dead[0]["id"].as_str().unwrap().to_owned();
    // The last event may reach the receiver a moment before it leaves the outbox.
    wait_pending(&server, 0).await;
    let metrics = server.client.get("/metrics").await.text();
    assert_eq!(metric(&metrics, "baton_webhook_dead_letters"), Some(1));
    assert_eq!(
        metric(&metrics, "baton_webhook_events_dead_lettered_total"),
        Some(1)
    );

    // Retried through the API once the receiver accepts it.
    rx.refuse_results.store(false, Ordering::SeqCst);
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/webhooks/dead-letters/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let events = wait_accepted(&rx, 5, Duration::from_secs(5)).await;
    assert_eq!(events[4]["type"], "command.result");
    assert_eq!(events[4]["command_uuid"], uuid.as_str());
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/webhooks/dead-letters/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "retried twice: {}", r.text());
    let r = server
        .api(Method::GET, "/api/v1/webhooks/dead-letters", None)
        .await;
    assert_eq!(r.json()["dead_letters"].as_array().unwrap().len(), 0);

    // The pending gauge is the true backlog, also after a restart.
    rx.down.store(true, Ordering::SeqCst);
    server.enroll_checkins(&device).await;
    server.stop_running().await;
    server.start_again().await;
    let metrics = server.client.get("/metrics").await.text();
    assert_eq!(metric(&metrics, "baton_webhook_outbox_pending"), Some(2));
    assert_eq!(metric(&metrics, "baton_webhook_dead_letters"), Some(0));
    rx.down.store(false, Ordering::SeqCst);
    wait_accepted(&rx, 7, Duration::from_secs(10)).await;
    wait_pending(&server, 0).await;
    server.stop().await;
}

/// Waits until `baton_webhook_outbox_pending` reads `n`.
async fn wait_pending(server: &TestServer, n: i64) {
    let mut last = None;
    for _ in 0..200 {
        let metrics = server.client.get("/metrics").await.text();
        last = metric(&metrics, "baton_webhook_outbox_pending");
        if last == Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the pending gauge stayed at {last:?}, not {n}");
}
