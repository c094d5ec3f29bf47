//! Fleets: many simulated devices driven concurrently from one process, saved to a directory
//! (`fleet.json` plus one JSON and one key PEM per device) so a fleet survives restarts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::device::{ProcessedCommand, SimDevice};
use crate::enrollment_profile::ServerEndpoints;
use crate::push::PushWatcher;
use crate::transport::origin_of;
use crate::{SimError, SimOptions, Transport};

/// `fleet.json`: where the fleet enrolled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetConfig {
    /// The server origin given at enrollment.
    pub server: String,
    /// UDIDs, in enrollment order.
    pub devices: Vec<String>,
}

/// How a fleet enrolls.
#[derive(Debug, Clone)]
pub struct FleetEnrollment {
    /// Server origin (`https://host:port`).
    pub server: String,
    /// Enrollment profile URL (Baton: the URL of an enrollment token with enough uses, e.g.
    /// `<server>/mdm/enroll?token=...`); when absent `<server>/mdm/enroll` is tried (served
    /// without a token with `--open-enrollment`), then SCEP at `<server>/scep` with Baton's
    /// check-in and command paths (`challenge`).
    pub profile_url: Option<String>,
    /// SCEP challenge for the fallback. A secret.
    pub challenge: Option<String>,
    /// Devices to add.
    pub count: usize,
    /// Enrollments in flight at once.
    pub concurrency: usize,
    /// Behaviour of the new devices.
    pub options: SimOptions,
}

/// The outcome of one device's operation in a fleet run.
#[derive(Debug)]
pub struct DeviceOutcome<T> {
    /// The UDID (or an index when the device does not exist yet).
    pub udid: String,
    /// How long it took.
    pub elapsed: Duration,
    /// The result.
    pub result: Result<T, SimError>,
}

/// A fleet in memory.
#[derive(Debug)]
pub struct Fleet {
    dir: PathBuf,
    server: String,
    devices: Vec<SimDevice>,
    transport: Transport,
}

fn progress(len: usize, what: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}

impl Fleet {
    /// An empty fleet saved under `dir`, for `server`.
    pub fn create(dir: &Path, server: &str, transport: Transport) -> Result<Self, SimError> {
        std::fs::create_dir_all(dir.join("devices")).map_err(SimError::io(dir))?;
        Ok(Self {
            dir: dir.to_owned(),
            server: origin_of(server)?,
            devices: Vec::new(),
            transport,
        })
    }

