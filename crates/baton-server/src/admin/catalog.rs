//! The catalog and distributions: `POST`/`GET /api/v1/items`, `GET`/`PUT`/`DELETE
//! /api/v1/items/{id}`, `POST`/`GET /api/v1/distributions`, `DELETE
//! /api/v1/distributions/{id}`. Every change invalidates the compiled configuration and
//! reconciles the devices.

use std::time::SystemTime;

use crate::catalog::TargetInput;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use baton_assign::{CatalogItem, DistributionId, ItemId};
use baton_store::{CasOutcome, Keyspace};
use serde_json::{Value, json};

use super::blocking;
use super::json_body::AdminJson;
use crate::catalog::assignment_config::{RecordError, all_json, collection, encode, read_json};
use crate::catalog::item_input::slug;
use crate::catalog::{
    DISTRIBUTIONS_COLLECTION, DistributionInput, DistributionRecord, ITEMS_COLLECTION, ItemInput,
};
use crate::error_response::ApiError;
use crate::reconciler::ReconcileError;
use crate::state::AppState;

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Store(s) => ApiError::from(s),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<ReconcileError> for ApiError {
    fn from(e: ReconcileError) -> Self {
        match e {
            ReconcileError::UnknownDevice(id) => {
                ApiError::NotFound(format!("unknown or not enabled device {id}"))
            }
            ReconcileError::UnknownUser(u) => ApiError::NotFound(format!("unknown user {u:?}")),
            ReconcileError::Desired(d) => ApiError::NotFound(d.to_string()),
            ReconcileError::Conflict => ApiError::Conflict("concurrent change, retry".into()),
            ReconcileError::Store(s) => ApiError::from(s),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

pub(crate) fn changed(state: &AppState) {
    if let Err(error) = state.reconciler.config_changed(SystemTime::now()) {
        tracing::warn!(%error, "reconcile after a catalog change failed");
    }
}

/// A free id: `base`, else `base-2`, `base-3`, ...
fn free_id(store: &dyn Keyspace, coll: &str, base: &str) -> Result<String, ApiError> {
    let c = collection(coll)?;
    for n in 1..1000 {
        let id = if n == 1 {
            base.to_owned()
        } else {
            format!("{base}-{n}")
        };
        if store.get(&c, id.as_bytes())?.is_none() {
            return Ok(id);
        }
    }
    Err(ApiError::Conflict(format!("no free id for {base:?}")))
}

/// `POST /api/v1/items`.
pub async fn create_item(
    State(state): State<AppState>,
    AdminJson(input): AdminJson<ItemInput>,
) -> Result<(StatusCode, Json<CatalogItem>), ApiError> {
    let item = blocking(move || {
        let store = state.store.as_ref();
        let explicit = input.id.clone();
        let id = match explicit {
            Some(id) => id,
            None => free_id(
                store,
                ITEMS_COLLECTION,
                &slug(input.name.as_deref().unwrap_or(&input.kind)),
            )?,
        };
        let id = ItemId::new(id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let item = input
            .into_item(id.clone())
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        match store.compare_and_swap(
            &collection(ITEMS_COLLECTION)?,
            id.as_str().as_bytes(),
            None,
            Some(&encode(&item)?),
        )? {
            CasOutcome::Applied => {}
            _ => return Err(ApiError::Conflict(format!("item {id} already exists"))),
        }
        changed(&state);
        Ok(item)
    })
    .await?;
    tracing::info!(item = %item.id, kind = ?item.content.kind(), "catalog item created");
    Ok((StatusCode::CREATED, Json(item)))
}

/// `PUT /api/v1/items/{id}`: replaces an existing item's content (same body as `POST`; an `id`
/// in the body must match the path). Devices that have the item get the new version (its
/// PayloadUUID is derived from the content, so a changed profile is installed again); 404 for
/// an unknown item.
pub async fn replace_item(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AdminJson(input): AdminJson<ItemInput>,
) -> Result<Json<CatalogItem>, ApiError> {
    if input.id.as_deref().is_some_and(|body| body != id) {
        return Err(ApiError::BadRequest(format!(
            "the body's id {:?} is not the path's {id:?}",
            input.id.unwrap_or_default()
        )));
    }
    let item = blocking(move || {
        let store = state.store.as_ref();
        let id = ItemId::new(id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let item = input
            .into_item(id.clone())
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let items = collection(ITEMS_COLLECTION)?;
        let Some(current) = store.get(&items, id.as_str().as_bytes())? else {
            return Err(ApiError::NotFound(format!("unknown item {id}")));
        };
        match store.compare_and_swap(
            &items,
            id.as_str().as_bytes(),
            Some(&current),
            Some(&encode(&item)?),
        )? {
            CasOutcome::Applied => {}
            _ => return Err(ApiError::Conflict("concurrent change, retry".into())),
        }
        changed(&state);
        Ok(item)
    })
    .await?;
    tracing::info!(item = %item.id, kind = ?item.content.kind(), "catalog item replaced");
    Ok(Json(item))
}

/// `GET /api/v1/items`.
pub async fn list_items(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let items = blocking(move || {
        Ok(all_json::<CatalogItem>(
            state.store.as_ref(),
            ITEMS_COLLECTION,
        )?)
    })
    .await?;
    Ok(Json(json!({ "items": items })))
}

/// `GET /api/v1/items/{id}`.
pub async fn show_item(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CatalogItem>, ApiError> {
    blocking(move || {
        read_json::<CatalogItem>(state.store.as_ref(), ITEMS_COLLECTION, &id)?
            .map(Json)
            .ok_or_else(|| ApiError::NotFound(format!("unknown item {id:?}")))
    })
    .await
}

/// `DELETE /api/v1/items/{id}` (its distributions stay and are reported by the lint).
pub async fn delete_item(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    blocking(move || {
        if !state
            .store
            .delete(&collection(ITEMS_COLLECTION)?, id.as_bytes())?
        {
            return Err(ApiError::NotFound(format!("unknown item {id:?}")));
        }
        changed(&state);
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// `POST /api/v1/distributions`.
pub async fn create_distribution(
    State(state): State<AppState>,
    AdminJson(input): AdminJson<DistributionInput>,
) -> Result<(StatusCode, Json<DistributionRecord>), ApiError> {
    input.target.validate().map_err(ApiError::BadRequest)?;
    let record = blocking(move || {
        let store = state.store.as_ref();
        if read_json::<CatalogItem>(store, ITEMS_COLLECTION, input.item.as_str())?.is_none() {
            return Err(ApiError::BadRequest(format!("unknown item {}", input.item)));
        }
        // Unknown groups and users are refused like an unknown item; usernames are matched
        // without case and stored as the user's own spelling.
        let target = match input.target {
            TargetInput::Groups { groups } => {
                for g in &groups {
                    if read_json::<crate::directory::GroupRecord>(
                        store,
                        crate::directory::GROUPS_COLLECTION,
                        g.as_str(),
                    )?
                    .is_none()
                    {
                        return Err(ApiError::BadRequest(format!("unknown group {g}")));
                    }
                }
                TargetInput::Groups { groups }
            }
            TargetInput::Users { users } => {
                let mut stored = Vec::with_capacity(users.len());
                for u in &users {
                    match super::directory::stored_username(store, u)? {
                        Some(name) => stored.push(name),
                        None => {
                            return Err(ApiError::BadRequest(format!("unknown user {u:?}")));
                        }
                    }
                }
                TargetInput::Users { users: stored }
            }
            other => other,
        };
        let id = match input.id {
            Some(id) => id,
            None => DistributionId::new(free_id(
                store,
                DISTRIBUTIONS_COLLECTION,
                &format!("{}-dist", input.item),
            )?)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        };
        let record = DistributionRecord {
            id: id.clone(),
            name: input.name.unwrap_or_default(),
            item: input.item,
            target,
        };
        match store.compare_and_swap(
            &collection(DISTRIBUTIONS_COLLECTION)?,
            id.as_str().as_bytes(),
            None,
            Some(&encode(&record)?),
        )? {
            CasOutcome::Applied => {}
            _ => {
                return Err(ApiError::Conflict(format!(
                    "distribution {id} already exists"
                )));
            }
        }
        changed(&state);
        Ok(record)
    })
    .await?;
    tracing::info!(distribution = %record.id, item = %record.item, "distribution created");
    Ok((StatusCode::CREATED, Json(record)))
}

/// `GET /api/v1/distributions`.
pub async fn list_distributions(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list = blocking(move || {
        Ok(all_json::<DistributionRecord>(
            state.store.as_ref(),
            DISTRIBUTIONS_COLLECTION,
        )?)
    })
    .await?;
    Ok(Json(json!({ "distributions": list })))
}

/// `DELETE /api/v1/distributions/{id}`.
pub async fn delete_distribution(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    blocking(move || {
        if !state
            .store
            .delete(&collection(DISTRIBUTIONS_COLLECTION)?, id.as_bytes())?
        {
            return Err(ApiError::NotFound(format!("unknown distribution {id:?}")));
        }
        changed(&state);
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
