//! Uploaded-profile parser: no panic on any input, stable re-encoding.
#![no_main]

use baton_proto::{Limits, Profile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(p) = Profile::parse(data, &limits) {
        let bytes = p.to_xml().expect("parsed profile encodes");
        let again = Profile::parse(&bytes, &limits).expect("re-encoded profile parses");
        assert_eq!(again.to_xml().expect("encodes"), bytes);
    }
});