    /// Loads the fleet saved under `dir` (or an empty one when there is none yet and
    /// `server` is given).
    pub fn open(dir: &Path, server: Option<&str>, transport: Transport) -> Result<Self, SimError> {
        let path = dir.join("fleet.json");
        if !path.exists() {
            return match server {
                Some(s) => Self::create(dir, s, transport),
                None => Err(SimError::Saved {
                    path,
                    reason: "no fleet here (enroll one first)".into(),
                }),
            };
        }
        let bytes = std::fs::read(&path).map_err(SimError::io(&path))?;
        let config: FleetConfig = serde_json::from_slice(&bytes).map_err(|e| SimError::Saved {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let devices_dir = dir.join("devices");
        let devices = config
            .devices
            .iter()
            .map(|udid| SimDevice::load(&devices_dir, udid, transport.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            dir: dir.to_owned(),
            server: config.server,
            devices,
            transport,
        })
    }

    /// The server origin.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The devices.
    pub fn devices(&self) -> &[SimDevice] {
        &self.devices
    }

    /// The devices, mutably.
    pub fn devices_mut(&mut self) -> &mut [SimDevice] {
        &mut self.devices
    }

    /// One device by UDID.
    pub fn device_mut(&mut self, udid: &str) -> Option<&mut SimDevice> {
        self.devices.iter_mut().find(|d| d.udid() == udid)
    }

    /// Adds an already enrolled device (e.g. one a test built with its own identity); it is
    /// saved with the fleet.
    pub fn adopt(&mut self, device: SimDevice) {
        self.devices.push(device);
    }

    /// The transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Saves `fleet.json` and every device.
    pub fn save(&self) -> Result<(), SimError> {
        let devices_dir = self.dir.join("devices");
        for d in &self.devices {
            d.save(&devices_dir)?;
        }
        let config = FleetConfig {
            server: self.server.clone(),
            devices: self.devices.iter().map(|d| d.udid().to_owned()).collect(),
        };
        let path = self.dir.join("fleet.json");
        let json = serde_json::to_vec_pretty(&config).map_err(|e| SimError::Saved {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&path, json).map_err(SimError::io(&path))
    }

    /// Enrolls `how.count` new devices concurrently; successful ones join the fleet (and are
    /// saved). Returns every outcome.
    pub async fn enroll(
        &mut self,
        how: &FleetEnrollment,
        show_progress: bool,
    ) -> Result<Vec<DeviceOutcome<()>>, SimError> {
        let origin = origin_of(&how.server)?;
        let profile_url = match &how.profile_url {
            Some(u) => Some(u.clone()),
            None => {
                let url = format!("{origin}/mdm/enroll");
                let reply = self
                    .transport
                    .send(http::Method::GET, &url, &[], bytes::Bytes::new())
                    .await?;
                if reply.status == 403 && how.challenge.is_none() {
                    // Baton without --open-enrollment: profiles need an enrollment token.
                    return Err(SimError::HttpStatus {
                        url,
                        status: reply.status,
                        body: "the server wants an enrollment token: pass the enrollment URL \
                               of a token with enough uses as the profile URL, or a SCEP challenge"
                            .into(),
                    });
                }
                (reply.status == 200).then_some(url)
            }
        };
        let bar = progress(how.count, "enroll", show_progress);
        let endpoints = ServerEndpoints::baton(&origin);
        let scep_url = format!("{origin}/scep");
        let results: Vec<(Duration, Result<SimDevice, SimError>)> =
            futures::stream::iter(0..how.count)
                .map(|_| {
                    let transport = self.transport.clone();
                    let options = how.options.clone();
                    let profile_url = profile_url.clone();
                    let endpoints = endpoints.clone();
                    let scep_url = scep_url.clone();
                    let challenge = how.challenge.clone();
                    let bar = bar.clone();
                    async move {
                        let started = Instant::now();
                        let r = match profile_url {
                            Some(url) => {
                                SimDevice::enroll_from_profile_url(&url, options, transport).await
                            }
                            None => {
                                SimDevice::enroll_with_scep(
                                    &scep_url, challenge, endpoints, options, transport,
                                )
                                .await
                            }
                        };
                        bar.inc(1);
                        (started.elapsed(), r)
                    }
                })
                .buffer_unordered(how.concurrency.max(1))
                .collect()
                .await;
        bar.finish_and_clear();
        let mut outcomes = Vec::with_capacity(results.len());
        for (i, (elapsed, r)) in results.into_iter().enumerate() {
            match r {
                Ok(device) => {
                    outcomes.push(DeviceOutcome {
                        udid: device.udid().to_owned(),
                        elapsed,
                        result: Ok(()),
                    });
                    self.devices.push(device);
                }
                Err(e) => outcomes.push(DeviceOutcome {
                    udid: format!("#{i}"),
                    elapsed,
                    result: Err(e),
                }),
            }
        }
        self.save()?;
        Ok(outcomes)
    }

    /// Every device connects ("push") and processes its commands until the queue is empty,
    /// `concurrency` at a time.
    pub async fn connect_all(
        &mut self,
        concurrency: usize,
        show_progress: bool,
    ) -> Vec<DeviceOutcome<Vec<ProcessedCommand>>> {
        let indices: Vec<usize> = (0..self.devices.len()).collect();
        self.connect_some(&indices, concurrency, show_progress)
            .await
    }

    /// The devices at `indices` connect.
    pub async fn connect_some(
        &mut self,
        indices: &[usize],
        concurrency: usize,
        show_progress: bool,
    ) -> Vec<DeviceOutcome<Vec<ProcessedCommand>>> {
        let bar = progress(indices.len(), "connect", show_progress);
        let gate = Arc::new(Semaphore::new(concurrency.max(1)));
        let wanted: std::collections::BTreeSet<usize> = indices.iter().copied().collect();
        let futures = self
            .devices
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| wanted.contains(i))
            .map(|(_, device)| {
                let gate = Arc::clone(&gate);
                let bar = bar.clone();
                async move {
                    let _permit = gate.acquire().await;
                    let started = Instant::now();
                    let result = device.connect_until_idle().await;
                    bar.inc(1);
                    DeviceOutcome {
                        udid: device.udid().to_owned(),
                        elapsed: started.elapsed(),
                        result,
                    }
                }
            });
        let outcomes = futures::future::join_all(futures).await;
        bar.finish_and_clear();
        outcomes
    }

    /// Devices whose push token the mock APNs server received a push for since the last look
    /// connect.
    pub async fn connect_pushed(
        &mut self,
        watcher: &mut PushWatcher,
        mock: &baton_apns::mock::MockApns,
        concurrency: usize,
    ) -> Vec<DeviceOutcome<Vec<ProcessedCommand>>> {
        let tokens = watcher.new_tokens(mock);
        let indices: Vec<usize> = self
            .devices
            .iter()
            .enumerate()
            .filter(|(_, d)| tokens.contains(d.push_token_hex()))
            .map(|(i, _)| i)
            .collect();
        self.connect_some(&indices, concurrency, false).await
    }
}
