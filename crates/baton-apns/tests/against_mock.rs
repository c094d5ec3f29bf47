//! The client against the mock APNs server over real HTTP/2 + TLS with client certificates:
//! wire format, multiplexing over one connection, error classes, retries, reconnects, the
//! circuit breaker.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baton_apns::mock::{MockApns, Reply};
use baton_apns::testing::TestPki;
use baton_apns::{
    ApnsClient, ApnsConfig, ApnsReason, BreakerConfig, Expiration, Failure, PermanentKind,
    PushOutcome, PushSender, RetryPolicy,
};
use baton_proto::{PushMagic, PushToken};

fn token(n: u32) -> PushToken {
    let mut bytes = vec![0xA5; 28];
    bytes.extend_from_slice(&n.to_be_bytes());
    PushToken::new(bytes).unwrap()
}

fn magic(n: u32) -> PushMagic {
    PushMagic::new(format!("{n:08X}-1C2D-4E5F-8A9B-0C1D2E3F4A5B")).unwrap()
}

struct Setup {
    pki: TestPki,
    mock: MockApns,
}

impl Setup {
    async fn new() -> Self {
        let pki = TestPki::generate().unwrap();
        let mock = MockApns::start_with_pki(&pki).await.unwrap();
        Self { pki, mock }
    }

    fn config(&self) -> ApnsConfig {
        ApnsConfig::for_mock(self.mock.base_url(), self.pki.ca_der().unwrap())
    }

    fn client(&self, config: ApnsConfig) -> ApnsClient {
        ApnsClient::new(config, self.pki.push_certificate().unwrap()).unwrap()
    }

    fn requests_for(&self, t: &PushToken) -> Vec<baton_apns::mock::RecordedPush> {
        let hex = t.to_hex();
        self.mock
            .pushes()
            .into_iter()
            .filter(|p| p.token.as_deref() == Some(hex.as_str()))
            .collect()
    }
}

#[tokio::test]
async fn wire_format_path_body_headers_and_client_certificate() {
    let s = Setup::new().await;
    let client = s.client(s.config());
    let (t, m) = (token(7), magic(7));
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let outcome = client.push(&t, &m).await;
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let pushes = s.mock.pushes();
    assert_eq!(pushes.len(), 1);
    let p = &pushes[0];
    assert_eq!(p.method, http::Method::POST);
    assert_eq!(p.path, format!("/3/device/{}", t.to_hex()));
    assert_eq!(p.token.as_deref(), Some(t.to_hex().as_str()));
    assert_eq!(
        std::str::from_utf8(&p.body).unwrap(),
        format!("{{\"mdm\":\"{}\"}}", m.as_str())
    );
    assert_eq!(p.header("apns-push-type"), Some("mdm"));
    assert_eq!(p.header("apns-topic"), Some(s.pki.topic.as_str()));
    assert_eq!(p.header("apns-priority"), Some("10"));
    let expiration: u64 = p.header("apns-expiration").unwrap().parse().unwrap();
    assert!((before + 86_400..=after + 86_400).contains(&expiration));
    assert_eq!(p.client_topic.as_deref(), Some(s.pki.topic.as_str()));
    assert!(p.client_subject.contains(&format!("UID={}", s.pki.topic)));
    assert_eq!(
        outcome,
        PushOutcome::Delivered {
            apns_id: Some(p.apns_id.clone()),
            attempts: 1
        }
    );

    // apns-expiration is configurable.
    let mut config = s.config();
    config.expiration = Expiration::Immediate;
    let immediate = s.client(config);
    assert!(immediate.push(&token(8), &m).await.is_delivered());
    assert_eq!(
        s.requests_for(&token(8))[0].header("apns-expiration"),
        Some("0")
    );
}

#[tokio::test]
async fn five_hundred_concurrent_pushes_share_one_connection() {
    let s = Setup::new().await;
    // Slow answers make the pushes overlap, so the mock sees them in flight together.
    s.mock.set_delay(Duration::from_millis(100));
    let client = s.client(s.config());
    let batch: Vec<_> = (0..500).map(|n| (n, token(n), magic(n))).collect();
    let results = client.push_many(batch).await;

    assert_eq!(results.len(), 500);
    assert!(results.iter().all(|(_, o)| o.is_delivered()));
    let mut keys: Vec<u32> = results.iter().map(|(k, _)| *k).collect();
    keys.sort_unstable();
    assert_eq!(keys, (0..500).collect::<Vec<_>>());
    assert_eq!(s.mock.connections_accepted(), 1);
    assert_eq!(client.stats().connections_opened, 1);
    assert!(s.mock.pushes().iter().all(|p| p.connection == 1));
    assert!(
        s.mock.max_in_flight() >= 100,
        "pushes were not multiplexed: at most {} in flight",
        s.mock.max_in_flight()
    );
}

