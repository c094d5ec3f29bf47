//! The reconciler: runs the assignment engine for a device and does what it plans.
//!
//! [`Reconciler::reconcile`] builds the engine [`Device`] (facts from the Authenticate message,
//! Ordinary or Shared iPad, assignee, portal token), takes the cached [`CompiledConfig`],
//! computes the desired state, loads the observed inventory, in-flight intents and failure
//! records, plans, turns each intent into an MDM command and enqueues them (plan order, one
//! priority, so FIFO) together with the in-flight records and any assignment change in one
//! [`Keyspace::apply_with_enqueue`] transaction, then tells the [`PushSink`].
//!
//! Triggers: the first TokenUpdate ([`Reconciler::channel_enabled`]), Authenticate
//! ([`Reconciler::device_authenticated`]: token rotated, state forgotten), sign-in / sign-out,
//! configuration changes ([`Reconciler::config_changed`]: every device, for now) and command
//! results ([`Reconciler::after_report`]: acknowledged intents update the observed inventory,
//! errors count item failures, ProfileList / ManagedApplicationList results replace it).
//!
//! Certificate items: with a [`CertificateIssuer`] ([`Reconciler::with_certificate_issuer`];
//! the server uses the built-in CA) an InstallCertificate intent issues a new key and
//! certificate, sent as a `com.apple.security.pkcs12` profile; [`item_certificate`] keeps the
//! serial per device and identifier and revokes it when the removal is acknowledged, the
//! install is refused or replaced, or the device re-enrolls. Without an issuer such intents are
//! reported in [`ReconcileOutcome::not_built`] and nothing is sent.

pub mod app_installs;
pub mod certificate_issuer;
pub mod certificate_subject;
pub mod command_build;
pub mod device_info;
pub mod device_state;
pub mod hand_off;
pub mod item_certificate;
pub mod portal_session;
pub mod portal_token;
pub mod progress;
pub mod session_log;
pub mod settings;
pub mod settings_result;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use baton_assign::{
    AttrValue, Channel, CompileError, CompiledConfig, Config, DesiredError, Device, DeviceKind,
    GaveUp, Intent, ItemFailures, ItemProblem, Lint, NOBODY_USERNAME, ObservedApp, ObservedProfile,
    Preview, UnixTime, plan,
};
use baton_proto::plist::Value;
use baton_proto::{
    CheckinMessage, Command, CommandReport, CommandRequest, CommandUuid, EnrollmentId, IdError,
    Limits, Status, Udid,
};
use baton_store::{
    CasOutcome, Collection, Enqueue, KeyspaceBatch, NewCommand, Priority, Store, StoreError,
    unix_millis,
};
use serde::Serialize;

use crate::admin::devices::ASSIGNEE_COLLECTION;
use crate::catalog::assignment_config::{self, RecordError, collection, encode, read_json};
use crate::metrics::Metrics;
use crate::push::PushSink;
use app_installs::APP_INSTALLS_COLLECTION;
pub use certificate_issuer::{BuiltInCaIssuer, CertificateIssuer};
use command_build::{BuildError, build_command};
use device_state::{
    FAILURES_COLLECTION, FailureRecord, IN_FLIGHT_COLLECTION, InFlight, OBSERVED_COLLECTION,
};
use hand_off::{HAND_OFFS_COLLECTION, HandOff, HandOffState};
pub use settings::AssignmentSettings;

/// The session log's `ended_how` when the device authenticated again (re-enrolled).
pub const RE_ENROLLED: &str = "re_enrolled";

/// The session log's `ended_how` when the device left management (CheckOut, e.g. after a
/// RemoveProfile of its MDM profile).
pub const CHECKED_OUT: &str = "checked_out";

