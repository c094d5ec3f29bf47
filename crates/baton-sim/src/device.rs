//! A simulated iOS device: identity, channels, inventory, and the async conversations with the
//! server (check-in messages, the command channel), every message signed with `Mdm-Signature`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use baton_proto::plist::{Dictionary, Value};
use baton_proto::{
    Authenticate, CheckOut, CheckinMessage, CommandReport, CommandRequest, CommandUuid, Enrollment,
    EnrollmentKeys, ErrorChainItem, Limits, PushMagic, PushToken, Status, TokenUpdate, Topic,
    read_dictionary,
};
use bytes::Bytes;
use http::Method;
use openssl::pkcs12::Pkcs12;
use serde::{Deserialize, Serialize};

use crate::behaviour::{AppInstallOutcome, AppInstallTiming, SimOptions};
use crate::enrollment_profile::{
    EnrollmentSettings, IdentitySource, ServerEndpoints, read_enrollment_profile,
};
use crate::inventory::{
    AppStatus, InstalledCertificate, InstalledProfile, Inventory, ManagedApp, WebClip,
};
use crate::ios_commands::{self, ChannelContext, DeviceFacts, ScepResult, SharedUser, answer};
use crate::lock::LockState;
use crate::scep::{self, ScepRequest};
use crate::{SimError, SimIdentity, Transport};

/// Content type of check-in and command-channel bodies.
pub const CHECKIN_CONTENT_TYPE: &str = "application/x-apple-aspen-mdm-checkin";

/// One command the device processed in a session.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedCommand {
    /// `CommandUUID`.
    pub uuid: String,
    /// `RequestType` (empty when unreadable).
    pub request_type: String,
    /// What the device answered.
    pub status: Status,
    /// The ErrorChain it sent.
    pub error_chain: Option<Vec<ErrorChainItem>>,
}

/// A Shared iPad user's channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserChannel {
    /// Push token, hex.
    pub push_token_hex: String,
    /// PushMagic. A secret.
    pub push_magic: String,
    /// What is installed for this user.
    pub inventory: Inventory,
}

/// A result the device sent without getting the reply: it sends it again, first thing on the
/// channel's next connection, instead of Idle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingResult {
    /// The user channel (None: the device channel).
    pub user: Option<String>,
    /// The result was NotNow.
    pub not_now: bool,
    /// The encoded report.
    pub body: Vec<u8>,
}

/// Everything a device keeps between runs (the key is saved apart, as PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Device facts.
    pub facts: DeviceFacts,
    /// Where the server is.
    pub endpoints: ServerEndpoints,
    /// Behaviour.
    pub options: SimOptions,
    /// Device-channel push token, hex.
    pub push_token_hex: String,
    /// Device-channel PushMagic. A secret.
    pub push_magic: String,
    /// Identity certificate and intermediates, PEM.
    pub cert_chain_pem: String,
    /// The enrollment profile, when enrolled from one.
    pub enrollment_profile: Option<InstalledProfile>,
    /// Device-channel inventory.
    pub inventory: Inventory,
    /// Shared iPad users.
    pub users: Vec<SharedUser>,
    /// Shared iPad user channels by short name.
    pub user_channels: BTreeMap<String, UserChannel>,
    /// How the device is locked (an older saved `locked` flag is ignored).
    #[serde(default)]
    pub lock_state: LockState,
    /// The last status the device channel sent was NotNow: the device polls by itself when it
    /// is unlocked ([`SimOptions::poll_after_not_now`]).
    #[serde(default)]
    pub ended_on_not_now: bool,
    /// A result whose reply was lost, sent first on the next connection of its channel
    /// ([`SimOptions::resend_lost_result`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_result: Option<PendingResult>,
    /// Draws made for [`SimOptions::pacing`] so far.
    #[serde(default)]
    pub pacing_draws: u64,
    /// Authenticate was accepted.
    pub authenticated: bool,
    /// A device-channel TokenUpdate was accepted.
    pub token_updated: bool,
    /// The MDM profile was removed (RemoveProfile): the device no longer talks to the server.
    #[serde(default)]
    pub unenrolled: bool,
}

/// What the device does once the report of the current command is sent.
#[derive(Debug, Clone)]
enum AfterReport {
    /// The MDM profile was replaced: use its identity (and settings) from now on.
    ReplaceMdmProfile(Box<(SimIdentity, EnrollmentSettings)>),
    /// The MDM profile was removed: unenroll.
    Unenroll,
}

fn random_bytes(n: usize) -> Result<Vec<u8>, SimError> {
    let mut buf = vec![0u8; n];
    openssl::rand::rand_bytes(&mut buf)?;
    Ok(buf)
}

/// A random upper-case UUID.
pub fn random_uuid() -> Result<String, SimError> {
    let b = random_bytes(16)?;
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&b);
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
        .to_uppercase())
}

/// A random UDID in the modern `00008101-XXXXXXXXXXXXXXXX` shape.
pub fn random_udid() -> Result<String, SimError> {
    Ok(format!("00008101-{}", hex::encode_upper(random_bytes(8)?)))
}

