//! A small client of Baton's admin API (`/api/v1`, Bearer key): queue a command to many
//! devices, read a command's state, create users, groups, catalog items and distributions,
//! sign a device out and read its session log. Used by the benchmarks and the CLI.

use bytes::Bytes;
use http::Method;
use serde_json::Value as Json;

use crate::{SimError, Transport};

/// The admin API of one server.
#[derive(Debug, Clone)]
pub struct AdminApi {
    origin: String,
    authorization: String,
    transport: Transport,
}

impl AdminApi {
    /// A client for `origin` (`https://host:port`) with `api_key`.
    pub fn new(origin: &str, api_key: &str, transport: Transport) -> Self {
        Self {
            origin: origin.trim_end_matches('/').to_owned(),
            authorization: format!("Bearer {api_key}"),
            transport,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Json>,
    ) -> Result<Json, SimError> {
        let url = format!("{}{path}", self.origin);
        let bytes = match body {
            Some(j) => {
                Bytes::from(serde_json::to_vec(j).map_err(|e| SimError::Admin(e.to_string()))?)
            }
            None => Bytes::new(),
        };
        let reply = self
            .transport
            .send(
                method,
                &url,
                &[
                    ("Authorization", self.authorization.as_str()),
                    ("Content-Type", "application/json"),
                ],
                bytes,
            )
            .await?;
        if !(200..300).contains(&reply.status) {
            return Err(SimError::HttpStatus {
                url,
                status: reply.status,
                body: reply.body_excerpt(),
            });
        }
        if reply.body.is_empty() {
            return Ok(Json::Null);
        }
        serde_json::from_slice(&reply.body).map_err(|e| SimError::Admin(format!("{url}: {e}")))
    }

    /// `POST /api/v1/commands`: one command (JSON form, e.g. `{"request_type": "ProfileList"}`)
    /// to every device in `ids`; returns the CommandUUID.
    pub async fn enqueue_many(&self, ids: &[String], command: &Json) -> Result<String, SimError> {
        let body = serde_json::json!({ "devices": ids, "command": command });
        let reply = self
            .call(Method::POST, "/api/v1/commands", Some(&body))
            .await?;
        reply["command_uuid"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SimError::Admin(format!("no command_uuid in {reply}")))
    }

    /// `POST /api/v1/devices/{id}/commands`; returns the CommandUUID.
    pub async fn enqueue(&self, id: &str, command: &Json) -> Result<String, SimError> {
        let reply = self
            .call(
                Method::POST,
                &format!("/api/v1/devices/{id}/commands"),
                Some(command),
            )
            .await?;
        reply["command_uuid"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SimError::Admin(format!("no command_uuid in {reply}")))
    }

    /// `GET /api/v1/devices/{id}/commands/{uuid}`.
    pub async fn command(&self, id: &str, uuid: &str) -> Result<Json, SimError> {
        self.call(
            Method::GET,
            &format!("/api/v1/devices/{id}/commands/{uuid}"),
            None,
        )
        .await
    }

    /// `GET /api/v1/devices/{id}`.
    pub async fn device(&self, id: &str) -> Result<Json, SimError> {
        self.call(Method::GET, &format!("/api/v1/devices/{id}"), None)
            .await
    }

    /// `POST /api/v1/users/import` with a JSON array of users
    /// (`{"username","password",...}`); returns how many were created.
    pub async fn import_users(&self, users: &[Json]) -> Result<u64, SimError> {
        let body = Json::Array(users.to_vec());
        let reply = self
            .call(Method::POST, "/api/v1/users/import", Some(&body))
            .await?;
        reply["imported"]
            .as_u64()
            .ok_or_else(|| SimError::Admin(format!("no imported count in {reply}")))
    }

    /// `POST /api/v1/groups`; returns the group's id.
    pub async fn create_group(&self, group: &Json) -> Result<String, SimError> {
        self.create("/api/v1/groups", group).await
    }

    /// `POST /api/v1/items`; returns the item's id.
    pub async fn create_item(&self, item: &Json) -> Result<String, SimError> {
        self.create("/api/v1/items", item).await
    }

    /// `POST /api/v1/distributions`; returns the distribution's id.
    pub async fn create_distribution(&self, distribution: &Json) -> Result<String, SimError> {
        self.create("/api/v1/distributions", distribution).await
    }

    async fn create(&self, path: &str, body: &Json) -> Result<String, SimError> {
        let reply = self.call(Method::POST, path, Some(body)).await?;
        reply["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SimError::Admin(format!("{path}: no id in {reply}")))
    }

    /// `POST /api/v1/devices/{id}/sign-out` (an operator's forced sign-out).
    pub async fn sign_out(&self, id: &str) -> Result<Json, SimError> {
        self.call(
            Method::POST,
            &format!("/api/v1/devices/{id}/sign-out"),
            Some(&serde_json::json!({})),
        )
        .await
    }

    /// `GET /api/v1/devices/{id}/sessions`: the session log, oldest first.
    pub async fn sessions(&self, id: &str) -> Result<Vec<Json>, SimError> {
        let reply = self
            .call(Method::GET, &format!("/api/v1/devices/{id}/sessions"), None)
            .await?;
        reply["sessions"]
            .as_array()
            .cloned()
            .ok_or_else(|| SimError::Admin(format!("no sessions in {reply}")))
    }
}
