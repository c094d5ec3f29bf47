//! The people and catalog the sign-in scenarios need, created through the admin API: N users
//! with passwords (imported in batches), one static user group holding them, and P profile
//! items plus A app items, each distributed to that group. Names carry a random run prefix, so
//! runs against the same server do not collide.

use base64::Engine as _;
use baton_proto::Profile;
use serde_json::json;

use crate::{AdminApi, SimError, random_uuid};

/// What to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PopulationSpec {
    /// Users.
    pub users: usize,
    /// Profile items per user (all users get the same ones).
    pub profiles: usize,
    /// App items per user.
    pub apps: usize,
    /// Users per import request (each password is hashed with argon2id on the server).
    pub import_batch: usize,
}

/// What was created.
#[derive(Debug, Clone)]
pub struct Population {
    /// The run prefix of every name.
    pub prefix: String,
    /// The user group's id.
    pub group: String,
    /// `(username, password)` pairs. The passwords are secrets of the run.
    pub users: Vec<(String, String)>,
    /// Catalog item ids.
    pub items: Vec<String>,
    /// The app items' `(iTunesStoreID, bundle id)`, for the devices' App Store
    /// ([`crate::SimOptions::app_store`]).
    pub app_store: Vec<(u64, String)>,
}

impl Population {
    /// Tells `device` which bundle id each of the run's App Store ids installs.
    pub fn teach_app_store(&self, device: &mut crate::SimDevice) {
        let store = &mut device.options_mut().app_store;
        for (id, bundle) in &self.app_store {
            store.insert(id.to_string(), bundle.clone());
        }
    }
}

fn profile_b64(prefix: &str, i: usize) -> Result<String, SimError> {
    let xml = Profile::new(format!("com.example.{prefix}.p{i:03}"), random_uuid()?)
        .with_display_name(format!("Profile {i} for $USER.username"))
        .to_xml()
        .map_err(|e| SimError::Admin(format!("building a profile item: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(xml))
}

/// Creates the population; `on_step` is called after each API call (for a progress bar).
pub async fn create(
    admin: &AdminApi,
    spec: &PopulationSpec,
    on_step: impl Fn(),
) -> Result<Population, SimError> {
    let run = random_uuid()?.to_ascii_lowercase();
    let prefix = format!("sim{}", &run[..8]);
    let secret = &run[9..];
    let users: Vec<(String, String)> = (0..spec.users)
        .map(|i| (format!("{prefix}-u{i:05}"), format!("pw-{secret}-{i}")))
        .collect();
    for chunk in users.chunks(spec.import_batch.max(1)) {
        let body: Vec<serde_json::Value> = chunk
            .iter()
            .map(|(u, p)| json!({"username": u, "password": p, "full_name": format!("Person {u}")}))
            .collect();
        let n = admin.import_users(&body).await?;
        if n != chunk.len() as u64 {
            return Err(SimError::Admin(format!(
                "imported {n} of {} users",
                chunk.len()
            )));
        }
        on_step();
    }
    let group = admin
        .create_group(&json!({
            "name": format!("{prefix}-people"),
            "kind": "user",
            "members": users.iter().map(|(u, _)| u.as_str()).collect::<Vec<_>>(),
        }))
        .await?;
    on_step();
    // App Store ids unique to the run, so bundle ids of earlier runs are not reused.
    let store_base =
        1_000_000_000 + (u64::from_str_radix(&run[..6], 16).unwrap_or(0) % 1_000_000) * 1_000;
    let mut app_store = Vec::with_capacity(spec.apps);
    let mut items = Vec::with_capacity(spec.profiles + spec.apps);
    for i in 0..spec.profiles + spec.apps {
        let body = if i < spec.profiles {
            json!({"id": format!("{prefix}-p{i:03}"), "name": format!("Profile {i}"),
                "kind": "profile", "mobileconfig": profile_b64(&prefix, i)?})
        } else {
            let bundle = format!("com.example.{prefix}.app{i}");
            let store_id = store_base + i as u64;
            app_store.push((store_id, bundle.clone()));
            // VPP: a shared device has no Apple ID to buy with (the sim, like iOS, refuses
            // PurchaseMethod 0 then); the sim holds licences for the ids it is taught.
            json!({"id": format!("{prefix}-a{i:03}"), "name": format!("App {i}"), "kind": "app",
                "bundle_id": bundle, "itunes_store_id": store_id, "licensing": "vpp"})
        };
        let item = admin.create_item(&body).await?;
        admin
            .create_distribution(&json!({"item": item, "target": {"groups": [group]}}))
            .await?;
        items.push(item);
        on_step();
    }
    Ok(Population {
        prefix,
        group,
        users,
        items,
        app_store,
    })
}

/// API calls [`create`] makes (for a progress bar's length).
pub fn steps(spec: &PopulationSpec) -> usize {
    spec.users.div_ceil(spec.import_batch.max(1)) + 1 + spec.profiles + spec.apps
}