impl DeviceFacts {
    /// Plausible facts for an iPhone (or an iPad when `ipad`) with `udid`.
    pub fn for_udid(udid: &str, ipad: bool) -> Self {
        let tail: String = udid
            .chars()
            .rev()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let (model, name) = if ipad {
            ("iPad13,18", "iPad")
        } else {
            ("iPhone15,2", "iPhone")
        };
        Self {
            udid: udid.to_owned(),
            serial_number: format!("SIM{tail}"),
            model: model.to_owned(),
            model_name: name.to_owned(),
            product_name: model.to_owned(),
            os_version: "17.5".to_owned(),
            build_version: "21F79".to_owned(),
            device_name: format!("Shared {name} {tail}"),
        }
    }
}

/// The identity in a PKCS#12 payload.
fn pkcs12_identity(der: &[u8], password: &str) -> Result<SimIdentity, SimError> {
    let parsed = Pkcs12::from_der(der)?.parse2(password)?;
    match (parsed.cert, parsed.pkey) {
        (Some(cert), Some(key)) => Ok(SimIdentity {
            cert,
            key,
            chain: parsed
                .ca
                .map(|s| s.into_iter().collect())
                .unwrap_or_default(),
        }),
        _ => Err(SimError::EnrollmentProfile(
            "PKCS#12 has no certificate and key".into(),
        )),
    }
}

/// A simulated device.
#[derive(Debug, Clone)]
pub struct SimDevice {
    record: DeviceRecord,
    identity: SimIdentity,
    transport: Transport,
    limits: Limits,
    /// Results still to send before the one whose reply is lost (a test's dropped
    /// connection): `Some(0)` loses the reply to the next result.
    lose_reply_in: Option<usize>,
    /// The last connection ended in a drop (the reply to a result was lost).
    last_dropped: bool,
    /// The web app of each installed web clip (its cookie jar), by [`web_app_key`].
    web_apps: BTreeMap<String, crate::browser::Browser>,
    /// Work after the current command's report.
    after_report: Option<AfterReport>,
}

/// A web clip's web app is that clip: the same profile, payload and URL.
fn web_app_key(clip: &WebClip) -> String {
    format!(
        "{}\n{}\n{}",
        clip.profile_identifier, clip.payload_identifier, clip.url
    )
}

impl SimDevice {
    /// A device with a pre-made identity talking to `endpoints`; nothing is sent yet (call
    /// [`Self::checkin_authenticate`] and [`Self::token_update`], or [`Self::enroll_checkins`]).
    pub fn enroll_with_identity(
        endpoints: ServerEndpoints,
        identity: SimIdentity,
        options: SimOptions,
        transport: Transport,
    ) -> Result<Self, SimError> {
        let udid = identity
            .common_name()
            .filter(|cn| baton_proto::Udid::new(cn.as_str()).is_ok() && cn.len() >= 20)
            .map_or_else(random_udid, Ok)?;
        Self::with_udid(&udid, endpoints, identity, options, transport)
    }

    /// Like [`Self::enroll_with_identity`] with a chosen UDID.
    pub fn with_udid(
        udid: &str,
        endpoints: ServerEndpoints,
        identity: SimIdentity,
        options: SimOptions,
        transport: Transport,
    ) -> Result<Self, SimError> {
        baton_proto::Udid::new(udid)?;
        let facts = DeviceFacts::for_udid(udid, options.shared_ipad);
        Ok(Self {
            record: DeviceRecord {
                facts,
                endpoints,
                options,
                push_token_hex: hex::encode(random_bytes(32)?),
                push_magic: random_uuid()?,
                cert_chain_pem: identity.cert_chain_pem()?,
                enrollment_profile: None,
                inventory: Inventory::default(),
                users: Vec::new(),
                user_channels: BTreeMap::new(),
                lock_state: LockState::Unlocked,
                ended_on_not_now: false,
                pending_result: None,
                pacing_draws: 0,
                authenticated: false,
                token_updated: false,
                unenrolled: false,
            },
            identity,
            transport,
            limits: Limits::default(),
            lose_reply_in: None,
            last_dropped: false,
            web_apps: BTreeMap::new(),
            after_report: None,
        })
    }

    /// Installs an enrollment profile's identity (SCEP or PKCS#12) and settings; nothing is
    /// sent to the check-in URL yet.
    pub async fn from_enrollment_profile(
        profile: &[u8],
        mut options: SimOptions,
        transport: Transport,
    ) -> Result<Self, SimError> {
        let settings: EnrollmentSettings = read_enrollment_profile(profile)?;
        options.sign_messages = settings.sign_message;
        let udid = random_udid()?;
        let identity = match &settings.identity {
            IdentitySource::Scep {
                url,
                challenge,
                key_bits,
            } => {
                let (cert, key) = scep::enroll(
                    &transport,
                    &ScepRequest {
                        url: url.clone(),
                        challenge: challenge.clone(),
                        common_name: udid.clone(),
                        key_bits: *key_bits,
                        encoding: options.encoding,
                    },
                )
                .await?;
                SimIdentity::new(cert, key)
            }
            IdentitySource::Pkcs12 { der, password } => pkcs12_identity(der, password)?,
        };
        let mut device = Self::with_udid(&udid, settings.endpoints, identity, options, transport)?;
        device.record.enrollment_profile = Some(settings.profile);
        Ok(device)
    }

