//! [`CertBindingStore`] on sled: two trees kept in step by one transaction.

use baton_proto::EnrollmentId;
use sled::Transactional;

use super::layout::{CERT_BY_ENROLLMENT, CERT_BY_HASH};
use super::rows::decode_id;
use super::{SledStore, abort, tx_error};
use crate::{CertBindingStore, CertHash, StoreError, StoreResult};

fn hash_from(tree: &'static str, v: &[u8]) -> StoreResult<CertHash> {
    <[u8; 32]>::try_from(v)
        .map(CertHash)
        .map_err(|_| StoreError::Corrupt {
            tree,
            reason: "certificate hash is not 32 bytes".into(),
        })
}

impl CertBindingStore for SledStore {
    fn bind_certificate(&self, id: &EnrollmentId, hash: &CertHash) -> StoreResult<()> {
        let id = id.parent();
        let idk = id.as_str().as_bytes();
        (&self.t.cert_by_hash, &self.t.cert_by_enrollment)
            .transaction(|(by_hash, by_enr)| {
                if let Some(owner) = by_hash.get(hash.0)? {
                    if owner.as_ref() == idk {
                        return Ok(());
                    }
                    let owner: EnrollmentId = decode_id(CERT_BY_HASH, &owner).map_err(abort)?;
                    return Err(abort(StoreError::CertificateBoundElsewhere(owner)));
                }
                if let Some(old) = by_enr.get(idk)? {
                    by_hash.remove(old)?;
                }
                by_hash.insert(&hash.0, idk)?;
                by_enr.insert(idk, &hash.0)?;
                Ok(())
            })
            .map_err(tx_error)?;
        self.commit()
    }

    fn cert_enrollment(&self, hash: &CertHash) -> StoreResult<Option<EnrollmentId>> {
        self.t
            .cert_by_hash
            .get(hash.0)?
            .map(|v| decode_id(CERT_BY_HASH, &v))
            .transpose()
    }

    fn enrollment_cert(&self, id: &EnrollmentId) -> StoreResult<Option<CertHash>> {
        self.t
            .cert_by_enrollment
            .get(id.parent().as_str().as_bytes())?
            .map(|v| hash_from(CERT_BY_ENROLLMENT, &v))
            .transpose()
    }
}