#[tokio::test]
async fn in_flight_streams_are_bounded() {
    let s = Setup::new().await;
    s.mock.set_delay(Duration::from_millis(50));
    let mut config = s.config();
    config.max_streams_per_connection = 8;
    let client = s.client(config);
    let results = client
        .push_many((0..64).map(|n| (n, token(n), magic(n))))
        .await;
    assert!(results.iter().all(|(_, o)| o.is_delivered()));
    assert!(s.mock.max_in_flight() <= 8, "{}", s.mock.max_in_flight());
}

#[tokio::test]
async fn gone_410_marks_the_token_invalid_and_is_never_retried() {
    let s = Setup::new().await;
    let client = s.client(s.config());
    let t = token(1);
    s.mock
        .fail_token(&t.to_hex(), Reply::new(410, "Unregistered"));
    let outcome = client.push(&t, &magic(1)).await;
    assert!(outcome.token_is_invalid(), "{outcome:?}");
    match &outcome {
        PushOutcome::Permanent {
            kind,
            status,
            reason,
            apns_id,
        } => {
            assert_eq!(*kind, PermanentKind::TokenInvalid);
            assert_eq!(*status, 410);
            assert_eq!(reason, &Some(ApnsReason::Unregistered));
            assert!(apns_id.is_some());
        }
        other => panic!("expected Permanent, got {other:?}"),
    }
    assert_eq!(s.requests_for(&t).len(), 1);

    let bad = token(2);
    s.mock
        .fail_token(&bad.to_hex(), Reply::new(400, "BadDeviceToken"));
    assert!(client.push(&bad, &magic(2)).await.token_is_invalid());
    assert_eq!(s.requests_for(&bad).len(), 1);
}

#[tokio::test]
async fn certificate_errors_are_permanent_but_do_not_condemn_the_token() {
    let s = Setup::new().await;
    let client = s.client(s.config());
    let t = token(3);
    s.mock
        .fail_token(&t.to_hex(), Reply::new(403, "BadCertificateEnvironment"));
    let outcome = client.push(&t, &magic(3)).await;
    assert!(outcome.is_configuration_error(), "{outcome:?}");
    assert!(!outcome.token_is_invalid());
    assert_eq!(s.requests_for(&t).len(), 1);
}