    /// Downloads the enrollment profile at `url`, installs it, and sends Authenticate and
    /// TokenUpdate.
    pub async fn enroll_from_profile_url(
        url: &str,
        options: SimOptions,
        transport: Transport,
    ) -> Result<Self, SimError> {
        let profile = transport.get_ok(url).await?;
        let mut device = Self::from_enrollment_profile(&profile, options, transport).await?;
        device.enroll_checkins().await?;
        Ok(device)
    }

    /// Enrolls with SCEP at `scep_url` (no enrollment profile), then Authenticate and
    /// TokenUpdate against `endpoints`.
    pub async fn enroll_with_scep(
        scep_url: &str,
        challenge: Option<String>,
        endpoints: ServerEndpoints,
        options: SimOptions,
        transport: Transport,
    ) -> Result<Self, SimError> {
        let udid = random_udid()?;
        let (cert, key) = scep::enroll(
            &transport,
            &ScepRequest {
                url: scep_url.to_owned(),
                challenge,
                common_name: udid.clone(),
                key_bits: 2048,
                encoding: options.encoding,
            },
        )
        .await?;
        let mut device = Self::with_udid(
            &udid,
            endpoints,
            SimIdentity::new(cert, key),
            options,
            transport,
        )?;
        device.enroll_checkins().await?;
        Ok(device)
    }

    // ---- accessors ----

    /// The UDID.
    pub fn udid(&self) -> &str {
        &self.record.facts.udid
    }

    /// The saved state.
    pub fn record(&self) -> &DeviceRecord {
        &self.record
    }

    /// The identity.
    pub fn identity(&self) -> &SimIdentity {
        &self.identity
    }

    /// Behaviour settings (changeable).
    pub fn options_mut(&mut self) -> &mut SimOptions {
        &mut self.record.options
    }

    /// Device-channel push token, hex.
    pub fn push_token_hex(&self) -> &str {
        &self.record.push_token_hex
    }

    /// Device-channel PushMagic.
    pub fn push_magic(&self) -> &str {
        &self.record.push_magic
    }

    /// Where the device talks to.
    pub fn endpoints(&self) -> &ServerEndpoints {
        &self.record.endpoints
    }

    /// Device-channel inventory.
    pub fn inventory(&self) -> &Inventory {
        &self.record.inventory
    }

    /// Installed profiles (device channel), not counting the enrollment profile.
    pub fn profiles(&self) -> &[InstalledProfile] {
        &self.record.inventory.profiles
    }

    /// Managed apps (device channel).
    pub fn apps(&self) -> Vec<&ManagedApp> {
        self.record.inventory.apps.values().collect()
    }

    /// The person installs an app from the App Store themselves (device channel): it is
    /// listed by InstalledApplicationList and makes InstallApplication answer
    /// `AppAlreadyInstalled` unless management is taken over [F32400].
    pub fn install_user_app(&mut self, bundle_id: &str) {
        self.record
            .inventory
            .user_apps
            .insert(bundle_id.to_owned(), bundle_id.to_owned());
    }

    /// The person deletes a managed app (device channel): it stays in ManagedApplicationList
    /// as `ManagedButUninstalled` [Y application.managed.list]. False when it is not managed.
    pub fn delete_app(&mut self, bundle_id: &str) -> bool {
        match self.record.inventory.apps.get_mut(bundle_id) {
            Some(app) => {
                app.status = AppStatus::ManagedButUninstalled;
                true
            }
            None => false,
        }
    }

    /// Web clips (device channel).
    pub fn web_clips(&self) -> &[WebClip] {
        &self.record.inventory.web_clips
    }

    /// Certificates from profiles (device channel).
    pub fn certificates(&self) -> &[InstalledCertificate] {
        &self.record.inventory.certificates
    }

    /// A Shared iPad user's inventory.
    pub fn user_inventory(&self, short_name: &str) -> Option<&Inventory> {
        self.record
            .user_channels
            .get(short_name)
            .map(|u| &u.inventory)
    }

    /// Shared iPad users.
    pub fn users(&self) -> &[SharedUser] {
        &self.record.users
    }

    /// The web clips on the Home Screen: the device channel's, then the signed-in user's.
    fn home_screen_clips(&self) -> impl Iterator<Item = &WebClip> {
        let logged_in = self
            .record
            .users
            .iter()
            .find(|u| u.logged_in)
            .and_then(|u| self.record.user_channels.get(&u.short_name));
        std::iter::once(&self.record.inventory)
            .chain(logged_in.map(|u| &u.inventory))
            .flat_map(|inv| inv.web_clips.iter())
    }