/// Why a reconcile (or sign-in/out) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconcileError {
    /// Stored records could not be read.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration does not compile.
    #[error("configuration: {0}")]
    Compile(#[from] CompileError),
    /// The engine refused the device's assignee.
    #[error(transparent)]
    Desired(#[from] DesiredError),
    /// No such (enabled) device.
    #[error("unknown device {0}")]
    UnknownDevice(EnrollmentId),
    /// No such user.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// An id could not be formed.
    #[error("id: {0}")]
    Id(#[from] IdError),
    /// Random bytes were not available.
    #[error("random: {0}")]
    Random(#[from] openssl::error::ErrorStack),
    /// A command could not be encoded.
    #[error("encoding a command: {0}")]
    Encode(String),
    /// Another writer changed the same records; retry.
    #[error("concurrent change, retry")]
    Conflict,
}

/// One command a reconcile enqueued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnqueuedCommand {
    /// Its CommandUUID.
    pub command_uuid: CommandUuid,
    /// Its RequestType.
    pub request_type: String,
    /// The channel.
    pub channel: EnrollmentId,
    /// The catalog item, if any.
    pub item: Option<String>,
    /// True for removals.
    pub removal: bool,
}

/// What one reconcile did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileOutcome {
    /// The assignee it planned for.
    pub assignee: String,
    /// Commands enqueued, in order.
    pub enqueued: Vec<EnqueuedCommand>,
    /// Wanted items that cannot be installed.
    pub problems: Vec<ItemProblem>,
    /// Items given up after repeated failures.
    pub gave_up: Vec<GaveUp>,
    /// Intents that could not become commands (e.g. certificate items: not built).
    pub not_built: Vec<String>,
}

/// Runs the engine for devices and carries out its plans. Shared by every handler.
pub struct Reconciler {
    store: Arc<dyn Store>,
    push: Arc<dyn PushSink>,
    metrics: Arc<Metrics>,
    settings: AssignmentSettings,
    compiled: Mutex<Option<Arc<CompiledConfig>>>,
    serial: Mutex<()>,
    issuer: Option<Arc<dyn CertificateIssuer>>,
    events: crate::webhook::EventSink,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unix_time(now: SystemTime) -> UnixTime {
    UnixTime(unix_millis(now) / 1000)
}

/// A new upper-case v4 CommandUUID.
fn new_uuid() -> Result<CommandUuid, ReconcileError> {
    Ok(CommandUuid::new(
        uuid::Uuid::new_v4().to_string().to_uppercase(),
    )?)
}

impl Reconciler {
    /// A reconciler over `store` that tells `push` about new commands.
    pub fn new(
        store: Arc<dyn Store>,
        push: Arc<dyn PushSink>,
        metrics: Arc<Metrics>,
        settings: AssignmentSettings,
    ) -> Self {
        Reconciler {
            store,
            push,
            metrics,
            settings,
            compiled: Mutex::new(None),
            serial: Mutex::new(()),
            issuer: None,
            events: crate::webhook::EventSink::disabled(),
        }
    }

    /// The same reconciler recording hand-off events for the webhook.
    pub fn with_events(mut self, events: crate::webhook::EventSink) -> Self {
        self.events = events;
        self
    }

    /// The same reconciler issuing certificate items with `issuer` (else they are not sent).
    pub fn with_certificate_issuer(mut self, issuer: Arc<dyn CertificateIssuer>) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// The settings.
    pub fn settings(&self) -> &AssignmentSettings {
        &self.settings
    }

    /// The stored configuration, uncompiled.
    pub fn config(&self) -> Result<Config, ReconcileError> {
        let mut config = assignment_config::load(self.store.as_ref())?;
        config.retry = self.settings.retry;
        Ok(config)
    }

    /// The compiled configuration (cached until [`Self::invalidate`]).
    pub fn compiled(&self) -> Result<Arc<CompiledConfig>, ReconcileError> {
        let mut cache = lock(&self.compiled);
        if let Some(c) = cache.as_ref() {
            return Ok(Arc::clone(c));
        }
        let compiled = Arc::new(self.config()?.compile()?);
        *cache = Some(Arc::clone(&compiled));
        Ok(compiled)
    }

    /// Forgets the compiled configuration (after a directory, catalog or distribution change).
    pub fn invalidate(&self) {
        *lock(&self.compiled) = None;
    }

    /// Lints the stored configuration.
    pub fn lint(&self) -> Result<Vec<Lint>, ReconcileError> {
        Ok(baton_assign::lint(&self.config()?))
    }

    /// After a configuration change: invalidates the cache and reconciles every enabled device.
    /// Returns how many devices got commands.
    ///
    /// When the new configuration differs from the cached one in no item, distribution, user
    /// or group that matters to devices ([`CompiledConfig::changes_since`]), no device is
    /// reconciled; when only some users changed (created, edited, deleted; no group, item or
    /// distribution change), only the devices assigned to them are.
    pub fn config_changed(&self, now: SystemTime) -> Result<usize, ReconcileError> {
        let old = lock(&self.compiled).take();
        let new = self.compiled()?;
        // Only some users changed: only their devices can be affected.
        let mut only_assignees: Option<std::collections::BTreeSet<String>> = None;
        if let Some(old) = old {
            let change = new.changes_since(&old);
            if !change.is_everything() && change.changed_items() == 0 {
                tracing::debug!("configuration change affects no device");
                return Ok(0);
            }
            if change.changed_items() == 0
                && let Some(users) = change.changed_users_only()
            {
                only_assignees = Some(users.iter().cloned().collect());
            }
        }
        let assignees = match &only_assignees {
            Some(_) => Some(self.assignees()?),
            None => None,
        };
        let mut touched = 0;
        for e in self.store.enrollments()? {
            if e.id.is_user_channel() || !e.enabled {
                continue;
            }
            if let (Some(only), Some(assignees)) = (&only_assignees, &assignees) {
                let assignee = assignees
                    .get(e.id.as_str())
                    .map_or(NOBODY_USERNAME, String::as_str);
                if !only.contains(assignee) {
                    continue;
                }
            }
            match self.reconcile(&e.id, now) {
                Ok(o) if !o.enqueued.is_empty() => touched += 1,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(enrollment_id = %e.id, %error, "reconcile after a configuration change failed");
                }
            }
        }
        Ok(touched)
    }

    /// Every recorded assignment: device id -> username.
    fn assignees(&self) -> Result<std::collections::HashMap<String, String>, ReconcileError> {
        let mut out = std::collections::HashMap::new();
        for (k, v) in self
            .store
            .scan_prefix(&Collection::new(ASSIGNEE_COLLECTION)?, b"")?
        {
            if let (Ok(k), Ok(v)) = (String::from_utf8(k), String::from_utf8(v)) {
                out.insert(k, v);
            }
        }
        Ok(out)
    }

    /// The current assignee of a device (`nobody` when none is recorded).
    pub fn assignee(&self, device: &EnrollmentId) -> Result<String, ReconcileError> {
        Ok(self
            .store
            .get(
                &Collection::new(ASSIGNEE_COLLECTION)?,
                device.as_str().as_bytes(),
            )?
            .and_then(|v| String::from_utf8(v).ok())
            .unwrap_or_else(|| NOBODY_USERNAME.to_owned()))
    }

    /// The engine's view of an enrolled device; None when it is unknown or not enabled.
    pub fn engine_device(&self, id: &EnrollmentId) -> Result<Option<Device>, ReconcileError> {
        let id = id.parent();
        let channels = self.store.device_channels(&id)?;
        let Some(record) = channels.iter().find(|c| !c.id.is_user_channel()) else {
            return Ok(None);
        };
        if !record.enabled {
            return Ok(None);
        }
        let info = device_info::of(self.store.as_ref(), &id)?.unwrap_or_default();
        // A Shared iPad says so in DeviceInformation (IsMultiUser) before anyone signs in; a
        // user channel also proves it.
        let shared_ipad =
            info.is_multi_user == Some(true) || channels.iter().any(|c| c.id.is_user_channel());
        let mut device = Device {
            udid: Udid::new(id.as_str())?,
            serial: None,
            kind: if shared_ipad {
                DeviceKind::SharedIpad
            } else {
                DeviceKind::Ordinary
            },
            assignee: self.assignee(&id)?,
            attributes: Default::default(),
        };
        let authenticate = record.authenticate_raw.as_ref().and_then(|raw| {
            match CheckinMessage::decode(raw, &Limits::default()) {
                Ok(CheckinMessage::Authenticate(a)) => Some(a),
                _ => None,
            }
        });
        // DeviceInformation first (iOS sends DeviceName, ModelName and Model nowhere else),
        // then what Authenticate said (macOS and old devices carry more there).
        let (a_serial, a_model, a_product, a_model_name, a_os, a_name) = match authenticate {
            Some(a) => (
                a.serial_number,
                a.model,
                a.product_name,
                a.model_name,
                a.os_version,
                a.device_name,
            ),
            None => Default::default(),
        };
        let product_name = info.product_name.or(a_product);
        device.serial = info.serial_number.or(a_serial);
        for (name, value) in [
            // `model` is the product code (`iPad13,18`): what iOS reports as ProductName.
            ("model", product_name.clone().or(a_model)),
            ("product_name", product_name),
            ("model_name", info.model_name.or(a_model_name)),
            ("os", info.os_version.or(a_os)),
            ("device_name", info.device_name.or(a_name)),
        ] {
            if let Some(v) = value {
                device.attributes.insert(name.to_owned(), AttrValue::Str(v));
            }
        }
        if let Some(supervised) = info.is_supervised {
            device
                .attributes
                .insert("supervised".to_owned(), AttrValue::Bool(supervised));
        }
        if let Some(token) = portal_token::token_of(self.store.as_ref(), &id)? {
            device.attributes.insert(
                portal_token::PORTAL_TOKEN_ATTRIBUTE.to_owned(),
                AttrValue::Str(token),
            );
        }
        if let Some(secret) = portal_session::secret_of(self.store.as_ref(), &id)? {
            device.attributes.insert(
                portal_session::PORTAL_SESSION_ATTRIBUTE.to_owned(),
                AttrValue::Str(secret),
            );
        }
        Ok(Some(device))
    }

    /// Reconciles one device: plan, enqueue, push.
    pub fn reconcile(
        &self,
        device: &EnrollmentId,
        now: SystemTime,
    ) -> Result<ReconcileOutcome, ReconcileError> {
        self.reconcile_with(device, now, KeyspaceBatch::new(), None, &[], &[])
    }

    /// What `username` would get on `device` from its current inventory (changes nothing).
    pub fn preview(
        &self,
        device: &EnrollmentId,
        username: &str,
        now: SystemTime,
    ) -> Result<Preview, ReconcileError> {
        let compiled = self.compiled()?;
        let engine = self
            .engine_device(device)?
            .ok_or_else(|| ReconcileError::UnknownDevice(device.clone()))?;
        let id = device.parent();
        let store = self.store.as_ref();
        Ok(compiled.preview(
            &engine,
            username,
            &device_state::observed(store, &id)?,
            &device_state::in_flight(store, &id)?,
            &device_state::failures(store, &id)?,
            unix_time(now),
        )?)
    }

    fn reconcile_with(
        &self,
        device: &EnrollmentId,
        now: SystemTime,
        mut batch: KeyspaceBatch,
        assignee: Option<&str>,
        attributes: &[(&str, Option<&str>)],
        extra: &[CommandRequest],
    ) -> Result<ReconcileOutcome, ReconcileError> {
        let _serial = lock(&self.serial);
        let id = device.parent();
        let compiled = self.compiled()?;
        let mut engine = self
            .engine_device(&id)?
            .ok_or_else(|| ReconcileError::UnknownDevice(id.clone()))?;
        if let Some(a) = assignee {
            engine.assignee = a.to_owned();
        }
        // Attributes `batch` changes (portal secrets), as they will be once it is applied.
        for (name, value) in attributes {
            match value {
                Some(v) => engine
                    .attributes
                    .insert((*name).to_owned(), AttrValue::Str((*v).to_owned())),
                None => engine.attributes.remove(*name),
            };
        }
        if compiled.user(&engine.assignee).is_none() {
            tracing::warn!(enrollment_id = %id, assignee = %engine.assignee,
                "assignee is not in the directory; planning for nobody");
            engine.assignee = NOBODY_USERNAME.to_owned();
        }
        let store = self.store.as_ref();
        let desired = compiled.desired(&engine)?;
        let observed = device_state::observed(store, &id)?;
        let in_flight = device_state::in_flight(store, &id)?;
        let failures = device_state::failures(store, &id)?;
        // Until the device has said what it is (DeviceInformation), nothing is planned: rules
        // on its name, model or supervision and a Shared iPad's channels depend on the answer.
        let facts_pending = device_info::of(store, &id)?.is_none();
        let mut plan = plan(&desired, &observed, &in_flight, &failures, unix_time(now));
        let mut extra = extra.to_vec();
        if facts_pending {
            plan.intents.clear();
            if !self.device_info_in_flight(&id)? {
                extra.insert(0, device_info::query());
            }
        }
        let channels: BTreeSet<EnrollmentId> = store
            .device_channels(&id)?
            .into_iter()
            .filter(|c| c.enabled)
            .map(|c| c.id)
            .collect();
        let mut outcome = ReconcileOutcome {
            assignee: engine.assignee.clone(),
            problems: plan.problems.clone(),
            gave_up: plan.gave_up.clone(),
            ..ReconcileOutcome::default()
        };
        let mut enqueues = Vec::new();
        let mut new_observed = observed.clone();
        let in_flight_coll = collection(IN_FLIGHT_COLLECTION)?;
        let mut issued = Vec::new();
        for intent in plan.intents {
            let built = match build_command(&intent, self.issuer.as_deref(), &id, now) {
                Ok(b) => b,
                Err(BuildError::Empty) => {
                    new_observed.apply(&intent);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(enrollment_id = %id, error = %e, "intent not sent");
                    outcome.not_built.push(e.to_string());
                    continue;
                }
            };
            // Certificates are only built for the device channel, which is always here.
            issued.extend(built.issued_serial);
            let channel = intent.channel().enrollment_id(&id)?;
            if !channels.contains(&channel) {
                continue;
            }
            let (command, entry) = self.new_command(
                &channel,
                built.request,
                intent.item().map(|i| i.to_string()),
                intent.is_removal(),
            )?;
            if let Some(serial) = built.issued_serial {
                item_certificate::record_pending(&mut batch, &id, &command.uuid, serial)?;
            }
            batch.put(
                &in_flight_coll,
                device_state::in_flight_key(&id, &command.uuid).as_bytes(),
                &encode(&InFlight::Intent { intent })?,
            );
            enqueues.push(Enqueue {
                command,
                to: vec![channel],
            });
            outcome.enqueued.push(entry);
        }
        for request in &extra {
            let (command, entry) = self.new_command(&id, request.clone(), None, false)?;
            batch.put(
                &in_flight_coll,
                device_state::in_flight_key(&id, &command.uuid).as_bytes(),
                &encode(&InFlight::Inventory {
                    request_type: command.request_type.clone(),
                    hand_off: true,
                })?,
            );
            enqueues.push(Enqueue {
                command,
                to: vec![id.clone()],
            });
            outcome.enqueued.push(entry);
        }
        if new_observed != observed {
            batch.put(
                &collection(OBSERVED_COLLECTION)?,
                id.as_str().as_bytes(),
                &encode(&new_observed)?,
            );
        }
        if batch.ops.is_empty() && enqueues.is_empty() {
            return Ok(outcome);
        }
        let applied = store.apply_with_enqueue(&batch, &enqueues, now);
        if !matches!(applied, Ok(CasOutcome::Applied)) {
            // Certificates issued for commands that were not queued never reach a device.
            for serial in issued {
                if let Some(issuer) = &self.issuer
                    && let Err(error) = issuer.revoke(serial, now)
                {
                    tracing::error!(enrollment_id = %id, serial, %error, "revoking an unsent item certificate failed");
                }
            }
        }
        match applied? {
            CasOutcome::Applied => {}
            _ => return Err(ReconcileError::Conflict),
        }
        if !enqueues.is_empty() {
            self.metrics.add_queue_depth(enqueues.len() as i64);
            let notify: Vec<EnrollmentId> = enqueues
                .iter()
                .flat_map(|e| e.to.iter().cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            self.push.commands_enqueued(&notify);
            tracing::info!(enrollment_id = %id, assignee = %outcome.assignee,
                commands = enqueues.len(), "reconcile: commands enqueued");
        }
        Ok(outcome)
    }

    /// Whether a DeviceInformation query of the reconciler is queued and unanswered.
    fn device_info_in_flight(&self, id: &EnrollmentId) -> Result<bool, ReconcileError> {
        Ok(assignment_config::scan_json::<InFlight>(
            self.store.as_ref(),
            IN_FLIGHT_COLLECTION,
            &device_state::key(id, ""),
        )?
        .into_iter()
        .any(|(_, f)| {
            matches!(f, InFlight::Inventory { request_type, .. } if request_type == device_info::REQUEST_TYPE)
        }))
    }

    fn new_command(
        &self,
        channel: &EnrollmentId,
        request: CommandRequest,
        item: Option<String>,
        removal: bool,
    ) -> Result<(NewCommand, EnqueuedCommand), ReconcileError> {
        let command = Command::new(new_uuid()?, request);
        let body = command
            .encode()
            .map_err(|e| ReconcileError::Encode(e.to_string()))?;
        let request_type = command.request_type().to_owned();
        Ok((
            NewCommand {
                uuid: command.uuid.clone(),
                request_type: request_type.clone(),
                body,
                priority: Priority::NORMAL,
            },
            EnqueuedCommand {
                command_uuid: command.uuid,
                request_type,
                channel: channel.clone(),
                item,
                removal,
            },
        ))
    }

    /// Signs `username` in on `device`: assignee := user (with a session record and a fresh
    /// portal session secret, [`portal_session`]), reconcile.
    pub fn sign_in(
        &self,
        device: &EnrollmentId,
        username: &str,
        how: &str,
        now: SystemTime,
    ) -> Result<ReconcileOutcome, ReconcileError> {
        self.sign_in_with(device, username, how, now, KeyspaceBatch::new())
    }

    /// [`Self::sign_in`], also writing `batch` (e.g. the session's lease) in the same
    /// transaction as the assignment and its commands.
    pub fn sign_in_with(
        &self,
        device: &EnrollmentId,
        username: &str,
        how: &str,
        now: SystemTime,
        mut batch: KeyspaceBatch,
    ) -> Result<ReconcileOutcome, ReconcileError> {
        let id = device.parent();
        if username == NOBODY_USERNAME || self.compiled()?.user(username).is_none() {
            return Err(ReconcileError::UnknownUser(username.to_owned()));
        }
        let now_ms = unix_millis(now);
        batch.put(
            &Collection::new(ASSIGNEE_COLLECTION)?,
            id.as_str().as_bytes(),
            username.as_bytes(),
        );
        session_log::end(self.store.as_ref(), &mut batch, &id, "superseded", now_ms)?;
        // A new session starts from what the device answers: failures of earlier sessions
        // are not shown (or held against the items) before the device has been asked again.
        let failures = collection(FAILURES_COLLECTION)?;
        for k in device_state::failure_records(self.store.as_ref(), &id)?.keys() {
            batch.delete(&failures, device_state::key(&id, k).as_bytes());
        }
        if let Some(h) = hand_off::of(self.store.as_ref(), &id)? {
            if h.state.is_not_clean() {
                tracing::warn!(enrollment_id = %id, username, remaining = %h.remaining_text(),
                    "signed in on a device whose hand-off is not clean");
            }
            batch.delete(&collection(HAND_OFFS_COLLECTION)?, id.as_str().as_bytes());
        }
        session_log::start(
            &mut batch,
            &id,
            &session_log::Session {
                username: username.to_owned(),
                started_at: now_ms,
                how: how.to_owned(),
                ended_at: None,
                ended_how: None,
                clean_hand_off: None,
                hand_off_remaining: Vec::new(),
                ready_at: None,
            },
        )?;
        let secret = portal_session::new_secret()?;
        portal_session::start(self.store.as_ref(), &mut batch, &id, &secret)?;
        tracing::info!(enrollment_id = %id, username, how, "sign-in");
        self.reconcile_with(
            &id,
            now,
            batch,
            Some(username),
            &[(portal_session::PORTAL_SESSION_ATTRIBUTE, Some(&secret))],
            &[],
        )
    }

    /// Signs the device out: assignee := nobody, the session's portal secret ends and the
    /// device's portal token rotates (the hand-off), reconcile, then ProfileList and
    /// ManagedApplicationList to verify the hand-off.
    pub fn sign_out(
        &self,
        device: &EnrollmentId,
        how: &str,
        now: SystemTime,
    ) -> Result<ReconcileOutcome, ReconcileError> {
        self.sign_out_with(device, how, now, KeyspaceBatch::new())
    }

    /// [`Self::sign_out`], also writing `batch` (e.g. deleting the session's lease) in the
    /// same transaction.
    pub fn sign_out_with(
        &self,
        device: &EnrollmentId,
        how: &str,
        now: SystemTime,
        mut batch: KeyspaceBatch,
    ) -> Result<ReconcileOutcome, ReconcileError> {
        let id = device.parent();
        batch.put(
            &Collection::new(ASSIGNEE_COLLECTION)?,
            id.as_str().as_bytes(),
            NOBODY_USERNAME.as_bytes(),
        );
        let store = self.store.as_ref();
        let open = session_log::open_session(store, &id)?;
        batch.put(
            &collection(HAND_OFFS_COLLECTION)?,
            id.as_str().as_bytes(),
            &encode(&HandOff::started(
                open.as_ref().map(|(_, s)| s.username.clone()),
                open.map(|(k, _)| k),
                unix_millis(now),
            ))?,
        );
        session_log::end(store, &mut batch, &id, how, unix_millis(now))?;
        portal_session::end(store, &mut batch, &id)?;
        let token = portal_token::new_token()?;
        portal_token::assign(store, &mut batch, &id, &token)?;
        tracing::info!(enrollment_id = %id, how, "sign-out");
        self.reconcile_with(
            &id,
            now,
            batch,
            Some(NOBODY_USERNAME),
            &[
                (portal_token::PORTAL_TOKEN_ATTRIBUTE, Some(&token)),
                (portal_session::PORTAL_SESSION_ATTRIBUTE, None),
            ],
            &[
                CommandRequest::ProfileList,
                CommandRequest::ManagedApplicationList { identifiers: None },
            ],
        )
    }

    /// After an Authenticate (the queue was just cleared): forget the device's observed
    /// inventory, in-flight commands and failures, end its session (`re_enrolled`), assign it
    /// to nobody and rotate its portal token.
    pub fn device_authenticated(
        &self,
        device: &EnrollmentId,
        now: SystemTime,
    ) -> Result<(), ReconcileError> {
        self.device_authenticated_with(device, now, KeyspaceBatch::new())
    }

    /// [`Self::device_authenticated`], also writing `batch` (the session's lease deleted, the
    /// sign-in log entry of the sign-out) in the same transaction.
    pub fn device_authenticated_with(
        &self,
        device: &EnrollmentId,
        now: SystemTime,
        batch: KeyspaceBatch,
    ) -> Result<(), ReconcileError> {
        self.reset_device(device, now, batch, RE_ENROLLED)
    }

    /// After a device channel's CheckOut (the device left management): the same reset as
    /// [`Self::device_authenticated_with`], the session ended `checked_out`, so nothing of the
    /// person who was signed in stays assigned to a device the server can no longer reach.
    pub fn device_checked_out_with(
        &self,
        device: &EnrollmentId,
        now: SystemTime,
        batch: KeyspaceBatch,
    ) -> Result<(), ReconcileError> {
        self.reset_device(device, now, batch, CHECKED_OUT)
    }

    fn reset_device(
        &self,
        device: &EnrollmentId,
        now: SystemTime,
        mut batch: KeyspaceBatch,
        ended_how: &str,
    ) -> Result<(), ReconcileError> {
        let _serial = lock(&self.serial);
        let id = device.parent();
        let store = self.store.as_ref();
        batch.delete(&collection(OBSERVED_COLLECTION)?, id.as_str().as_bytes());
        batch.delete(
            &collection(APP_INSTALLS_COLLECTION)?,
            id.as_str().as_bytes(),
        );
        batch.delete(&collection(HAND_OFFS_COLLECTION)?, id.as_str().as_bytes());
        let in_flight = collection(IN_FLIGHT_COLLECTION)?;
        for k in device_state::in_flight_keys(store, &id)? {
            batch.delete(&in_flight, k.as_bytes());
        }
        let failures = collection(FAILURES_COLLECTION)?;
        for (k, _) in assignment_config::scan_json::<ItemFailures>(
            store,
            FAILURES_COLLECTION,
            &device_state::key(&id, ""),
        )? {
            batch.delete(&failures, k.as_bytes());
        }
        batch.put(
            &Collection::new(ASSIGNEE_COLLECTION)?,
            id.as_str().as_bytes(),
            NOBODY_USERNAME.as_bytes(),
        );
        device_info::forget(&mut batch, &id)?;
        let settings_failures = collection(settings_result::SETTINGS_FAILURES_COLLECTION)?;
        for (item, _) in settings_result::of(store, &id)? {
            batch.delete(&settings_failures, device_state::key(&id, &item).as_bytes());
        }
        session_log::end(store, &mut batch, &id, ended_how, unix_millis(now))?;
        item_certificate::revoke_all(store, &mut batch, self.issuer.as_deref(), &id, now)?;
        portal_token::assign(store, &mut batch, &id, &portal_token::new_token()?)?;
        portal_session::end(store, &mut batch, &id)?;
        match store.apply(&batch)? {
            CasOutcome::Applied => Ok(()),
            _ => Err(ReconcileError::Conflict),
        }
    }

    /// After the first TokenUpdate of a channel: make sure the device has a portal token, then
    /// reconcile (the baseline of nobody, incl. the sign-in web clip).
    pub fn channel_enabled(
        &self,
        id: &EnrollmentId,
        now: SystemTime,
    ) -> Result<ReconcileOutcome, ReconcileError> {
        let device = id.parent();
        let store = self.store.as_ref();
        if portal_token::token_of(store, &device)?.is_none() {
            let mut batch = KeyspaceBatch::new();
            portal_token::assign(store, &mut batch, &device, &portal_token::new_token()?)?;
            store.apply(&batch)?;
        }
        self.reconcile(&device, now)
    }

    /// How far `device` is from its current assignee's desired state.
    pub fn progress(
        &self,
        device: &EnrollmentId,
        now: SystemTime,
    ) -> Result<progress::DeviceProgress, ReconcileError> {
        let id = device.parent();
        let compiled = self.compiled()?;
        let mut engine = self
            .engine_device(&id)?
            .ok_or_else(|| ReconcileError::UnknownDevice(id.clone()))?;
        if compiled.user(&engine.assignee).is_none() {
            engine.assignee = NOBODY_USERNAME.to_owned();
        }
        let store = self.store.as_ref();
        let desired = compiled.desired(&engine)?;
        let mut measured = progress::measure(
            &compiled,
            &desired,
            &device_state::observed(store, &id)?,
            &device_state::failures(store, &id)?,
            unix_time(now),
        );
        if measured
            .items
            .iter()
            .any(|i| i.state == progress::ItemState::Failed)
        {
            let records = device_state::failure_records(store, &id)?;
            for i in &mut measured.items {
                if i.state == progress::ItemState::Failed {
                    i.reason = records.get(&i.item).and_then(|r| r.reason.clone());
                }
            }
        }
        if engine.assignee == NOBODY_USERNAME
            && let Some(h) = hand_off::of(store, &id)?
        {
            // Ready for the next person only once the device's lists proved it.
            measured.ready &= h.state == HandOffState::Clean;
            measured.hand_off = Some(h);
        }
        Ok(measured)
    }

    /// When the device's open session has no ready time yet and the device is ready, records
    /// `now` as its ready time (the sign-in-to-ready figure). Returns the session's ready time.
    pub fn note_ready(
        &self,
        device: &EnrollmentId,
        now: SystemTime,
    ) -> Result<Option<u64>, ReconcileError> {
        let id = device.parent();
        let store = self.store.as_ref();
        let Some((_, session)) = session_log::open_session(store, &id)? else {
            return Ok(None);
        };
        if session.ready_at.is_some() {
            return Ok(session.ready_at);
        }
        // Cheap gate first: an unanswered install or removal means not ready yet.
        if !device_state::in_flight(store, &id)?.is_empty() || !self.progress(&id, now)?.ready {
            return Ok(None);
        }
        let now_ms = unix_millis(now);
        if session_log::record_ready(store, &id, now_ms)? {
            tracing::info!(enrollment_id = %id, username = %session.username,
                sign_in_to_ready_ms = now_ms.saturating_sub(session.started_at), "device ready");
        }
        Ok(session_log::open_session(store, &id)?.and_then(|(_, s)| s.ready_at))
    }

    /// Hook for the command channel after a report was stored. Idle reports cost nothing;
    /// errors are logged, never returned to the device.
    pub fn after_report(&self, report: &CommandReport, now: SystemTime) {
        if report.status == Status::Idle || report.status == Status::NotNow {
            return;
        }
        if let Err(error) = self.record_result(report, now) {
            tracing::warn!(enrollment_id = %report.enrollment_id(), %error, "recording a command result for the reconciler failed");
        }
        if report.status == Status::Acknowledged
            && let Err(error) = self.note_ready(report.enrollment_id(), now)
        {
            tracing::warn!(enrollment_id = %report.enrollment_id(), %error, "checking readiness failed");
        }
    }

    fn record_result(&self, report: &CommandReport, now: SystemTime) -> Result<(), ReconcileError> {
        let Some(uuid) = &report.command_uuid else {
            return Ok(());
        };
        let channel_id = report.enrollment_id();
        let id = channel_id.parent();
        let store = self.store.as_ref();
        let key = device_state::in_flight_key(&id, uuid);
        let record: Option<InFlight> = read_json(store, IN_FLIGHT_COLLECTION, &key)?;
        let lists = report.response.contains_key("ProfileList")
            || report.response.contains_key("ManagedApplicationList");
        if record.is_none() && !lists {
            return Ok(());
        }
        let hand_off_list = match &record {
            Some(InFlight::Inventory {
                request_type,
                hand_off: true,
            }) if !channel_id.is_user_channel() => Some(request_type.clone()),
            _ => None,
        };
        let inventory_type = match &record {
            Some(InFlight::Inventory { request_type, .. }) => Some(request_type.clone()),
            Some(InFlight::Intent { .. }) => None,
            None => store.command(uuid)?.map(|c| c.request_type),
        };
        let mut replaced = false;
        let mut list_wanted = false;
        let now_ms = unix_millis(now);
        let mut facts_learned = false;
        let install_answered;
        {
            let _serial = lock(&self.serial);
            let mut batch = KeyspaceBatch::new();
            let mut observed = device_state::observed(store, &id)?;
            let before = observed.clone();
            let mut installs: app_installs::PendingInstalls =
                read_json(store, APP_INSTALLS_COLLECTION, id.as_str())?.unwrap_or_default();
            let installs_before = installs.clone();
            let mut timed_out: BTreeSet<String> = BTreeSet::new();
            if record.is_some() {
                batch.delete(&collection(IN_FLIGHT_COLLECTION)?, key.as_bytes());
            }
            let channel = match channel_id.user_part() {
                Some(u) => Channel::User {
                    short_name: u.to_owned(),
                },
                None => Channel::Device,
            };
            match (report.status, &record) {
                (Status::Acknowledged, Some(InFlight::Intent { intent })) => {
                    let settings = settings_result::outcome(intent, report);
                    // A Settings command is acknowledged while items fail: only a clean one
                    // records its hash; failed items count as item failures (retry policy).
                    if settings.failed.is_empty() {
                        observed.apply(intent);
                    }
                    match intent {
                        // The Ack means "accepted", not installed [Y application.install]: the
                        // app waits for ManagedApplicationList, and its failures stay counted.
                        Intent::InstallApplication {
                            item, bundle_id, ..
                        } if channel == Channel::Device => {
                            let state = report
                                .response
                                .get("State")
                                .and_then(Value::as_string)
                                .unwrap_or("Queued")
                                .to_owned();
                            let identifier =
                                report.response.get("Identifier").and_then(Value::as_string);
                            let inv = observed.channel_mut(&channel);
                            if let Some(other) = identifier.filter(|i| *i != &**bundle_id) {
                                inv.apps.remove(&**bundle_id);
                                tracing::warn!(enrollment_id = %id, item = %item, catalog = %bundle_id,
                                    device = other, "InstallApplication installed another bundle id");
                                count_failure(
                                    store,
                                    &mut batch,
                                    &id,
                                    item.as_str(),
                                    format!(
                                        "the device installs {other} for this item, but the \
                                         catalog says {bundle_id}: check the item's bundle id"
                                    ),
                                    now,
                                )?;
                            } else {
                                if let Some(app) = inv.apps.get_mut(&**bundle_id) {
                                    app.status = baton_assign::AppStatus::InProgress(state.clone());
                                }
                                if installs.apps.is_empty() {
                                    installs.next_poll_at =
                                        now_ms.saturating_add(self.poll_interval_ms());
                                }
                                installs.apps.insert(
                                    bundle_id.to_string(),
                                    app_installs::PendingInstall {
                                        item: item.to_string(),
                                        acknowledged_at: now_ms,
                                        state,
                                    },
                                );
                                list_wanted = true;
                            }
                        }
                        _ => {
                            // A removed app is no longer waited for (e.g. signed out while
                            // still installing).
                            if let Intent::RemoveApplication { bundle_id, .. } = intent {
                                installs.apps.remove(&**bundle_id);
                            }
                            let failures_coll = collection(FAILURES_COLLECTION)?;
                            let settings_coll =
                                collection(settings_result::SETTINGS_FAILURES_COLLECTION)?;
                            for item in intent.item().into_iter().chain(&settings.applied) {
                                let k = device_state::key(&id, item.as_str());
                                batch.delete(&failures_coll, k.as_bytes());
                                batch.delete(&settings_coll, k.as_bytes());
                            }
                            for (item, failed) in &settings.failed {
                                let k = device_state::key(&id, item.as_str());
                                batch.put(&settings_coll, k.as_bytes(), &encode(failed)?);
                                let names: Vec<&str> =
                                    failed.iter().map(|f| f.setting.as_str()).collect();
                                count_failure(
                                    store,
                                    &mut batch,
                                    &id,
                                    item.as_str(),
                                    format!("the device refused settings: {}", names.join(", ")),
                                    now,
                                )?;
                            }
                        }
                    }
                }
                (Status::Error | Status::CommandFormatError, Some(InFlight::Intent { intent })) => {
                    if let Some(item) = intent.item() {
                        let reason = refusal_reason(report, intent_request_type(intent));
                        count_failure(store, &mut batch, &id, item.as_str(), reason, now)?;
                    }
                }
                _ => {}
            }
            if let Some(InFlight::Intent { intent }) = &record {
                item_certificate::after_result(
                    store,
                    &mut batch,
                    self.issuer.as_deref(),
                    &id,
                    channel_id,
                    uuid,
                    report.status,
                    intent,
                    now,
                )?;
            }
            if matches!(&record, Some(InFlight::Inventory { request_type, .. }) if request_type == device_info::REQUEST_TYPE)
            {
                let now_ms = unix_millis(now);
                let info = match report.status {
                    Status::Acknowledged => match report.device_information() {
                        Ok(Some(answer)) => device_info::DeviceInfo::from_answer(answer, now_ms),
                        _ => device_info::DeviceInfo::refused("unreadable answer", now_ms),
                    },
                    other => device_info::DeviceInfo::refused(other.as_str(), now_ms),
                };
                tracing::info!(enrollment_id = %id, model_name = info.model_name.as_deref().unwrap_or(""),
                    shared_ipad = ?info.is_multi_user, supervised = ?info.is_supervised,
                    refused = info.refused.as_deref().unwrap_or(""), "device information recorded");
                device_info::put(&mut batch, &id, &info)?;
                facts_learned = true;
            }
            if report.status == Status::Acknowledged {
                match inventory_type.as_deref() {
                    Some("ProfileList") => {
                        if let Ok(Some(list)) = report.profile_list() {
                            let inv = observed.channel_mut(&channel);
                            inv.profiles = list
                                .into_iter()
                                .map(|p| {
                                    (
                                        p.identifier,
                                        ObservedProfile {
                                            payload_uuid: Arc::from(p.uuid.unwrap_or_default()),
                                        },
                                    )
                                })
                                .collect();
                            replaced = true;
                        }
                    }
                    Some("ManagedApplicationList") => {
                        if let Ok(Some(list)) = report.managed_application_list() {
                            if channel == Channel::Device {
                                timed_out = self.settle_installs(
                                    store,
                                    &mut batch,
                                    &id,
                                    &mut installs,
                                    &list,
                                    now,
                                )?;
                            }
                            let inv = observed.channel_mut(&channel);
                            let old = std::mem::take(&mut inv.apps);
                            inv.apps = list
                                .into_iter()
                                .map(|a| {
                                    let prev = old.get(&a.identifier);
                                    let app = ObservedApp {
                                        status: baton_assign::AppStatus::from_report(
                                            a.status.as_deref().unwrap_or(""),
                                        ),
                                        baton_managed: prev.is_some_and(|p| p.baton_managed),
                                        config_hash: prev.and_then(|p| p.config_hash.clone()),
                                    };
                                    (a.identifier, app)
                                })
                                .collect();
                            // An install that never settled is re-planned (within the retry
                            // policy), not left "on its way" for ever.
                            if channel == Channel::Device {
                                inv.apps.retain(|bundle, _| !timed_out.contains(bundle));
                            }
                            replaced = true;
                        }
                    }
                    _ => {}
                }
            }
            if observed != before {
                batch.put(
                    &collection(OBSERVED_COLLECTION)?,
                    id.as_str().as_bytes(),
                    &encode(&observed)?,
                );
            }
            install_answered =
                matches!(record, Some(InFlight::Intent { .. })) || installs != installs_before;
            if installs != installs_before {
                if installs.apps.is_empty() {
                    batch.delete(
                        &collection(APP_INSTALLS_COLLECTION)?,
                        id.as_str().as_bytes(),
                    );
                } else {
                    batch.put(
                        &collection(APP_INSTALLS_COLLECTION)?,
                        id.as_str().as_bytes(),
                        &encode(&installs)?,
                    );
                }
            }
            if !batch.ops.is_empty() {
                store.apply(&batch)?;
            }
        }
        // At the end of the session that accepted installs (FIFO: after the commands queued
        // before it), ask how they are doing.
        if list_wanted {
            self.ask_app_list(&id, now, false)?;
        }
        if facts_learned && !replaced {
            self.reconcile(&id, now)?;
        }
        if replaced {
            self.reconcile(&id, now)?;
        }
        if let Some(request_type) = hand_off_list {
            let refused = (report.status != Status::Acknowledged)
                .then(|| refusal_reason(report, Some(&request_type)));
            self.hand_off_list_answered(&id, &request_type, refused, now)?;
        } else if install_answered && !channel_id.is_user_channel() {
            self.hand_off_install_answered(&id, now)?;
        }
        Ok(())
    }
}

/// Hand-offs: proving a sign-out left the nobody state (see [`hand_off`]).
impl Reconciler {
    /// The device's latest hand-off record.
    pub fn hand_off(&self, device: &EnrollmentId) -> Result<Option<HandOff>, ReconcileError> {
        Ok(hand_off::of(self.store.as_ref(), &device.parent())?)
    }

    /// A list of the device's hand-off round was answered (`refused`: why not). When both
    /// are, the round ends: clean, or not clean with what remains (managed apps Baton did not
    /// install are adopted, so the engine removes them).
    fn hand_off_list_answered(
        &self,
        id: &EnrollmentId,
        request_type: &str,
        refused: Option<String>,
        now: SystemTime,
    ) -> Result<(), ReconcileError> {
        let store = self.store.as_ref();
        let now_ms = unix_millis(now);
        let adopted;
        let concluded;
        let was_reported;
        {
            let _serial = lock(&self.serial);
            let Some(mut h) = hand_off::of(store, id)? else {
                return Ok(());
            };
            if h.state != HandOffState::Verifying || self.assignee(id)? != NOBODY_USERNAME {
                return Ok(());
            }
            match request_type {
                "ProfileList" => h.profile_list = true,
                "ManagedApplicationList" => h.app_list = true,
                _ => return Ok(()),
            }
            let mut batch = KeyspaceBatch::new();
            let remaining = if let Some(reason) = refused {
                vec![hand_off::Remaining {
                    kind: hand_off::RemainingKind::Unanswered,
                    identifier: request_type.to_owned(),
                    item: None,
                    name: None,
                    reason: Some(reason),
                }]
            } else if h.profile_list && h.app_list {
                let compiled = self.compiled()?;
                let mut engine = self
                    .engine_device(id)?
                    .ok_or_else(|| ReconcileError::UnknownDevice(id.clone()))?;
                engine.assignee = NOBODY_USERNAME.to_owned();
                let nobody = compiled.desired(&engine)?;
                let mut observed = device_state::observed(store, id)?;
                let mut remaining = hand_off::remaining(
                    &nobody,
                    &observed,
                    &device_state::failure_records(store, id)?,
                    unix_time(now),
                );
                let catalog = &compiled.config().catalog;
                for r in &mut remaining {
                    r.name = r
                        .item
                        .as_deref()
                        .and_then(|i| baton_assign::ItemId::new(i).ok())
                        .and_then(|i| catalog.item(&i).map(|it| it.name.clone()));
                }
                if h.await_installs(&remaining, &self.pending_install_items(id)?) {
                    tracing::info!(enrollment_id = %id, awaiting = ?h.awaiting,
                        "hand-off waits for installs the device has not answered");
                    batch.put(
                        &collection(HAND_OFFS_COLLECTION)?,
                        id.as_str().as_bytes(),
                        &encode(&h)?,
                    );
                    store.apply(&batch)?;
                    return Ok(());
                }
                let inv = observed.channel_mut(&Channel::Device);
                let mut adopt = false;
                for r in remaining
                    .iter()
                    .filter(|r| r.kind == hand_off::RemainingKind::App && r.item.is_none())
                {
                    if let Some(app) = inv.apps.get_mut(&r.identifier) {
                        app.baton_managed = true;
                        adopt = true;
                    }
                }
                if adopt {
                    batch.put(
                        &collection(OBSERVED_COLLECTION)?,
                        id.as_str().as_bytes(),
                        &encode(&observed)?,
                    );
                }
                remaining
            } else {
                batch.put(
                    &collection(HAND_OFFS_COLLECTION)?,
                    id.as_str().as_bytes(),
                    &encode(&h)?,
                );
                store.apply(&batch)?;
                return Ok(());
            };
            adopted = !batch.ops.is_empty();
            h.conclude(remaining, &self.settings.hand_off, now_ms);
            was_reported = h.reported_not_clean;
            h.reported_not_clean = h.state != HandOffState::Clean;
            if let Some(key) = &h.session_key {
                session_log::record_hand_off_at(
                    store,
                    &mut batch,
                    key,
                    h.state == HandOffState::Clean,
                    &h.remaining,
                )?;
            }
            batch.put(
                &collection(HAND_OFFS_COLLECTION)?,
                id.as_str().as_bytes(),
                &encode(&h)?,
            );
            match store.apply(&batch)? {
                CasOutcome::Applied => {}
                _ => return Err(ReconcileError::Conflict),
            }
            concluded = h;
        }
        self.hand_off_concluded(id, &concluded, was_reported, now);
        if adopted {
            self.reconcile(id, now)?;
        }
        Ok(())
    }

    /// The device's items whose install is queued or deferred (an unanswered command on the
    /// device channel) or acknowledged but not yet listed `Managed` (apps).
    fn pending_install_items(&self, id: &EnrollmentId) -> Result<BTreeSet<String>, ReconcileError> {
        let store = self.store.as_ref();
        let mut items: BTreeSet<String> = device_state::in_flight(store, id)?
            .iter()
            .filter(|i| i.channel() == &Channel::Device)
            .filter_map(|i| i.item().map(ToString::to_string))
            .collect();
        if let Some(p) =
            read_json::<app_installs::PendingInstalls>(store, APP_INSTALLS_COLLECTION, id.as_str())?
        {
            items.extend(p.apps.into_values().map(|a| a.item));
        }
        Ok(items)
    }

    /// A command of the device was answered while its hand-off round waits for installs
    /// ([`HandOff::awaiting`]): once none of them is pending, both lists are asked again.
    fn hand_off_install_answered(
        &self,
        id: &EnrollmentId,
        now: SystemTime,
    ) -> Result<(), ReconcileError> {
        let store = self.store.as_ref();
        let Some(mut h) = hand_off::of(store, id)? else {
            return Ok(());
        };
        if h.state != HandOffState::Verifying || h.awaiting.is_empty() {
            return Ok(());
        }
        let pending = self.pending_install_items(id)?;
        if h.awaiting.iter().any(|i| pending.contains(i)) {
            return Ok(());
        }
        h.awaiting.clear();
        let mut batch = KeyspaceBatch::new();
        batch.put(
            &collection(HAND_OFFS_COLLECTION)?,
            id.as_str().as_bytes(),
            &encode(&h)?,
        );
        if self.ask_hand_off_lists(id, now, batch)? {
            tracing::info!(enrollment_id = %id, "hand-off installs answered; lists asked again");
        }
        Ok(())
    }

    /// Applies `batch` with a reconcile for nobody that queues the hand-off round's lists
    /// (ProfileList, ManagedApplicationList) after whatever the plan sends, only while nobody
    /// is signed in on the device. The batch expects the assignee record as read here, so a
    /// sign-in between this check and the write makes the whole batch a conflict: nothing of
    /// nobody's plan is queued on the new person's device and no stale hand-off record comes
    /// back. Returns false when someone is (or just got) signed in.
    fn ask_hand_off_lists(
        &self,
        id: &EnrollmentId,
        now: SystemTime,
        mut batch: KeyspaceBatch,
    ) -> Result<bool, ReconcileError> {
        let assignees = Collection::new(ASSIGNEE_COLLECTION)?;
        let current = self.store.get(&assignees, id.as_str().as_bytes())?;
        if current
            .as_deref()
            .is_some_and(|a| a != NOBODY_USERNAME.as_bytes())
        {
            return Ok(false);
        }
        batch.expect(&assignees, id.as_str().as_bytes(), current.as_deref());
        match self.reconcile_with(
            id,
            now,
            batch,
            Some(NOBODY_USERNAME),
            &[],
            &[
                CommandRequest::ProfileList,
                CommandRequest::ManagedApplicationList { identifiers: None },
            ],
        ) {
            Ok(_) => Ok(true),
            Err(ReconcileError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Logs, counts and publishes the end of a round.
    /// `was_reported`: a not-clean verdict of this hand-off was published before.
    fn hand_off_concluded(
        &self,
        id: &EnrollmentId,
        h: &HandOff,
        was_reported: bool,
        now: SystemTime,
    ) {
        let first_round = !was_reported;
        match h.state {
            HandOffState::Clean => {
                tracing::info!(enrollment_id = %id, username = ?h.username,
                    rounds_not_clean = h.rounds_not_clean, "hand-off verified clean");
                if was_reported {
                    self.events.record(
                        id,
                        crate::webhook::EventPayload::HandOffClean(hand_off_event(h)),
                        now,
                    );
                }
            }
            HandOffState::NotClean | HandOffState::GivenUp => {
                tracing::warn!(enrollment_id = %id, username = ?h.username, state = ?h.state,
                    rounds_not_clean = h.rounds_not_clean, remaining = %h.remaining_text(),
                    "hand-off not clean");
                // One event when found, one when Baton gives up; the rounds between are logged.
                if first_round || h.state == HandOffState::GivenUp {
                    self.events.record(
                        id,
                        crate::webhook::EventPayload::HandOffNotClean(hand_off_event(h)),
                        now,
                    );
                }
            }
            HandOffState::Verifying => {}
        }
    }

    /// Starts the next round of a not-clean hand-off when it is due: the remaining items'
    /// failure records are cleared (their removals are sent again), then the lists are asked.
    /// Returns whether a round started.
    pub fn retry_hand_off(
        &self,
        device: &EnrollmentId,
        now: SystemTime,
    ) -> Result<bool, ReconcileError> {
        let id = device.parent();
        let store = self.store.as_ref();
        let Some(mut h) = hand_off::of(store, &id)? else {
            return Ok(false);
        };
        let due = h.state == HandOffState::NotClean
            && h.next_check_at.is_none_or(|t| t <= unix_millis(now));
        if !due || self.assignee(&id)? != NOBODY_USERNAME {
            return Ok(false);
        }
        // First the failures go (the plan below must see them gone, so the removals are
        // queued before the lists); a crash in between only leaves the round due.
        let mut cleared = KeyspaceBatch::new();
        let failures = collection(FAILURES_COLLECTION)?;
        for item in h.remaining.iter().filter_map(|r| r.item.as_deref()) {
            cleared.delete(&failures, device_state::key(&id, item).as_bytes());
        }
        if !cleared.ops.is_empty() {
            store.apply(&cleared)?;
        }
        let mut batch = KeyspaceBatch::new();
        h.next_round();
        batch.put(
            &collection(HAND_OFFS_COLLECTION)?,
            id.as_str().as_bytes(),
            &encode(&h)?,
        );
        let started = self.ask_hand_off_lists(&id, now, batch)?;
        if started {
            tracing::info!(enrollment_id = %id, round = h.rounds_not_clean + 1, "hand-off checked again");
        }
        Ok(started)
    }

    /// An operator's new start for a not-clean (or given-up) hand-off: the rounds count from
    /// zero and one starts now. False when the device has none to restart.
    pub fn restart_hand_off(
        &self,
        device: &EnrollmentId,
        now: SystemTime,
    ) -> Result<bool, ReconcileError> {
        let id = device.parent();
        let store = self.store.as_ref();
        let Some(mut h) = hand_off::of(store, &id)? else {
            return Ok(false);
        };
        if !h.state.is_not_clean() {
            return Ok(false);
        }
        h.state = HandOffState::NotClean;
        h.rounds_not_clean = 0;
        h.next_check_at = None;
        store.put(
            &collection(HAND_OFFS_COLLECTION)?,
            id.as_str().as_bytes(),
            &encode(&h)?,
        )?;
        self.retry_hand_off(&id, now)
    }

    /// The timed pass: starts every due round (and pushes the device). Returns how many
    /// rounds started.
    pub fn poll_hand_offs(&self, now: SystemTime) -> Result<usize, ReconcileError> {
        let mut started = 0;
        for (key, h) in
            assignment_config::scan_json::<HandOff>(self.store.as_ref(), HAND_OFFS_COLLECTION, "")?
        {
            if h.state != HandOffState::NotClean {
                continue;
            }
            let Ok(id) = EnrollmentId::parse(&key) else {
                continue;
            };
            if self.retry_hand_off(&id, now)? {
                started += 1;
            }
        }
        Ok(started)
    }
}

fn hand_off_event(h: &HandOff) -> crate::webhook::HandOffEvent {
    crate::webhook::HandOffEvent {
        state: h.state,
        username: h.username.clone(),
        remaining: h.remaining.clone(),
        rounds_not_clean: h.rounds_not_clean,
        next_check_at: h.next_check_at.map(crate::timestamp::rfc3339_millis),
    }
}

/// App installs: waiting for ManagedApplicationList to say `Managed` (see [`app_installs`]).
impl Reconciler {
    fn poll_interval_ms(&self) -> u64 {
        u64::try_from(self.settings.app_install_poll_interval.as_millis()).unwrap_or(u64::MAX)
    }

    /// Settles the pending installs of `installs` from an (unfiltered) ManagedApplicationList:
    /// `Managed` clears the item's failures, a failure state, absence or the timeout counts
    /// one. Returns the bundle ids that timed out while still on their way.
    fn settle_installs(
        &self,
        store: &dyn Store,
        batch: &mut KeyspaceBatch,
        id: &EnrollmentId,
        installs: &mut app_installs::PendingInstalls,
        list: &[baton_proto::ManagedApplication],
        now: SystemTime,
    ) -> Result<BTreeSet<String>, ReconcileError> {
        let now_ms = unix_millis(now);
        let timeout_ms =
            u64::try_from(self.settings.app_install_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut timed_out = BTreeSet::new();
        let mut settled = Vec::new();
        for (bundle, pending) in &installs.apps {
            let status = list
                .iter()
                .find(|a| &a.identifier == bundle)
                .map(|a| a.status.as_deref().unwrap_or(""));
            match app_installs::judge(status, pending, now_ms, timeout_ms) {
                app_installs::Verdict::Pending => {}
                app_installs::Verdict::Installed => {
                    batch.delete(
                        &collection(FAILURES_COLLECTION)?,
                        device_state::key(id, &pending.item).as_bytes(),
                    );
                    settled.push(bundle.clone());
                }
                app_installs::Verdict::Failed(reason) => {
                    if status.is_some_and(|s| baton_assign::AppStatus::from_report(s).is_present())
                    {
                        timed_out.insert(bundle.clone());
                    }
                    count_failure(store, batch, id, &pending.item, reason, now)?;
                    settled.push(bundle.clone());
                }
            }
        }
        for bundle in settled {
            installs.apps.remove(&bundle);
        }
        installs.next_poll_at = now_ms.saturating_add(self.poll_interval_ms());
        Ok(timed_out)
    }

    /// Queues a ManagedApplicationList for the device channel unless one is in flight; pushes
    /// when `push`. Returns whether one was queued.
    fn ask_app_list(
        &self,
        id: &EnrollmentId,
        now: SystemTime,
        push: bool,
    ) -> Result<bool, ReconcileError> {
        let store = self.store.as_ref();
        if device_state::inventory_in_flight(store, id, "ManagedApplicationList")? {
            return Ok(false);
        }
        let (command, _) = self.new_command(
            id,
            CommandRequest::ManagedApplicationList { identifiers: None },
            None,
            false,
        )?;
        let mut batch = KeyspaceBatch::new();
        batch.put(
            &collection(IN_FLIGHT_COLLECTION)?,
            device_state::in_flight_key(id, &command.uuid).as_bytes(),
            &encode(&InFlight::Inventory {
                request_type: command.request_type.clone(),
                hand_off: false,
            })?,
        );
        let enqueue = Enqueue {
            command,
            to: vec![id.clone()],
        };
        match store.apply_with_enqueue(&batch, &[enqueue], now)? {
            CasOutcome::Applied => {}
            _ => return Err(ReconcileError::Conflict),
        }
        self.metrics.add_queue_depth(1);
        if push {
            self.push.commands_enqueued(std::slice::from_ref(id));
        }
        Ok(true)
    }

    /// Hook for the command channel when a channel starts a session (Idle): with app installs
    /// pending, ask ManagedApplicationList in this session. One read when nothing is pending.
    pub fn session_started(&self, channel: &EnrollmentId, now: SystemTime) {
        if channel.is_user_channel() {
            return;
        }
        let pending = read_json::<app_installs::PendingInstalls>(
            self.store.as_ref(),
            APP_INSTALLS_COLLECTION,
            channel.as_str(),
        );
        let result = match pending {
            Ok(Some(p)) if !p.apps.is_empty() => self.ask_app_list(channel, now, false).map(drop),
            Ok(_) => Ok(()),
            Err(e) => Err(e.into()),
        };
        if let Err(error) = result {
            tracing::warn!(enrollment_id = %channel, %error, "asking for the app list failed");
        }
        // A due hand-off round is not started here: that read would cost every Idle of every
        // device (0.6 % of a check-in's instructions, docs/benchmarks.md); the timed pass
        // (`poll_hand_offs`, every app-install poll interval) starts it and pushes.
    }

    /// The timed poll: for every device whose pending installs were not listed for a poll
    /// interval, queue ManagedApplicationList and push. Returns how many devices were asked.
    pub fn poll_app_installs(&self, now: SystemTime) -> Result<usize, ReconcileError> {
        let now_ms = unix_millis(now);
        let store = self.store.as_ref();
        let mut asked = 0;
        for (key, mut p) in assignment_config::scan_json::<app_installs::PendingInstalls>(
            store,
            APP_INSTALLS_COLLECTION,
            "",
        )? {
            if p.apps.is_empty() || p.next_poll_at > now_ms {
                continue;
            }
            let Ok(id) = EnrollmentId::parse(&key) else {
                continue;
            };
            if self.ask_app_list(&id, now, true)? {
                asked += 1;
            }
            p.next_poll_at = now_ms.saturating_add(self.poll_interval_ms());
            // A lost update here only moves the next poll; the next list rewrites the record.
            store.put(
                &collection(APP_INSTALLS_COLLECTION)?,
                key.as_bytes(),
                &encode(&p)?,
            )?;
        }
        Ok(asked)
    }
}

/// Runs [`Reconciler::poll_app_installs`] every `every` until `stop`.
pub async fn poll_app_installs(
    reconciler: Arc<Reconciler>,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let r = Arc::clone(&reconciler);
        let polled = tokio::task::spawn_blocking(move || {
            let now = SystemTime::now();
            if let Err(error) = r.poll_hand_offs(now) {
                tracing::warn!(%error, "checking hand-offs failed");
            }
            r.poll_app_installs(now)
        });
        match polled.await {
            Ok(Ok(n)) if n > 0 => tracing::debug!(devices = n, "asked for app lists"),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "polling app installs failed"),
            Err(error) => tracing::warn!(%error, "polling app installs panicked"),
        }
    }
}

/// Counts one failed attempt of `item` on `device`, with the reason.
fn count_failure(
    store: &dyn Store,
    batch: &mut KeyspaceBatch,
    device: &EnrollmentId,
    item: &str,
    reason: String,
    now: SystemTime,
) -> Result<(), ReconcileError> {
    let k = device_state::key(device, item);
    let mut f: FailureRecord =
        read_json(store, FAILURES_COLLECTION, &k)?.unwrap_or(FailureRecord {
            attempts: 0,
            last_failure: UnixTime(0),
            reason: None,
        });
    f.attempts += 1;
    f.last_failure = unix_time(now);
    tracing::info!(enrollment_id = %device, item, attempts = f.attempts, reason = %reason,
        "item failed on the device");
    f.reason = Some(reason);
    batch.put(
        &collection(FAILURES_COLLECTION)?,
        k.as_bytes(),
        &encode(&f)?,
    );
    Ok(())
}

/// The RequestType an intent becomes.
fn intent_request_type(intent: &Intent) -> Option<&'static str> {
    Some(match intent {
        Intent::InstallApplication { .. } => "InstallApplication",
        Intent::RemoveApplication { .. } => "RemoveApplication",
        Intent::RemoveProfile { .. } | Intent::RemoveCertificate { .. } => "RemoveProfile",
        Intent::InstallProfile { .. }
        | Intent::InstallWebClip { .. }
        | Intent::InstallCertificate { .. } => "InstallProfile",
        Intent::ApplySettings { .. } => "Settings",
        _ => return None,
    })
}

/// Why the device refused a command, for people: `RejectionReason` and the ErrorChain.
fn refusal_reason(report: &CommandReport, request_type: Option<&str>) -> String {
    let mut text = format!(
        "{} refused ({})",
        request_type.unwrap_or("the command"),
        report.status
    );
    if let Some(r) = report
        .response
        .get("RejectionReason")
        .and_then(Value::as_string)
    {
        text.push_str(": ");
        text.push_str(r);
    }
    for e in report.error_chain.iter().flatten().take(2) {
        text.push_str(&format!(
            "; {} {}: {}",
            e.domain,
            e.code,
            e.localized_description.as_deref().unwrap_or("")
        ));
    }
    text
}
