//! Users and groups: `POST`/`GET /api/v1/users`, `GET`/`PATCH`/`DELETE /api/v1/users/{name}`,
//! `POST /api/v1/users/import` (a JSON array, or CSV `username,password,full_name,email`),
//! `POST`/`GET /api/v1/groups`, `DELETE /api/v1/groups/{id}`. Passwords are hashed with
//! argon2id at once; neither passwords nor hashes are ever returned or logged. Usernames are
//! unique without case: creating `Alice` when `alice` exists is a 409.
//!
//! `PATCH /api/v1/users/{name}` takes `{"disabled"?, "full_name"?, "email"?, "password"?}`.
//! Disabling (or deleting) a user wakes the session sweeper, which signs the user out of every
//! device at once; the portal refuses a disabled user's sign-in.

use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use baton_assign::{GroupId, NOBODY_USERNAME};
use baton_store::{CasOutcome, unix_millis};
use serde_json::{Value, json};

use super::blocking;
use super::json_body::AdminJson;
use crate::catalog::assignment_config::{all_json, collection, encode, read_json};
use crate::directory::user_record::UserPatch;
use crate::directory::username;
use crate::directory::{
    GROUPS_COLLECTION, GroupInput, GroupRecord, USERS_COLLECTION, UserInput, UserRecord, UserView,
};
use crate::error_response::ApiError;
use crate::state::AppState;

fn now_secs() -> u64 {
    unix_millis(SystemTime::now()) / 1000
}

/// Serialises user creation: the check that no stored name differs from a new one only in
/// case and the write must not interleave with another creation (one server process owns the
/// store).
static CREATING_USERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Stores new users (all or none); refuses usernames that exist, also in another case (409),
/// and a name given twice (400).
fn create_users(state: &AppState, inputs: Vec<UserInput>) -> Result<Vec<UserView>, ApiError> {
    let store = state.store.as_ref();
    let users = collection(USERS_COLLECTION)?;
    let mut batch = baton_store::KeyspaceBatch::new();
    let mut views = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for input in inputs {
        let typed = input.username.clone();
        let record = input
            .into_record(now_secs(), &state.password_policy)
            .map_err(|e| ApiError::BadRequest(format!("user {:?}: {e}", typed.trim())))?;
        let name = record.user.username.clone();
        if let Some(earlier) = username::clash(&name, seen.iter().map(String::as_str)) {
            return Err(ApiError::BadRequest(format!(
                "user {name:?} given twice (as {earlier:?}; usernames are compared without case)"
            )));
        }
        seen.push(name.clone());
        batch.expect(&users, name.as_bytes(), None);
        batch.put(&users, name.as_bytes(), &encode(&record)?);
        views.push(UserView::from(&record));
    }
    let _creating = CREATING_USERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let stored: Vec<String> = store
        .scan_prefix(&users, b"")?
        .into_iter()
        .map(|(key, _)| String::from_utf8_lossy(&key).into_owned())
        .collect();
    for name in &seen {
        if let Some(existing) = username::clash(name, stored.iter().map(String::as_str)) {
            return Err(ApiError::Conflict(if existing == name {
                format!("user {name:?} already exists")
            } else {
                format!(
                    "user {name:?} already exists as {existing:?} (usernames are compared without case)"
                )
            }));
        }
    }
    match store.apply(&batch)? {
        CasOutcome::Applied => Ok(views),
        CasOutcome::Conflict { key, .. } => Err(ApiError::Conflict(format!(
            "user {:?} already exists",
            String::from_utf8_lossy(&key)
        ))),
        _ => Err(ApiError::Conflict("concurrent change".into())),
    }
}

fn changed(state: &AppState) {
    if let Err(error) = state.reconciler.config_changed(SystemTime::now()) {
        tracing::warn!(%error, "reconcile after a directory change failed");
    }
}

/// `POST /api/v1/users`.
pub async fn create_user(
    State(state): State<AppState>,
    AdminJson(input): AdminJson<UserInput>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let view = blocking(move || {
        let mut views = create_users(&state, vec![input])?;
        changed(&state);
        views
            .pop()
            .ok_or_else(|| ApiError::Internal("no user created".into()))
    })
    .await?;
    tracing::info!(username = %view.username, "user created");
    Ok((StatusCode::CREATED, Json(view)))
}