    /// A person taps a web clip: the URL it opens. With `label`, the clip with that label;
    /// otherwise the first one. Looks at the device channel, then the signed-in user's.
    pub fn tap_web_clip(&self, label: Option<&str>) -> Option<String> {
        self.home_screen_clips()
            .find(|c| label.is_none_or(|l| c.label == l))
            .map(|c| c.url.clone())
    }

    /// A person taps the web clip labelled `label`: the URL it opens and the web app it opens
    /// in. As on iOS (a `FullScreen` clip is a Home Screen web app with its own storage), each
    /// clip has its own cookie jar, shared with no other clip; removing the clip empties it,
    /// and a clip installed again starts with an empty one.
    pub fn open_web_clip(&mut self, label: &str) -> Option<(String, crate::browser::Browser)> {
        self.forget_removed_web_apps();
        let clip = self.home_screen_clips().find(|c| c.label == label)?;
        let (key, url) = (web_app_key(clip), clip.url.clone());
        let transport = self.transport.clone();
        let app = self
            .web_apps
            .entry(key)
            .or_insert_with(|| crate::browser::Browser::new(transport));
        Some((url, app.clone()))
    }

    /// Empties and forgets the web app of every clip no longer installed.
    fn forget_removed_web_apps(&mut self) {
        if self.web_apps.is_empty() {
            return;
        }
        let installed: std::collections::BTreeSet<String> =
            self.home_screen_clips().map(web_app_key).collect();
        self.web_apps.retain(|key, app| {
            let keep = installed.contains(key);
            if !keep {
                app.clear_cookies();
            }
            keep
        });
    }

    /// Locks the screen (passcode-locked, after the first unlock): see [`crate::lock`] for what
    /// iOS then defers.
    pub fn lock(&mut self) {
        self.record.lock_state = LockState::PasscodeLocked;
    }

    /// Restarts the device and leaves it locked before its first unlock.
    pub fn restart_locked(&mut self) {
        self.record.lock_state = LockState::BeforeFirstUnlock;
    }

    /// How the device is locked.
    pub fn lock_state(&self) -> LockState {
        self.record.lock_state
    }

    /// Unlocks it. When the device channel's last connection ended on NotNow the device polls
    /// the server by itself now, as iOS does when conditions change, and this returns what
    /// that connection processed; after any other last status it waits for a push and this
    /// returns nothing. [NN "Understand device polling"; P MDMServerCore
    /// `_pollFromServerIfNeeded:`] Switch: [`SimOptions::poll_after_not_now`].
    pub async fn unlock(&mut self) -> Result<Vec<ProcessedCommand>, SimError> {
        self.record.lock_state = LockState::Unlocked;
        if self.record.options.poll_after_not_now && self.record.ended_on_not_now {
            return self.connect_until_idle().await;
        }
        Ok(Vec::new())
    }

    /// True when the device channel's last connection ended on NotNow.
    pub fn ended_on_not_now(&self) -> bool {
        self.record.ended_on_not_now
    }

    /// The reply to the next result this device sends is lost, as when the connection drops
    /// after the request went out: the server has the result, the device does not know it.
    pub fn lose_next_reply(&mut self) {
        self.lose_reply_in = Some(0);
    }

    /// Like [`Self::lose_next_reply`] for the `n`th result from now (1: the next one).
    pub fn lose_reply_to_result(&mut self, n: usize) {
        self.lose_reply_in = n.checked_sub(1);
    }

    /// A result waiting to be sent again, if any.
    pub fn pending_result(&self) -> Option<&PendingResult> {
        self.record.pending_result.as_ref()
    }

    /// Replaces the device's per-command delays and drops.
    pub fn set_pacing(&mut self, pacing: crate::pacing::Pacing) {
        self.record.options.pacing = pacing;
    }

    fn next_draw(&mut self) -> u64 {
        let n = self.record.pacing_draws;
        self.record.pacing_draws = n.wrapping_add(1);
        crate::pacing::draw(self.record.options.pacing.seed, self.udid(), n)
    }

    // ---- messages ----

    fn enrollment(&self, user: Option<&str>) -> Result<Enrollment, SimError> {
        let keys = match user {
            None => EnrollmentKeys::device(self.udid()),
            Some(u) => EnrollmentKeys::shared_ipad_user(self.udid(), u),
        };
        Ok(Enrollment::new(keys)?)
    }

    /// The Authenticate body. iOS sends only BuildVersion, MessageType, OSVersion,
    /// ProductName, SerialNumber, Topic and UDID: `DeviceName`, `Model` and `ModelName` are
    /// macOS only [Y authenticate.yaml: `introduced: n/a` for iOS], and a captured iOS
    /// Authenticate has none of them [MD]. The server learns them from DeviceInformation.
    /// [`SimOptions::authenticate_device_facts`] adds them back (the old, lenient shape).
    pub fn authenticate_body(&self) -> Result<Vec<u8>, SimError> {
        let f = &self.record.facts;
        let mac_only = |v: &String| {
            self.record
                .options
                .authenticate_device_facts
                .then(|| v.clone())
        };
        Ok(CheckinMessage::Authenticate(Authenticate {
            enrollment: self.enrollment(None)?,
            topic: Topic::new(self.record.endpoints.topic.clone())?,
            serial_number: Some(f.serial_number.clone()),
            model: mac_only(&f.model),
            model_name: mac_only(&f.model_name),
            product_name: Some(f.product_name.clone()),
            os_version: Some(f.os_version.clone()),
            build_version: Some(f.build_version.clone()),
            device_name: mac_only(&f.device_name),
            imei: None,
            meid: None,
            extra: Dictionary::new(),
        })
        .encode()?)
    }

