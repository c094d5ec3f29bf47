//! A PKCS#12 file made by `openssl pkcs12 -export -legacy` (RC2-40 + 3DES, SHA-1 MAC) loads and
//! authenticates to the mock. In its own test binary so that nothing else has loaded OpenSSL's
//! legacy provider first: the test shows the file really needs it.

use baton_apns::mock::MockApns;
use baton_apns::testing::TestPki;
use baton_apns::{ApnsClient, ApnsConfig, PushCertificate};
use baton_proto::{PushMagic, PushToken};

#[tokio::test]
async fn legacy_pkcs12_needs_the_legacy_provider_and_then_works() {
    let pki = TestPki::generate().unwrap();
    let p12 = pki.push_pkcs12_legacy("old-keychain").unwrap();

    // Without the legacy provider OpenSSL 3 cannot decrypt it.
    let plain = openssl::pkcs12::Pkcs12::from_der(&p12)
        .unwrap()
        .parse2("old-keychain");
    assert!(plain.is_err(), "the file should need the legacy provider");

    let cert = PushCertificate::from_pkcs12(&p12, "old-keychain").unwrap();
    assert_eq!(cert.topic(), &pki.topic);

    let mock = MockApns::start_with_pki(&pki).await.unwrap();
    let client = ApnsClient::new(
        ApnsConfig::for_mock(mock.base_url(), pki.ca_der().unwrap()),
        cert,
    )
    .unwrap();
    let outcome = client
        .push(
            &PushToken::new(vec![1; 32]).unwrap(),
            &PushMagic::new("magic").unwrap(),
        )
        .await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    assert_eq!(
        mock.pushes()[0].client_topic.as_deref(),
        Some(pki.topic.as_str())
    );
}
