//! [`PushCertStore`] on sled.

use baton_proto::Topic;

use super::SledStore;
use super::layout::PUSH_CERTS;
use super::rows::{decode, encode};
use crate::{PushCertStore, PushCertificate, StoreResult};

impl PushCertStore for SledStore {
    fn put_push_certificate(&self, cert: &PushCertificate) -> StoreResult<()> {
        self.t.push_certs.insert(
            cert.topic.as_str().as_bytes(),
            encode("push certificate", cert)?,
        )?;
        self.commit()
    }

    fn push_certificate(&self, topic: &Topic) -> StoreResult<Option<PushCertificate>> {
        self.t
            .push_certs
            .get(topic.as_str().as_bytes())?
            .map(|v| decode(PUSH_CERTS, &v))
            .transpose()
    }

    fn push_certificates(&self) -> StoreResult<Vec<PushCertificate>> {
        self.t
            .push_certs
            .iter()
            .map(|kv| decode(PUSH_CERTS, &kv?.1))
            .collect()
    }

    fn delete_push_certificate(&self, topic: &Topic) -> StoreResult<bool> {
        let existed = self
            .t
            .push_certs
            .remove(topic.as_str().as_bytes())?
            .is_some();
        if existed {
            self.commit()?;
        }
        Ok(existed)
    }
}