    fn token_update_body(
        &self,
        user: Option<&str>,
        token_hex: &str,
        magic: &str,
    ) -> Result<Vec<u8>, SimError> {
        let token = hex::decode(token_hex).map_err(|e| SimError::Saved {
            path: PathBuf::from(self.udid()),
            reason: format!("push token: {e}"),
        })?;
        let extra = Dictionary::new();
        Ok(CheckinMessage::TokenUpdate(TokenUpdate {
            enrollment: self.enrollment(user)?,
            topic: Topic::new(self.record.endpoints.topic.clone())?,
            token: PushToken::new(token)?,
            push_magic: PushMagic::new(magic)?,
            unlock_token: None,
            awaiting_configuration: None,
            not_on_console: None,
            extra,
        })
        .encode()?)
    }

    /// An Idle report and its `Mdm-Signature` (`None` when not signing), for benchmarks that
    /// pre-sign.
    pub fn presigned_idle(&self) -> Result<(Vec<u8>, Option<String>), SimError> {
        let body = CommandReport::new(self.enrollment(None)?, Status::Idle, None).encode()?;
        let signature = self.signature(&body)?;
        Ok((body, signature))
    }

    fn signature(&self, body: &[u8]) -> Result<Option<String>, SimError> {
        if self.record.options.sign_messages {
            Ok(Some(self.identity.sign(
                body,
                self.record.options.digest,
                self.record.options.encoding,
            )?))
        } else {
            Ok(None)
        }
    }

    async fn put_signed(&self, url: &str, body: Vec<u8>) -> Result<Bytes, SimError> {
        if !self.record.options.latency.is_zero() {
            tokio::time::sleep(self.record.options.latency).await;
        }
        let signature = self.signature(&body)?;
        let mut headers = vec![("Content-Type", CHECKIN_CONTENT_TYPE)];
        if let Some(s) = &signature {
            headers.push(("Mdm-Signature", s.as_str()));
        }
        let reply = self
            .transport
            .send(Method::PUT, url, &headers, Bytes::from(body))
            .await?;
        if reply.status != 200 {
            return Err(SimError::HttpStatus {
                url: url.to_owned(),
                status: reply.status,
                body: reply.body_excerpt(),
            });
        }
        Ok(reply.body)
    }

    /// Sends Authenticate.
    pub async fn checkin_authenticate(&mut self) -> Result<(), SimError> {
        let body = self.authenticate_body()?;
        let url = self.record.endpoints.check_in_url.clone();
        self.put_signed(&url, body).await?;
        self.record.authenticated = true;
        self.record.unenrolled = false;
        Ok(())
    }

    /// Sends the device-channel TokenUpdate.
    pub async fn token_update(&mut self) -> Result<(), SimError> {
        let body =
            self.token_update_body(None, &self.record.push_token_hex, &self.record.push_magic)?;
        let url = self.record.endpoints.check_in_url.clone();
        self.put_signed(&url, body).await?;
        self.record.token_updated = true;
        Ok(())
    }

    /// Authenticate, then TokenUpdate.
    pub async fn enroll_checkins(&mut self) -> Result<(), SimError> {
        self.checkin_authenticate().await?;
        self.token_update().await
    }

    /// Sends CheckOut (the MDM profile was removed) and drops what the MDM installed.
    pub async fn check_out(&mut self) -> Result<(), SimError> {
        let body = CheckinMessage::CheckOut(CheckOut {
            enrollment: self.enrollment(None)?,
            topic: Some(Topic::new(self.record.endpoints.topic.clone())?),
            extra: Dictionary::new(),
        })
        .encode()?;
        let url = self.record.endpoints.check_in_url.clone();
        self.put_signed(&url, body).await?;
        self.record.inventory.unenroll();
        Ok(())
    }

