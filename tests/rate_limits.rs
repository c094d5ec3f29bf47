//! Per-source rate limits on the anonymous endpoints, over real HTTPS: profile downloads (refused
//! or not) and the trust profile share one bucket, portal sign-in POSTs have their own, and
//! check-ins, the admin API and cheap SCEP operations are not limited. Over the limit: 429 with
//! `Retry-After` and a JSON body, counted in the request metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use baton_e2e::{Pki, ServerOptions, TestServer};
use baton_server::rate_limit::RateLimitSettings;
use http::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_endpoints_answer_429_with_retry_after() {
    let pki = Pki::generate();
    let server = TestServer::start(
        &pki,
        ServerOptions {
            rate_limit: RateLimitSettings {
                burst: 3,
                per_minute: 1,
            },
            ..ServerOptions::default()
        },
    )
    .await;
    // Profile downloads (refused or not) and the trust profile share one bucket.
    for path in ["/mdm/enroll", "/mdm/trust", "/mdm/enroll?token=x"] {
        assert_ne!(server.client.get(path).await.status, 429, "{path}");
    }
    let r = server.client.get("/mdm/enroll").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"], "rate_limited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Portal sign-in POSTs have their own bucket; pages, devices and the API are not limited.
    for _ in 0..3 {
        let r = server
            .client
            .send(
                Method::POST,
                "/portal/no-such-device/sign-in",
                &[(
                    "Content-Type",
                    "application/x-www-form-urlencoded".to_owned(),
                )],
                b"username=a&password=b".to_vec(),
            )
            .await
            .unwrap();
        assert_ne!(r.status, 429);
    }
    let r = server
        .client
        .send(
            Method::POST,
            "/portal/no-such-device/sign-in",
            &[(
                "Content-Type",
                "application/x-www-form-urlencoded".to_owned(),
            )],
            b"username=a&password=b".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 429);
    for _ in 0..5 {
        server.assert_healthy().await;
        let r = server.api(Method::GET, "/api/v1/devices", None).await;
        assert_eq!(r.status, 200);
        assert_ne!(
            server.client.get("/scep?operation=GetCACaps").await.status,
            429
        );
    }
    let metrics = server.client.get("/metrics").await.text();
    // One refusal each, counted under its own endpoint.
    for line in [
        "baton_http_requests_total{endpoint=\"enroll\",status=\"429\"} 1",
        "baton_http_requests_total{endpoint=\"portal_sign_in\",status=\"429\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing in {metrics}");
    }
    server.stop().await;
}
