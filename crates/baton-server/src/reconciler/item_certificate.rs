//! Which certificate the CA issued for each certificate-item command, and which one each
//! device holds, so that removing the item (or replacing it) revokes the certificate.
//!
//! Records in the keyspace collection [`ITEM_CERTIFICATES_COLLECTION`], JSON
//! [`ItemCertificateRecord`]:
//!
//! - `device|pending|<command uuid>`: written with the queued InstallProfile (same transaction).
//! - `device|installed|<channel>|<PayloadIdentifier>`: the certificate the device acknowledged.
//!
//! [`after_result`] moves them along when the device answers:
//!
//! | Result | Effect |
//! |---|---|
//! | InstallCertificate acknowledged | pending -> installed; a different certificate installed before under the same identifier (the profile replaced it) is revoked |
//! | InstallCertificate refused (Error, CommandFormatError) | the pending certificate is revoked (it never reached the device) |
//! | RemoveCertificate (or RemoveProfile, when the item was deleted) acknowledged | the installed certificate is revoked and forgotten |
//!
//! [`revoke_all`] revokes everything of a device (re-enrollment: removing the MDM profile
//! removed every managed profile with it). Revocation goes to the CA's registry, outside the
//! keyspace transaction: it is idempotent, so a retry after a crash is harmless; a failure is
//! logged and the record kept for the next attempt.

use std::time::SystemTime;

use baton_assign::Intent;
use baton_proto::{CommandUuid, EnrollmentId, Status};
use baton_store::{Keyspace, KeyspaceBatch};
use serde::{Deserialize, Serialize};

use super::certificate_issuer::CertificateIssuer;
use super::device_state::key;
use crate::catalog::assignment_config::{RecordError, collection, encode, read_json, scan_json};

/// Keyspace collection of [`ItemCertificateRecord`]s.
pub const ITEM_CERTIFICATES_COLLECTION: &str = "item_certificates";

/// One issued item certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemCertificateRecord {
    /// Its serial number in the CA's registry.
    pub serial: u64,
}

fn pending_key(device: &EnrollmentId, uuid: &CommandUuid) -> String {
    key(device, &format!("pending|{uuid}"))
}

fn installed_key(device: &EnrollmentId, channel: &EnrollmentId, identifier: &str) -> String {
    key(device, &format!("installed|{channel}|{identifier}"))
}

/// Records, in `batch`, that the command `uuid` for `device` carries the certificate `serial`.
pub fn record_pending(
    batch: &mut KeyspaceBatch,
    device: &EnrollmentId,
    uuid: &CommandUuid,
    serial: u64,
) -> Result<(), RecordError> {
    batch.put(
        &collection(ITEM_CERTIFICATES_COLLECTION)?,
        pending_key(device, uuid).as_bytes(),
        &encode(&ItemCertificateRecord { serial })?,
    );
    Ok(())
}

/// The certificate `device` holds on `channel` under the profile `identifier`, if known.
pub fn installed(
    store: &dyn Keyspace,
    device: &EnrollmentId,
    channel: &EnrollmentId,
    identifier: &str,
) -> Result<Option<ItemCertificateRecord>, RecordError> {
    read_json(
        store,
        ITEM_CERTIFICATES_COLLECTION,
        &installed_key(device, channel, identifier),
    )
}

/// Revokes `serial`; false (logged) when that failed.
fn revoke(
    issuer: &dyn CertificateIssuer,
    device: &EnrollmentId,
    serial: u64,
    now: SystemTime,
) -> bool {
    match issuer.revoke(serial, now) {
        Ok(_) => true,
        Err(error) => {
            tracing::error!(enrollment_id = %device, serial, %error,
                "revoking an item certificate failed; it stays recorded");
            false
        }
    }
}

