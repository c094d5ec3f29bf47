//! A simulated iOS device: identity, channels, inventory, and the async conversations with the
//! server (check-in messages, the command channel), every message signed with `Mdm-Signature`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use baton_proto::plist::{Dictionary, Value};
use baton_proto::{
    Authenticate, CheckOut, CheckinMessage, CommandReport, CommandUuid, Enrollment, EnrollmentKeys,
    ErrorChainItem, Limits, PushMagic, PushToken, Status, TokenUpdate, Topic, read_dictionary,
};
use bytes::Bytes;
use http::Method;
use openssl::pkcs12::Pkcs12;
use serde::{Deserialize, Serialize};

use crate::behaviour::{AppInstallTiming, SimOptions};
use crate::enrollment_profile::{
    EnrollmentSettings, IdentitySource, ServerEndpoints, read_enrollment_profile,
};
use crate::inventory::{InstalledCertificate, InstalledProfile, Inventory, ManagedApp, WebClip};
use crate::ios_commands::{self, ChannelContext, DeviceFacts, ScepResult, SharedUser, answer};
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
    /// Locked before first unlock.
    pub locked: bool,
    /// Authenticate was accepted.
    pub authenticated: bool,
    /// A device-channel TokenUpdate was accepted.
    pub token_updated: bool,
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

/// A simulated device.
#[derive(Debug, Clone)]
pub struct SimDevice {
    record: DeviceRecord,
    identity: SimIdentity,
    transport: Transport,
    limits: Limits,
    /// The web app of each installed web clip (its cookie jar), by [`web_app_key`].
    web_apps: BTreeMap<String, crate::browser::Browser>,
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
                locked: false,
                authenticated: false,
                token_updated: false,
            },
            identity,
            transport,
            limits: Limits::default(),
            web_apps: BTreeMap::new(),
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
            IdentitySource::Pkcs12 { der, password } => {
                let parsed = Pkcs12::from_der(der)?.parse2(password)?;
                match (parsed.cert, parsed.pkey) {
                    (Some(cert), Some(key)) => SimIdentity {
                        cert,
                        key,
                        chain: parsed
                            .ca
                            .map(|s| s.into_iter().collect())
                            .unwrap_or_default(),
                    },
                    _ => {
                        return Err(SimError::EnrollmentProfile(
                            "PKCS#12 has no certificate and key".into(),
                        ));
                    }
                }
            }
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

    /// Locks the device as after a restart (before first unlock).
    pub fn lock(&mut self) {
        self.record.locked = true;
    }

    /// Unlocks it.
    pub fn unlock(&mut self) {
        self.record.locked = false;
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
        if self.record.options.app_install == AppInstallTiming::NextSession {
            self.inventory_mut(user)?.settle_apps();
        }
        let enrollment = self.enrollment(user)?;
        let url = self.record.endpoints.server_url.clone();
        let mut report = CommandReport::new(enrollment.clone(), Status::Idle, None);
        let mut processed = Vec::new();
        loop {
            let reply = self.put_signed(&url, report.encode()?).await?;
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
            processed.push(ProcessedCommand {
                uuid: uuid.as_str().to_owned(),
                request_type,
                status: answer.status,
                error_chain: answer.error_chain.clone(),
            });
            report = CommandReport {
                enrollment: enrollment.clone(),
                status: answer.status,
                command_uuid: Some(uuid),
                error_chain: answer.error_chain,
                response: answer.response,
            };
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
        let command = match ios_commands::decode_command(&dict) {
            Ok(c) => c,
            Err(answer) => return Ok((uuid, request_type.unwrap_or_default(), answer)),
        };
        // SCEP payloads of an InstallProfile enroll first (network IO), unless deferred.
        let mut scep_results: BTreeMap<String, ScepResult> = BTreeMap::new();
        for req in ios_commands::scep_payloads(&command) {
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
            .and_then(|(cert, _key)| Ok(cert.to_der()?))
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
            locked: record.locked,
            options: &record.options,
            scep_results: &scep_results,
        };
        let answer = answer(&mut ctx, &command);
        Ok((uuid, command.request_type().to_owned(), answer))
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
            web_apps: BTreeMap::new(),
        })
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SimError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(SimError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(SimError::io(path))
}