#[tokio::test]
async fn server_error_500_is_retried_and_then_succeeds() {
    let s = Setup::new().await;
    let client = s.client(s.config());
    let t = token(4);
    s.mock
        .fail_token_times(&t.to_hex(), Reply::new(500, "InternalServerError"), 2);
    let outcome = client.push(&t, &magic(4)).await;
    match outcome {
        PushOutcome::Delivered { attempts, .. } => assert_eq!(attempts, 3),
        other => panic!("expected Delivered, got {other:?}"),
    }
    let statuses: Vec<u16> = s.requests_for(&t).iter().map(|p| p.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
}

#[tokio::test]
async fn too_many_requests_backs_off_exponentially_and_gives_up_when_bounded() {
    let s = Setup::new().await;
    let mut config = s.config();
    config.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(60),
        max_backoff: Duration::from_secs(1),
    };
    let client = s.client(config.clone());
    let t = token(5);
    s.mock
        .fail_token_times(&t.to_hex(), Reply::new(429, "TooManyRequests"), 2);
    assert!(client.push(&t, &magic(5)).await.is_delivered());
    let seen = s.requests_for(&t);
    assert_eq!(seen.len(), 3);
    // Equal jitter waits at least half the ceiling: 30 ms, then 60 ms.
    let gap1 = seen[1].received_at - seen[0].received_at;
    let gap2 = seen[2].received_at - seen[1].received_at;
    assert!(gap1 >= Duration::from_millis(30), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(60), "{gap2:?}");

    let stuck = token(6);
    s.mock
        .fail_token(&stuck.to_hex(), Reply::new(429, "TooManyRequests"));
    match client.push(&stuck, &magic(6)).await {
        PushOutcome::Failed {
            last: Failure::Status { status, reason, .. },
            attempts,
        } => {
            assert_eq!((status, attempts), (429, 3));
            assert_eq!(reason, Some(ApnsReason::TooManyRequests));
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(s.requests_for(&stuck).len(), 3);
}

#[tokio::test]
async fn a_dropped_connection_is_reestablished() {
    let s = Setup::new().await;
    let client = s.client(s.config());
    assert!(client.push(&token(10), &magic(10)).await.is_delivered());
    s.mock.drop_next(1);
    let outcome = client.push(&token(11), &magic(11)).await;
    match outcome {
        PushOutcome::Delivered { attempts, .. } => assert_eq!(attempts, 2),
        other => panic!("expected Delivered, got {other:?}"),
    }
    assert_eq!(s.mock.connections_accepted(), 2);
    assert_eq!(client.stats().connections_opened, 2);
    let seen = s.requests_for(&token(11));
    assert_eq!(
        seen.iter().map(|p| p.connection).collect::<Vec<_>>(),
        [1, 2]
    );
}

#[tokio::test]
async fn goaway_leads_to_a_new_connection() {
    let s = Setup::new().await;
    let client = s.client(s.config());
    s.mock.goaway_next();
    assert!(client.push(&token(20), &magic(20)).await.is_delivered());
    // Give the GOAWAY time to arrive, as it would between real pushes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(client.push(&token(21), &magic(21)).await.is_delivered());
    assert_eq!(s.mock.connections_accepted(), 2);
    let last = s.requests_for(&token(21));
    assert_eq!(last.last().map(|p| p.connection), Some(2));
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried() {
    let s = Setup::new().await;
    s.mock.set_delay(Duration::from_millis(400));
    let mut config = s.config();
    config.request_timeout = Duration::from_millis(100);
    config.retry.max_attempts = 2;
    let client = s.client(config);
    match client.push(&token(30), &magic(30)).await {
        PushOutcome::Failed {
            last: Failure::Timeout,
            attempts,
        } => assert_eq!(attempts, 2),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn the_circuit_breaker_stops_sending_while_apns_fails() {
    let s = Setup::new().await;
    s.mock
        .fail_next(1000, Reply::new(503, "ServiceUnavailable"));
    let mut config = s.config();
    config.retry.max_attempts = 1;
    config.breaker = BreakerConfig {
        failure_threshold: 3,
        cooldown: Duration::from_secs(600),
    };
    let client = s.client(config);
    let mut outcomes = Vec::new();
    for n in 0..10 {
        outcomes.push(client.push(&token(n), &magic(n)).await);
    }
    for o in &outcomes[..3] {
        assert!(
            matches!(
                o,
                PushOutcome::Failed {
                    last: Failure::Status { status: 503, .. },
                    attempts: 1
                }
            ),
            "{o:?}"
        );
    }
    for o in &outcomes[3..] {
        assert_eq!(
            o,
            &PushOutcome::Failed {
                last: Failure::CircuitOpen,
                attempts: 0
            }
        );
    }
    assert_eq!(s.mock.request_count(), 3);
}

#[tokio::test]
async fn the_mock_refuses_a_client_certificate_from_another_ca() {
    let s = Setup::new().await;
    let stranger = TestPki::generate().unwrap();
    let mut config = s.config();
    config.retry.max_attempts = 1;
    let client = ApnsClient::new(config, stranger.push_certificate().unwrap()).unwrap();
    let outcome = client.push(&token(40), &magic(40)).await;
    assert!(
        matches!(
            outcome,
            PushOutcome::Failed {
                last: Failure::Transport(_),
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(s.mock.request_count(), 0);
    assert!(s.mock.handshake_failures() >= 1);
}

#[tokio::test]
async fn the_client_refuses_a_server_it_does_not_trust() {
    let s = Setup::new().await;
    let other = TestPki::generate().unwrap();
    let mut config = ApnsConfig::for_mock(s.mock.base_url(), other.ca_der().unwrap());
    config.retry.max_attempts = 1;
    let client = s.client(config);
    let outcome = client.push(&token(41), &magic(41)).await;
    assert!(!outcome.is_delivered());
    assert_eq!(s.mock.request_count(), 0);
}

#[tokio::test]
async fn the_push_sender_trait_drives_the_client() {
    let s = Setup::new().await;
    let sender: Box<dyn PushSender> = Box::new(s.client(s.config()));
    assert_eq!(sender.topic(), &s.pki.topic);
    assert!(sender.push(&token(50), &magic(50)).await.is_delivered());
}