/// Parses a CSV import: `username,password,full_name,email` (a header line is skipped).
fn parse_csv(text: &str) -> Result<Vec<UserInput>, ApiError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (n == 0 && line.to_ascii_lowercase().starts_with("username")) {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        let col = |i: usize| {
            cols.get(i)
                .filter(|s| !s.is_empty())
                .map(|s| (*s).to_owned())
        };
        let username =
            col(0).ok_or_else(|| ApiError::BadRequest(format!("line {}: no username", n + 1)))?;
        out.push(UserInput {
            username,
            password: col(1),
            full_name: col(2),
            email: col(3),
            attributes: Default::default(),
        });
    }
    Ok(out)
}

/// `POST /api/v1/users/import`: JSON array or CSV; all users or none are created.
pub async fn import_users(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let is_csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv") || v.starts_with("text/plain"));
    let inputs = if is_csv {
        parse_csv(&String::from_utf8_lossy(&body))?
    } else {
        serde_json::from_slice::<Vec<UserInput>>(&body)
            .map_err(|e| ApiError::BadRequest(format!("expected a JSON array of users: {e}")))?
    };
    let views = blocking(move || {
        let views = create_users(&state, inputs)?;
        changed(&state);
        Ok(views)
    })
    .await?;
    tracing::info!(count = views.len(), "users imported");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "imported": views.len(), "users": views })),
    ))
}

/// `GET /api/v1/users`.
pub async fn list_users(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let users = blocking(move || {
        Ok(
            all_json::<UserRecord>(state.store.as_ref(), USERS_COLLECTION)?
                .iter()
                .map(UserView::from)
                .collect::<Vec<_>>(),
        )
    })
    .await?;
    Ok(Json(json!({ "users": users })))
}

/// The stored username a typed one means: trimmed, matched without case
/// ([`username::resolve`]); the typed name (trimmed) when none matches, so "unknown user"
/// messages quote what was asked for.
pub(crate) fn stored_username(
    store: &dyn baton_store::Keyspace,
    typed: &str,
) -> Result<Option<String>, ApiError> {
    let users = all_json::<UserRecord>(store, USERS_COLLECTION)?;
    Ok(username::resolve(typed, users.iter().map(|u| u.user.username.as_str())).map(str::to_owned))
}

/// `name` as stored, or as typed (trimmed) when no user has it.
fn canonical(store: &dyn baton_store::Keyspace, name: &str) -> Result<String, ApiError> {
    Ok(stored_username(store, name)?.unwrap_or_else(|| name.trim().to_owned()))
}

/// `GET /api/v1/users/{name}` (the name matched without case, like everywhere).
pub async fn show_user(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    blocking(move || {
        let name = canonical(state.store.as_ref(), &name)?;
        read_json::<UserRecord>(state.store.as_ref(), USERS_COLLECTION, &name)?
            .map(|r| Json(UserView::from(&r)))
            .ok_or_else(|| ApiError::NotFound(format!("unknown user {name:?}")))
    })
    .await
}

