//! `GET /api/v1/groups/{id}/members`: who is in a group now, as the engine decides it. A device
//! group (static, rule or `assignee_in`) lists every enrolled device it matches, each with its
//! current assignee; a user group lists its users. Rules are evaluated by the compiled
//! configuration the reconciler uses, so a rule that matches nothing (`model = "iPad"` where
//! devices report `iPad13,1`) shows an empty list here.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use baton_assign::{GroupId, GroupKind, NOBODY_USERNAME};
use baton_proto::Udid;
use serde_json::{Value, json};

use super::blocking;
use crate::catalog::assignment_config::read_json;
use crate::directory::{GROUPS_COLLECTION, GroupRecord};
use crate::error_response::ApiError;
use crate::state::AppState;

/// `GET /api/v1/groups/{id}/members`: `{"group","kind","members":[...]}`; 404 unknown group.
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = GroupId::new(id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    blocking(move || {
        let store = state.store.as_ref();
        let group: GroupRecord = read_json(store, GROUPS_COLLECTION, id.as_str())?
            .ok_or_else(|| ApiError::NotFound(format!("unknown group {id}")))?;
        let compiled = state.reconciler.compiled()?;
        let kind = group.members.kind();
        let mut members = Vec::new();
        match kind {
            GroupKind::Devices => {
                let devices: BTreeSet<_> = store
                    .enrollments()?
                    .into_iter()
                    .map(|e| e.id.parent())
                    .collect();
                for device_id in devices {
                    let Some(device) = state.reconciler.engine_device(&device_id)? else {
                        continue;
                    };
                    if compiled.groups_of(&device, &device.assignee).contains(&id) {
                        let attr = |name: &str| {
                            device
                                .attributes
                                .get(name)
                                .map(|v| json!(v))
                                .unwrap_or(Value::Null)
                        };
                        members.push(json!({
                            "id": device_id.to_string(),
                            "serial_number": device.serial,
                            "model": attr("model"),
                            "model_name": attr("model_name"),
                            "assignee": device.assignee,
                        }));
                    }
                }
            }
            _ => {
                // User-group membership does not depend on the device; any device will do.
                let probe = baton_assign::Device {
                    udid: Udid::new("00000000-0000000000000000")
                        .map_err(|e| ApiError::Internal(e.to_string()))?,
                    serial: None,
                    kind: baton_assign::DeviceKind::default(),
                    assignee: NOBODY_USERNAME.to_owned(),
                    attributes: Default::default(),
                };
                for user in &compiled.config().directory.users {
                    if compiled.groups_of(&probe, &user.username).contains(&id) {
                        members.push(json!({
                            "username": user.username,
                            "full_name": user.full_name,
                            "email": user.email,
                        }));
                    }
                }
            }
        }
        Ok(Json(json!({
            "group": id.as_str(),
            "kind": kind,
            "members": members,
        })))
    })
    .await
}
