//! Command decoder (used by the simulator): no panic on any input, stable re-encoding.
#![no_main]

use baton_proto::{Command, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(c) = Command::decode(data, &limits) {
        let bytes = c.encode().expect("decoded command encodes");
        let again = Command::decode(&bytes, &limits).expect("re-encoded command decodes");
        assert_eq!(again.request_type(), c.request_type());
        assert_eq!(again.encode().expect("encodes"), bytes);
    }
});