    /// Shared iPad: `short_name` signs in; the user channel sends its TokenUpdate (UserID
    /// FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF, UserShortName, its own push token).
    pub async fn user_sign_in(&mut self, short_name: &str) -> Result<(), SimError> {
        if !self.record.options.shared_ipad {
            return Err(SimError::NotSharedIpad);
        }
        if !self.record.user_channels.contains_key(short_name) {
            self.record.user_channels.insert(
                short_name.to_owned(),
                UserChannel {
                    push_token_hex: hex::encode(random_bytes(32)?),
                    push_magic: random_uuid()?,
                    inventory: Inventory::default(),
                },
            );
        }
        for u in &mut self.record.users {
            u.logged_in = false;
        }
        match self
            .record
            .users
            .iter_mut()
            .find(|u| u.short_name == short_name)
        {
            Some(u) => u.logged_in = true,
            None => self.record.users.push(SharedUser {
                short_name: short_name.to_owned(),
                logged_in: true,
                has_data_to_sync: false,
            }),
        }
        let channel = self
            .record
            .user_channels
            .get(short_name)
            .ok_or_else(|| SimError::UnknownUser(short_name.to_owned()))?;
        let body = self.token_update_body(
            Some(short_name),
            &channel.push_token_hex,
            &channel.push_magic,
        )?;
        let url = self.record.endpoints.check_in_url.clone();
        self.put_signed(&url, body).await?;
        Ok(())
    }

    /// A user channel's push token (hex).
    pub fn user_push_token_hex(&self, short_name: &str) -> Option<&str> {
        self.record
            .user_channels
            .get(short_name)
            .map(|u| u.push_token_hex.as_str())
    }

    /// On "push": connects on the device channel and processes commands until the server
    /// answers with an empty body.
    pub async fn connect_until_idle(&mut self) -> Result<Vec<ProcessedCommand>, SimError> {
        let done = self.session(None).await;
        self.forget_removed_web_apps();
        done
    }

    /// Like [`Self::connect_until_idle`], but a connection that drops is followed by the next
    /// one at once (up to `attempts` connections), as the device's own retry would follow it
    /// later: returns once a connection ended normally, with every command processed.
    pub async fn connect_until_settled(
        &mut self,
        attempts: usize,
    ) -> Result<Vec<ProcessedCommand>, SimError> {
        let mut all = Vec::new();
        for _ in 0..attempts.max(1) {
            all.extend(self.connect_until_idle().await?);
            if !self.last_dropped {
                break;
            }
        }
        Ok(all)
    }

    /// True when the last connection ended in a drop (the reply to a result was lost); the
    /// device comes back with that result on its next connection.
    pub fn last_connection_dropped(&self) -> bool {
        self.last_dropped
    }

    /// The same on a Shared iPad user's channel.
    pub async fn user_connect_until_idle(
        &mut self,
        short_name: &str,
    ) -> Result<Vec<ProcessedCommand>, SimError> {
        if !self.record.user_channels.contains_key(short_name) {
            return Err(SimError::UnknownUser(short_name.to_owned()));
        }
        self.session(Some(short_name)).await
    }

