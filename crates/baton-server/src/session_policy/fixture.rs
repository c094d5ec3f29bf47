//! Test fixture: a store with the nobody user, users, groups and enrolled devices, and a
//! reconciler over it (no catalog, so sign-in and sign-out only enqueue the hand-off checks).

use std::sync::Arc;
use std::time::SystemTime;

use baton_assign::{Group, GroupId, Membership, User};
use baton_proto::{EnrollmentId, PushMagic, PushToken, Topic};
use baton_store::{AuthenticateRecord, Collection, SledStore, Store, TokenUpdateRecord};

use super::{SessionRules, SessionSettings};
use crate::catalog::assignment_config::encode;
use crate::directory::{GROUPS_COLLECTION, USERS_COLLECTION, UserRecord};
use crate::metrics::Metrics;
use crate::push::LoggingPushSink;
use crate::reconciler::{AssignmentSettings, Reconciler};

pub(crate) struct Fixture {
    pub store: Arc<dyn Store>,
    pub reconciler: Reconciler,
    pub rules: SessionRules,
}

pub(crate) fn id(udid: &str) -> EnrollmentId {
    EnrollmentId::device(udid).unwrap()
}

impl Fixture {
    /// A fixture over `store` (seeded with nobody when missing).
    pub fn over(store: Arc<dyn Store>, settings: SessionSettings) -> Self {
        crate::catalog::defaults::seed(store.as_ref(), "https://mdm.test", None, 1).unwrap();
        let reconciler = Reconciler::new(
            Arc::clone(&store),
            Arc::new(LoggingPushSink),
            Arc::new(Metrics::default()),
            AssignmentSettings {
                sign_in_clip_label: None,
                ..Default::default()
            },
        );
        Fixture {
            store,
            reconciler,
            rules: SessionRules::new(settings),
        }
    }

    pub fn new(settings: SessionSettings) -> Self {
        Self::over(Arc::new(SledStore::temporary().unwrap()), settings)
    }

    pub fn add_user(&self, name: &str, disabled: bool) {
        let record = UserRecord {
            user: User::new(name),
            password_hash: None,
            created_at: 1,
            disabled,
        };
        self.store
            .put(
                &Collection::new(USERS_COLLECTION).unwrap(),
                name.as_bytes(),
                &encode(&record).unwrap(),
            )
            .unwrap();
        self.reconciler.invalidate();
    }

    pub fn add_group(&self, name: &str, members: Membership) {
        let group = Group {
            id: GroupId::new(name).unwrap(),
            name: name.to_owned(),
            members,
        };
        self.store
            .put(
                &Collection::new(GROUPS_COLLECTION).unwrap(),
                name.as_bytes(),
                &encode(&group).unwrap(),
            )
            .unwrap();
        self.reconciler.invalidate();
    }

    pub fn enroll(&self, udid: &str, now: SystemTime) -> EnrollmentId {
        let device = id(udid);
        let topic = Topic::new("com.apple.mgmt.External.test").unwrap();
        self.store
            .authenticate(
                &AuthenticateRecord {
                    id: device.clone(),
                    topic: topic.clone(),
                    raw: Vec::new(),
                },
                now,
            )
            .unwrap();
        self.store
            .token_update(
                &TokenUpdateRecord {
                    id: device.clone(),
                    topic,
                    push_token: PushToken::new(vec![7; 32]).unwrap(),
                    push_magic: PushMagic::new("magic").unwrap(),
                    unlock_token: None,
                    raw: Vec::new(),
                },
                now,
            )
            .unwrap();
        device
    }
}
