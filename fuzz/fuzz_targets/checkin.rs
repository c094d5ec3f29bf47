//! Check-in decoder: any bytes decode or fail with a typed error; whatever decodes re-encodes
//! to a plist that decodes to the same encoding.
#![no_main]

use baton_proto::{CheckinMessage, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(msg) = CheckinMessage::decode(data, &limits) {
        let _ = msg.enrollment_id();
        let bytes = msg.encode().expect("decoded message encodes");
        let again = CheckinMessage::decode(&bytes, &limits).expect("re-encoded message decodes");
        assert_eq!(again.encode().expect("encodes"), bytes);
    }
});