/// Updates the records (in `batch`) and revokes (at once) after `device` answered the command
/// `uuid` on `channel` with `status`, for `intent`. Nothing happens without an `issuer` or for
/// intents other than certificates.
#[allow(clippy::too_many_arguments)]
pub fn after_result(
    store: &dyn Keyspace,
    batch: &mut KeyspaceBatch,
    issuer: Option<&dyn CertificateIssuer>,
    device: &EnrollmentId,
    channel: &EnrollmentId,
    uuid: &CommandUuid,
    status: Status,
    intent: &Intent,
    now: SystemTime,
) -> Result<(), RecordError> {
    let Some(issuer) = issuer else {
        return Ok(());
    };
    let coll = collection(ITEM_CERTIFICATES_COLLECTION)?;
    match (intent, status) {
        (Intent::InstallCertificate { identifier, .. }, _) => {
            let pending_key = pending_key(device, uuid);
            let Some(pending) = read_json::<ItemCertificateRecord>(
                store,
                ITEM_CERTIFICATES_COLLECTION,
                &pending_key,
            )?
            else {
                return Ok(());
            };
            match status {
                Status::Acknowledged => {
                    let slot = installed_key(device, channel, identifier);
                    let before: Option<ItemCertificateRecord> =
                        read_json(store, ITEM_CERTIFICATES_COLLECTION, &slot)?;
                    if let Some(old) = before.filter(|old| old.serial != pending.serial) {
                        revoke(issuer, device, old.serial, now);
                    }
                    batch.put(&coll, slot.as_bytes(), &encode(&pending)?);
                    batch.delete(&coll, pending_key.as_bytes());
                }
                Status::Error | Status::CommandFormatError => {
                    // It never reached the device.
                    let revoked = revoke(issuer, device, pending.serial, now);
                    if revoked {
                        batch.delete(&coll, pending_key.as_bytes());
                    }
                }
                _ => {}
            }
        }
        // A removal whose item left the catalog is a plain RemoveProfile: the slot tells.
        (
            Intent::RemoveCertificate { identifier, .. } | Intent::RemoveProfile { identifier, .. },
            Status::Acknowledged,
        ) => {
            let slot = installed_key(device, channel, identifier);
            if let Some(old) =
                read_json::<ItemCertificateRecord>(store, ITEM_CERTIFICATES_COLLECTION, &slot)?
                && revoke(issuer, device, old.serial, now)
            {
                batch.delete(&coll, slot.as_bytes());
            }
        }
        _ => {}
    }
    Ok(())
}