/// `DELETE /api/v1/users/{name}` (not `nobody`).
pub async fn delete_user(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if username::same(name.trim(), NOBODY_USERNAME) {
        return Err(ApiError::BadRequest(
            "the nobody user cannot be deleted".into(),
        ));
    }
    blocking(move || {
        let name = canonical(state.store.as_ref(), &name)?;
        if !state
            .store
            .delete(&collection(USERS_COLLECTION)?, name.as_bytes())?
        {
            return Err(ApiError::NotFound(format!("unknown user {name:?}")));
        }
        changed(&state);
        // A deleted user is signed out everywhere, like a disabled one.
        state.session.wake_sweeper();
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// `PATCH /api/v1/users/{name}`: disable or enable, change the display name, e-mail or
/// password. 404 for an unknown user; 400 for unknown fields, an empty password, or disabling
/// (or setting a password on) `nobody`.
pub async fn patch_user(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<UserView>, ApiError> {
    let patch: UserPatch = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("user patch: {e}")))?;
    blocking(move || {
        let store = state.store.as_ref();
        let name = canonical(store, &name)?;
        let users = collection(USERS_COLLECTION)?;
        let old = store
            .get(&users, name.as_bytes())?
            .ok_or_else(|| ApiError::NotFound(format!("unknown user {name:?}")))?;
        let mut record: UserRecord = crate::catalog::assignment_config::decode(USERS_COLLECTION, &old)?;
        let effect = patch
            .apply(&mut record, &state.password_policy)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        match store.compare_and_swap(&users, name.as_bytes(), Some(&old), Some(&encode(&record)?))? {
            CasOutcome::Applied => {}
            _ => return Err(ApiError::Conflict("concurrent change, retry".into())),
        }
        if effect.directory_changed {
            changed(&state);
        }
        if effect.disabled_changed {
            tracing::info!(username = %name, disabled = record.disabled, "user disabled flag changed");
            if record.disabled {
                state.session.wake_sweeper();
            }
        }
        Ok(Json(UserView::from(&record)))
    })
    .await
}

/// `POST /api/v1/groups`.
pub async fn create_group(
    State(state): State<AppState>,
    AdminJson(input): AdminJson<GroupInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let group = input.into_group().map_err(ApiError::BadRequest)?;
    let view = blocking(move || {
        let groups = collection(GROUPS_COLLECTION)?;
        match state.store.compare_and_swap(
            &groups,
            group.id.as_str().as_bytes(),
            None,
            Some(&encode(&group)?),
        )? {
            CasOutcome::Applied => {}
            _ => {
                return Err(ApiError::Conflict(format!(
                    "group {} already exists",
                    group.id
                )));
            }
        }
        changed(&state);
        Ok(group_view(&group))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

fn group_view(g: &GroupRecord) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "kind": g.members.kind(),
        "members": g.members,
    })
}

/// `GET /api/v1/groups`.
pub async fn list_groups(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let groups = blocking(move || {
        Ok(
            all_json::<GroupRecord>(state.store.as_ref(), GROUPS_COLLECTION)?
                .iter()
                .map(group_view)
                .collect::<Vec<_>>(),
        )
    })
    .await?;
    Ok(Json(json!({ "groups": groups })))
}

/// `PUT /api/v1/groups/{id}`: replaces a group's members or rule (same body as `POST`; the
/// `name` must be the path's id). The kind cannot change (409: delete and create it again);
/// 404 for an unknown group. Devices whose desired state changes are reconciled.
pub async fn replace_group(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AdminJson(input): AdminJson<GroupInput>,
) -> Result<Json<Value>, ApiError> {
    if input.name != id {
        return Err(ApiError::BadRequest(format!(
            "the body's name {:?} is not the path's {id:?}",
            input.name
        )));
    }
    let group = input.into_group().map_err(ApiError::BadRequest)?;
    blocking(move || {
        let groups = collection(GROUPS_COLLECTION)?;
        let key = group.id.as_str().as_bytes();
        let Some(current) = state.store.get(&groups, key)? else {
            return Err(ApiError::NotFound(format!("unknown group {}", group.id)));
        };
        let old: GroupRecord = serde_json::from_slice(&current)
            .map_err(|e| ApiError::Internal(format!("stored group {}: {e}", group.id)))?;
        if old.members.kind() != group.members.kind() {
            return Err(ApiError::Conflict(format!(
                "group {} holds {}; delete it and create it again to change its kind",
                group.id,
                match old.members.kind() {
                    baton_assign::GroupKind::Users => "users",
                    _ => "devices",
                }
            )));
        }
        match state
            .store
            .compare_and_swap(&groups, key, Some(&current), Some(&encode(&group)?))?
        {
            CasOutcome::Applied => {}
            _ => return Err(ApiError::Conflict("concurrent change, retry".into())),
        }
        changed(&state);
        tracing::info!(group = %group.id, "group replaced");
        Ok(Json(group_view(&group)))
    })
    .await
}

/// `DELETE /api/v1/groups/{id}`.
pub async fn delete_group(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = GroupId::new(id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    blocking(move || {
        if !state
            .store
            .delete(&collection(GROUPS_COLLECTION)?, id.as_str().as_bytes())?
        {
            return Err(ApiError::NotFound(format!("unknown group {id}")));
        }
        changed(&state);
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_import_parses_rows_and_skips_header() {
        let rows = parse_csv("username,password,full_name,email\nalice,pw,Alice A,a@x\nbob,pw2\n")
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].email.as_deref(), Some("a@x"));
        assert_eq!(rows[1].full_name, None);
        assert!(parse_csv(",pw\n").is_err());
    }
}
