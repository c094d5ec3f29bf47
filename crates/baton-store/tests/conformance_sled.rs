//! The sled backend passes the conformance suite, check by check (so a failure names its check).

use baton_store::SledStore;
use baton_store::conformance::{CHECKS, run_all, run_one};

#[test]
fn sled_passes_every_check() {
    let make = SledStore::temporary;
    for check in CHECKS {
        if let Err(e) = run_one(check, &make) {
            panic!("{e}");
        }
    }
    run_all(make).unwrap();
}

#[test]
fn unknown_check_names_fail() {
    let make = SledStore::temporary;
    assert!(run_one("no_such_check", &make).is_err());
}