/// Revokes every certificate recorded for `device` (pending or installed) and deletes the
/// records in `batch`. Returns how many were revoked.
pub fn revoke_all(
    store: &dyn Keyspace,
    batch: &mut KeyspaceBatch,
    issuer: Option<&dyn CertificateIssuer>,
    device: &EnrollmentId,
    now: SystemTime,
) -> Result<usize, RecordError> {
    let Some(issuer) = issuer else {
        return Ok(0);
    };
    let coll = collection(ITEM_CERTIFICATES_COLLECTION)?;
    let mut revoked = 0;
    for (k, record) in
        scan_json::<ItemCertificateRecord>(store, ITEM_CERTIFICATES_COLLECTION, &key(device, ""))?
    {
        if revoke(issuer, device, record.serial, now) {
            batch.delete(&coll, k.as_bytes());
            revoked += 1;
        }
    }
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use baton_assign::{Channel, IssuedPer, ItemId};
    use baton_store::{SledConfig, SledStore};

    use super::*;
    use crate::reconciler::certificate_issuer::{IssueError, ItemCertificateRequest, ItemIdentity};

    /// Records revocations; never issues.
    #[derive(Debug, Default)]
    struct Revocations(Mutex<Vec<u64>>);

    impl CertificateIssuer for Revocations {
        fn issue(
            &self,
            _: &ItemCertificateRequest<'_>,
            _: SystemTime,
        ) -> Result<ItemIdentity, IssueError> {
            unreachable!("not used")
        }
        fn revoke(&self, serial: u64, _: SystemTime) -> Result<bool, IssueError> {
            self.0.lock().unwrap().push(serial);
            Ok(true)
        }
    }

    fn install() -> Intent {
        Intent::InstallCertificate {
            channel: Channel::Device,
            item: ItemId::new("vpn").unwrap(),
            identifier: Arc::from("com.baton.item.vpn"),
            payload_uuid: Arc::from("U"),
            issued_per: IssuedPer::User,
            subject: "CN=alice".into(),
            email: None,
            validity_days: 1,
        }
    }

    fn remove() -> Intent {
        Intent::RemoveCertificate {
            channel: Channel::Device,
            item: ItemId::new("vpn").unwrap(),
            identifier: Arc::from("com.baton.item.vpn"),
        }
    }

    #[test]
    fn install_replace_fail_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open_with(&SledConfig::new(dir.path())).unwrap();
        let issuer = Revocations::default();
        let device = EnrollmentId::device("UDID-1").unwrap();
        let now = SystemTime::now();
        let answer = |uuid: &CommandUuid, status, intent: &Intent| {
            let mut batch = KeyspaceBatch::new();
            after_result(
                &store,
                &mut batch,
                Some(&issuer),
                &device,
                &device,
                uuid,
                status,
                intent,
                now,
            )
            .unwrap();
            store.apply(&batch).unwrap();
        };
        let queue = |uuid: &CommandUuid, serial| {
            let mut batch = KeyspaceBatch::new();
            record_pending(&mut batch, &device, uuid, serial).unwrap();
            store.apply(&batch).unwrap();
        };
        let slot = || installed(&store, &device, &device, "com.baton.item.vpn").unwrap();
        let (a, b, c, d) = (
            CommandUuid::new("A").unwrap(),
            CommandUuid::new("B").unwrap(),
            CommandUuid::new("C").unwrap(),
            CommandUuid::new("D").unwrap(),
        );

        queue(&a, 7);
        answer(&a, Status::NotNow, &install());
        assert_eq!(slot(), None);
        answer(&a, Status::Acknowledged, &install());
        assert_eq!(slot(), Some(ItemCertificateRecord { serial: 7 }));
        assert!(issuer.0.lock().unwrap().is_empty());

        // A new certificate under the same identifier replaces (and revokes) the old one.
        queue(&b, 8);
        answer(&b, Status::Acknowledged, &install());
        assert_eq!(slot(), Some(ItemCertificateRecord { serial: 8 }));
        assert_eq!(*issuer.0.lock().unwrap(), [7]);

        // A refused install revokes what it carried; the installed one stays.
        queue(&c, 9);
        answer(&c, Status::Error, &install());
        assert_eq!(slot(), Some(ItemCertificateRecord { serial: 8 }));
        assert_eq!(*issuer.0.lock().unwrap(), [7, 9]);

        // Removal revokes the installed one.
        answer(&d, Status::Acknowledged, &remove());
        assert_eq!(slot(), None);
        assert_eq!(*issuer.0.lock().unwrap(), [7, 9, 8]);

        // The item left the catalog: its removal is a plain RemoveProfile, which revokes too.
        let e = CommandUuid::new("E").unwrap();
        queue(&e, 11);
        answer(&e, Status::Acknowledged, &install());
        let plain = Intent::RemoveProfile {
            channel: Channel::Device,
            item: None,
            identifier: Arc::from("com.baton.item.vpn"),
        };
        answer(&d, Status::Acknowledged, &plain);
        assert_eq!(slot(), None);
        assert_eq!(*issuer.0.lock().unwrap(), [7, 9, 8, 11]);

        // Re-enrollment revokes whatever is left.
        queue(&a, 10);
        let mut batch = KeyspaceBatch::new();
        assert_eq!(
            revoke_all(&store, &mut batch, Some(&issuer), &device, now).unwrap(),
            1
        );
        store.apply(&batch).unwrap();
        assert_eq!(*issuer.0.lock().unwrap(), [7, 9, 8, 11, 10]);
        let mut batch = KeyspaceBatch::new();
        assert_eq!(
            revoke_all(&store, &mut batch, Some(&issuer), &device, now).unwrap(),
            0
        );
    }
}