    async fn session(&mut self, user: Option<&str>) -> Result<Vec<ProcessedCommand>, SimError> {
        self.last_dropped = false;
        if self.record.unenrolled {
            return Ok(Vec::new());
        }
        match self.record.options.app_install {
            AppInstallTiming::NextSession => {
                self.inventory_mut(user)?.settle_apps();
            }
            AppInstallTiming::Asynchronous => {
                // Time passes between sessions; installs move on (see `AppInstallTiming`).
                let outcome = match self.record.options.app_install_outcome {
                    AppInstallOutcome::Failed => AppStatus::Failed,
                    AppInstallOutcome::UserRejected => AppStatus::UserRejected,
                    _ => AppStatus::Managed,
                };
                self.inventory_mut(user)?.advance_apps(outcome);
            }
            _ => {}
        }
        let enrollment = self.enrollment(user)?;
        let url = self.record.endpoints.server_url.clone();
        // A result whose reply was lost opens the connection instead of Idle [P].
        let pending = match &self.record.pending_result {
            Some(p) if p.user.as_deref() == user => self.record.pending_result.take(),
            _ => None,
        };
        let (mut body, mut is_result, mut not_now) = match pending {
            Some(p) => (p.body, true, p.not_now),
            None => (
                CommandReport::new(enrollment.clone(), Status::Idle, None).encode()?,
                false,
                false,
            ),
        };
        let mut processed = Vec::new();
        loop {
            let dropped = is_result && {
                let once = match self.lose_reply_in {
                    Some(0) => {
                        self.lose_reply_in = None;
                        true
                    }
                    Some(n) => {
                        self.lose_reply_in = Some(n - 1);
                        false
                    }
                    None => false,
                };
                let drawn = !self.record.options.pacing.is_off() && {
                    let draw = self.next_draw();
                    self.record.options.pacing.drops(draw)
                };
                once || drawn
            };
            let sent = self.put_signed(&url, body.clone()).await;
            if user.is_none() {
                self.record.ended_on_not_now = not_now;
            }
            let lost = is_result && (dropped || matches!(sent, Err(SimError::Transport { .. })));
            if lost {
                self.last_dropped = true;
                // The reply is lost: keep the result for the next connection.
                if self.record.options.resend_lost_result {
                    self.record.pending_result = Some(PendingResult {
                        user: user.map(str::to_owned),
                        not_now,
                        body,
                    });
                }
                // A drop ends the connection quietly; the device tries again on its next poll.
                return sent.map(|_| processed);
            }
            let reply = sent?;
            match self.after_report.take() {
                None => {}
                Some(AfterReport::ReplaceMdmProfile(replacement)) => {
                    let (identity, settings) = *replacement;
                    self.use_replaced_mdm_profile(identity, settings)?;
                }
                Some(AfterReport::Unenroll) => {
                    self.unenroll_after_removal().await?;
                    return Ok(processed);
                }
            }
            if reply.is_empty() {
                return Ok(processed);
            }
            if processed.len() >= self.record.options.max_commands_per_session {
                return Err(SimError::UnreadableCommand(format!(
                    "more than {} commands in one session",
                    processed.len()
                )));
            }
            let (uuid, request_type, answer) = self.process(&reply, user).await?;
            if !self.record.options.pacing.is_off() {
                let draw = self.next_draw();
                let delay = self
                    .record
                    .options
                    .pacing
                    .command_delay(&request_type, draw);
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
            processed.push(ProcessedCommand {
                uuid: uuid.as_str().to_owned(),
                request_type,
                status: answer.status,
                error_chain: answer.error_chain.clone(),
            });
            not_now = answer.status == Status::NotNow;
            is_result = true;
            body = CommandReport {
                enrollment: enrollment.clone(),
                status: answer.status,
                command_uuid: Some(uuid),
                error_chain: answer.error_chain,
                response: answer.response,
            }
            .encode()?;
        }
    }

    fn inventory_mut(&mut self, user: Option<&str>) -> Result<&mut Inventory, SimError> {
        match user {
            None => Ok(&mut self.record.inventory),
            Some(u) => self
                .record
                .user_channels
                .get_mut(u)
                .map(|c| &mut c.inventory)
                .ok_or_else(|| SimError::UnknownUser(u.to_owned())),
        }
    }

    /// Decodes and answers one command body.
    async fn process(
        &mut self,
        body: &[u8],
        user: Option<&str>,
    ) -> Result<(CommandUuid, String, ios_commands::CommandAnswer), SimError> {
        let dict = read_dictionary(body, &self.limits)
            .map_err(|e| SimError::UnreadableCommand(e.to_string()))?;
        let uuid = dict
            .get("CommandUUID")
            .and_then(Value::as_string)
            .ok_or_else(|| SimError::UnreadableCommand("no CommandUUID".into()))
            .and_then(|s| Ok(CommandUuid::new(s)?))?;
        let request_type = dict
            .get("Command")
            .and_then(Value::as_dictionary)
            .and_then(|c| c.get("RequestType"))
            .and_then(Value::as_string)
            .map(str::to_owned);
        let command = match ios_commands::decode_command_for(&dict, &self.record.options) {
            Ok(c) => c,
            Err(answer) => return Ok((uuid, request_type.unwrap_or_default(), answer)),
        };
        // SCEP payloads of an InstallProfile enroll first (network IO), unless deferred.
        let mut scep_results: BTreeMap<String, ScepResult> = BTreeMap::new();
        let mut scep_identities: BTreeMap<String, SimIdentity> = BTreeMap::new();
        let refused = ios_commands::refuses_mdm_replacement(
            self.record.enrollment_profile.as_ref(),
            &self.record.options,
            &command,
        );
        let scep_requests = if refused {
            Vec::new()
        } else {
            ios_commands::scep_payloads(&command)
        };
        for req in scep_requests {
            let outcome = scep::enroll(
                &self.transport,
                &ScepRequest {
                    url: req.url.clone(),
                    challenge: req.challenge.clone(),
                    common_name: req.common_name.clone(),
                    key_bits: 2048,
                    encoding: self.record.options.encoding,
                },
            )
            .await
            .and_then(|(cert, key)| {
                let der = cert.to_der()?;
                scep_identities.insert(req.payload_uuid.clone(), SimIdentity::new(cert, key));
                Ok(der)
            })
            .map_err(|e| e.to_string());
            scep_results.insert(req.payload_uuid, outcome);
        }
        let identity_der = self.identity.cert.to_der()?;
        let record = &mut self.record;
        let (inventory, user_channel) = match user {
            None => (&mut record.inventory, false),
            Some(u) => (
                record
                    .user_channels
                    .get_mut(u)
                    .map(|c| &mut c.inventory)
                    .ok_or_else(|| SimError::UnknownUser(u.to_owned()))?,
                true,
            ),
        };
        let mut ctx = ChannelContext {
            facts: &record.facts,
            identity_cert_der: &identity_der,
            enrollment_profile: record.enrollment_profile.as_ref(),
            inventory,
            users: &mut record.users,
            user_channel,
            locked: record.lock_state.is_locked(),
            before_first_unlock: record.lock_state == LockState::BeforeFirstUnlock,
            options: &record.options,
            scep_results: &scep_results,
        };
        let removes_mdm_profile = match &command.request {
            CommandRequest::RemoveProfile { identifier } => {
                ios_commands::removes_mdm_profile(&ctx, identifier)
            }
            _ => false,
        };
        let answer = answer(&mut ctx, &command);
        if answer.status == Status::Acknowledged && !user_channel {
            if removes_mdm_profile {
                self.after_report = Some(AfterReport::Unenroll);
            } else if let CommandRequest::InstallProfile { payload } = &command.request {
                self.after_report = self.replaced_mdm_profile(payload, &mut scep_identities)?;
            }
        }
        Ok((uuid, command.request_type().to_owned(), answer))
    }

    /// After an acknowledged InstallProfile: when it replaced the MDM profile (same identifier
    /// as the enrollment profile, [`crate::MdmProfileCommands::Ios`]), the identity and settings
    /// the device switches to once the report is sent. [I; M903]
    fn replaced_mdm_profile(
        &self,
        payload: &[u8],
        scep_identities: &mut BTreeMap<String, SimIdentity>,
    ) -> Result<Option<AfterReport>, SimError> {
        if self.record.options.mdm_profile_commands != crate::MdmProfileCommands::Ios {
            return Ok(None);
        }
        let Some(installed) = &self.record.enrollment_profile else {
            return Ok(None);
        };
        let Ok(profile) = ios_commands::parse_profile(payload) else {
            return Ok(None);
        };
        if profile.identifier != installed.identifier {
            return Ok(None);
        }
        let settings = read_enrollment_profile(payload)?;
        let identity = match &settings.identity {
            IdentitySource::Pkcs12 { der, password } => pkcs12_identity(der, password)?,
            IdentitySource::Scep { .. } => {
                let identity_uuid = profile
                    .payloads
                    .iter()
                    .find(|p| p.payload_type == crate::mdm_profile::MDM_PAYLOAD_TYPE)
                    .and_then(|p| p.content.get("IdentityCertificateUUID"))
                    .and_then(Value::as_string)
                    .unwrap_or_default();
                scep_identities.remove(identity_uuid).ok_or_else(|| {
                    SimError::Scep("the replacement MDM profile's SCEP identity is missing".into())
                })?
            }
        };
        Ok(Some(AfterReport::ReplaceMdmProfile(Box::new((
            identity, settings,
        )))))
    }

    /// Uses the identity and settings of a replacement MDM profile.
    fn use_replaced_mdm_profile(
        &mut self,
        identity: SimIdentity,
        settings: EnrollmentSettings,
    ) -> Result<(), SimError> {
        self.record.cert_chain_pem = identity.cert_chain_pem()?;
        self.identity = identity;
        self.record.endpoints = settings.endpoints;
        self.record.options.sign_messages = settings.sign_message;
        self.record.enrollment_profile = Some(settings.profile);
        Ok(())
    }

    /// The MDM profile was removed: CheckOut when its payload asks for it
    /// (`CheckOutWhenRemoved`), then what the MDM installed goes and the device stops talking to
    /// the server. [P `processRequest:`, managing-profile branch]
    async fn unenroll_after_removal(&mut self) -> Result<(), SimError> {
        let check_out = self
            .record
            .enrollment_profile
            .as_ref()
            .and_then(|p| p.mdm.as_ref())
            .is_some_and(|m| m.check_out_when_removed);
        if check_out {
            self.check_out().await?;
        } else {
            self.record.inventory.unenroll();
        }
        for channel in self.record.user_channels.values_mut() {
            channel.inventory.unenroll();
        }
        self.record.enrollment_profile = None;
        self.record.authenticated = false;
        self.record.token_updated = false;
        self.record.unenrolled = true;
        Ok(())
    }

    // ---- persistence ----

    /// Writes `<dir>/<udid>.json` and `<dir>/<udid>.key.pem`.
    pub fn save(&self, dir: &Path) -> Result<(), SimError> {
        std::fs::create_dir_all(dir).map_err(SimError::io(dir))?;
        let json_path = dir.join(format!("{}.json", self.udid()));
        let key_path = dir.join(format!("{}.key.pem", self.udid()));
        let json = serde_json::to_vec_pretty(&self.record).map_err(|e| SimError::Saved {
            path: json_path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&key_path, &self.identity.key_pem()?)?;
        write_atomically(&json_path, &json)
    }

    /// Reads a device saved with [`Self::save`].
    pub fn load(dir: &Path, udid: &str, transport: Transport) -> Result<Self, SimError> {
        let json_path = dir.join(format!("{udid}.json"));
        let key_path = dir.join(format!("{udid}.key.pem"));
        let json = std::fs::read(&json_path).map_err(SimError::io(&json_path))?;
        let record: DeviceRecord = serde_json::from_slice(&json).map_err(|e| SimError::Saved {
            path: json_path.clone(),
            reason: e.to_string(),
        })?;
        let key = std::fs::read(&key_path).map_err(SimError::io(&key_path))?;
        let identity = SimIdentity::from_pem(record.cert_chain_pem.as_bytes(), &key)?;
        Ok(Self {
            record,
            identity,
            transport,
            limits: Limits::default(),
            lose_reply_in: None,
            last_dropped: false,
            web_apps: BTreeMap::new(),
            after_report: None,
        })
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SimError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(SimError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(SimError::io(path))
}
