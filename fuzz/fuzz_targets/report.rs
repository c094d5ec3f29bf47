//! Report decoder and every typed response view: no panic on any input, stable re-encoding.
#![no_main]

use baton_proto::{CommandReport, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(r) = CommandReport::decode(data, &limits) {
        let _ = r.response_kind();
        let _ = r.profile_list();
        let _ = r.installed_application_list();
        let _ = r.managed_application_list();
        let _ = r.certificate_list();
        let _ = r.device_information();
        let _ = r.security_info();
        let _ = r.user_list();
        let bytes = r.encode().expect("decoded report encodes");
        let again = CommandReport::decode(&bytes, &limits).expect("re-encoded report decodes");
        assert_eq!(again.encode().expect("encodes"), bytes);
    }
});
