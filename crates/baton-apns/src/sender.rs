//! The push-sender role: what the server needs from APNs, as a small object-safe trait, so the
//! reconciler can be tested with a fake and the real client swapped in at start-up.

use baton_proto::{PushMagic, PushToken, Topic};
use futures::future::BoxFuture;

use crate::client::ApnsClient;
use crate::outcome::PushOutcome;

/// Sends MDM pushes.
pub trait PushSender: Send + Sync + std::fmt::Debug {
    /// The topic pushes go out on; enrollment profiles must name the same one.
    fn topic(&self) -> &Topic;

    /// Sends one push (with whatever retries the sender does) and reports the outcome.
    fn push<'a>(&'a self, token: &'a PushToken, magic: &'a PushMagic)
    -> BoxFuture<'a, PushOutcome>;
}

impl PushSender for ApnsClient {
    fn topic(&self) -> &Topic {
        ApnsClient::topic(self)
    }

    fn push<'a>(
        &'a self,
        token: &'a PushToken,
        magic: &'a PushMagic,
    ) -> BoxFuture<'a, PushOutcome> {
        Box::pin(ApnsClient::push(self, token, magic))
    }
}
