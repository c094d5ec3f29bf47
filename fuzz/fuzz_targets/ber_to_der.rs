//! BER to DER (device CMS goes through it before any reader): no panic on any input; whatever
//! converts is a fixed point (converting the output again borrows it unchanged), and the canonical
//! form of the output converts to itself.
#![no_main]

use std::borrow::Cow;

use baton_server::ber::{self, BerLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = BerLimits::DEVICE_CMS;
    if let Ok(der) = ber::to_der(data, &limits) {
        match ber::to_der(&der, &limits) {
            Ok(Cow::Borrowed(again)) => assert_eq!(again, &der[..]),
            other => panic!("converted output is not a fixed point: {other:?}"),
        }
        let canonical = ber::to_canonical_der(&der, &limits).expect("converted output converts");
        let again = ber::to_canonical_der(&canonical, &limits).expect("canonical converts");
        assert!(matches!(again, Cow::Borrowed(_)));
    }
    let _ = ber::to_canonical_der(data, &limits);
});
