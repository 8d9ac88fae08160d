//! The hub over REST, under `/api/v1` beside the BLE routes and in the same OpenAPI
//! document: telemetry history, devices with presence, commands (send, list, one
//! command with its status history). Needs `hub:client` when credentials are
//! configured; a credential's device list holds here as on `/hub`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::protocol::{Code, Failure};
use super::socket::may_use;
use super::Hub;
use crate::auth::Principal;
use crate::store::{now_ms, CommandRecord, CommandStatus, PointQuery};

#[derive(OpenApi)]
#[openapi()]
struct HubDoc;

/// The hub's routes (relative to `/api/v1`) and their OpenAPI paths.
pub fn router(hub: Hub) -> (axum::Router, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(HubDoc::openapi())
        .routes(routes!(telemetry))
        .routes(routes!(hub_devices))
        .routes(routes!(connections))
        .routes(routes!(list_commands, send_command))
        .routes(routes!(command))
        .with_state(hub)
        .split_for_parts()
}

struct HubError(Failure);

impl From<Failure> for HubError {
    fn from(f: Failure) -> Self {
        HubError(f)
    }
}

impl From<crate::store::StoreError> for HubError {
    fn from(e: crate::store::StoreError) -> Self {
        HubError(Failure::new(Code::StoreError, e.to_string()))
    }
}

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        let status = match self.0.code {
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::NotAuthenticated => StatusCode::UNAUTHORIZED,
            Code::UnknownCommand => StatusCode::NOT_FOUND,
            Code::CommandClosed => StatusCode::CONFLICT,
            Code::StoreError => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        crate::http::problem(status, self.0.code.as_str(), &self.0.message)
    }
}

type HubResult<T> = Result<T, HubError>;

fn admit(p: &Option<Extension<Principal>>, device: &str) -> HubResult<()> {
    if may_use(p.as_ref().map(|e| &e.0), device) {
        Ok(())
    } else {
        Err(Failure::from(crate::auth::AuthError::DeviceNotAllowed(device.to_string())).into())
    }
}

#[derive(Deserialize, IntoParams, Default)]
#[serde(default)]
pub struct TelemetryQuery {
    /// One key; all keys when absent.
    key: Option<String>,
    /// From (inclusive), ms since the epoch.
    from: Option<i64>,
    /// To (exclusive), ms since the epoch.
    to: Option<i64>,
    /// Most points (or buckets), the newest; default 1000, at most 10000.
    limit: Option<u32>,
    /// Bucket width ("1m", "30s", or ms): min/max/avg/count per bucket of one key.
    bucket: Option<String>,
}

/// Stored telemetry of a device, oldest first; with `bucket`, aggregated.
#[utoipa::path(get, path = "/devices/{id}/telemetry", params(("id" = String, Path, description = "hub device id"), TelemetryQuery),
    responses((status = 200, body = Object), (status = 400), (status = 403)))]
async fn telemetry(
    State(hub): State<Hub>,
    p: Option<Extension<Principal>>,
    Path(id): Path<String>,
    Query(q): Query<TelemetryQuery>,
) -> HubResult<Json<Value>> {
    admit(&p, &id)?;
    let query = PointQuery {
        devices: vec![id.clone()],
        keys: q.key.iter().cloned().collect(),
        from: q.from,
        to: q.to,
        limit: q.limit.unwrap_or(1000).clamp(1, 10_000),
        newest_first: true,
        ..Default::default()
    };
    let mut body = json!({"device": id, "key": q.key});
    if let Some(bucket) = &q.bucket {
        let width = match bucket.parse::<i64>() {
            Ok(ms) if ms > 0 => ms,
            _ => humantime::parse_duration(bucket)
                .map(|d| d.as_millis() as i64)
                .map_err(|_| Failure::params("bucket is milliseconds or a duration like 1m"))?,
        };
        if q.key.is_none() {
            return Err(Failure::params("an aggregated history needs key=").into());
        }
        let mut buckets = hub.store().buckets(&query, width).await?;
        buckets.reverse();
        body["bucket"] = json!(width);
        body["buckets"] = json!(buckets);
    } else {
        let mut points = hub.store().points(&query).await?;
        points.reverse();
        body["points"] = json!(points
            .iter()
            .map(|p| json!({"id": p.id, "key": p.key, "value": p.value, "ts": p.ts}))
            .collect::<Vec<_>>());
    }
    Ok(Json(body))
}

/// Every hub device with its presence.
#[utoipa::path(get, path = "/hub/devices", responses((status = 200, body = Object)))]
async fn hub_devices(State(hub): State<Hub>, p: Option<Extension<Principal>>) -> HubResult<Json<Value>> {
    let mut list = hub.presence().snapshot(&[]).await?;
    list.retain(|d| may_use(p.as_ref().map(|e| &e.0), &d.device));
    Ok(Json(json!({"devices": list})))
}

#[derive(Deserialize, IntoParams, Default)]
#[serde(default)]
pub struct ConnectionsQuery {
    /// Most entries, newest first; default 100.
    limit: Option<u32>,
}

/// The connection log: who connected (role, credential subject, device), from
/// where, when, and how it ended. Needs a credential without a device list.
#[utoipa::path(get, path = "/hub/connections", params(ConnectionsQuery), responses((status = 200, body = Object), (status = 403)))]
async fn connections(
    State(hub): State<Hub>,
    p: Option<Extension<Principal>>,
    Query(q): Query<ConnectionsQuery>,
) -> HubResult<Json<Value>> {
    if p.as_ref().is_some_and(|e| e.0.devices.is_some()) {
        return Err(Failure::new(
            Code::Forbidden,
            "the connection log covers every device: this credential is limited to some",
        )
        .into());
    }
    let list = hub
        .store()
        .connections(q.limit.unwrap_or(100).clamp(1, 10_000))
        .await?;
    Ok(Json(json!({"connections": list})))
}

#[derive(Deserialize, IntoParams, Default)]
#[serde(default)]
pub struct CommandsQuery {
    /// Most commands, newest first; default 100.
    limit: Option<u32>,
}

/// A device's commands, newest first, with their status.
#[utoipa::path(get, path = "/devices/{id}/commands", params(("id" = String, Path), CommandsQuery), responses((status = 200, body = Object)))]
async fn list_commands(
    State(hub): State<Hub>,
    p: Option<Extension<Principal>>,
    Path(id): Path<String>,
    Query(q): Query<CommandsQuery>,
) -> HubResult<Json<Value>> {
    admit(&p, &id)?;
    let commands = hub
        .store()
        .commands(&id, q.limit.unwrap_or(100).clamp(1, 10_000))
        .await?;
    Ok(Json(json!({"device": id, "commands": commands})))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    name: String,
    #[serde(default)]
    params: Option<Value>,
    /// Seconds from sent to a final result.
    #[serde(default)]
    timeout: Option<f64>,
    #[serde(default)]
    priority: Option<i32>,
    /// Seconds it may wait queued.
    #[serde(default)]
    ttl: Option<f64>,
}

/// Queues a command for a device; its status follows at `/commands/{id}`.
#[utoipa::path(post, path = "/devices/{id}/commands", params(("id" = String, Path)), request_body = CommandBody,
    responses((status = 202, body = Object), (status = 400)))]
async fn send_command(
    State(hub): State<Hub>,
    p: Option<Extension<Principal>>,
    Path(id): Path<String>,
    Json(body): Json<CommandBody>,
) -> HubResult<Response> {
    admit(&p, &id)?;
    if body.name.is_empty() || body.name.len() > 100 {
        return Err(Failure::params("a command name is 1 to 100 characters").into());
    }
    let c = hub.config();
    let secs = |v: Option<f64>, default: f64| -> HubResult<i64> {
        let s = v.unwrap_or(default);
        if s.is_finite() && s > 0.0 {
            Ok((s * 1000.0) as i64)
        } else {
            Err(Failure::params("timeout and ttl are seconds, more than 0").into())
        }
    };
    let now = now_ms();
    let record = CommandRecord {
        id: uuid::Uuid::new_v4().to_string(),
        device: id,
        name: body.name,
        params: body.params.unwrap_or_else(|| json!({})),
        priority: body.priority.unwrap_or(0),
        status: CommandStatus::Queued,
        result: None,
        error: None,
        issued_by: p.map(|e| e.0.subject),
        timeout_ms: secs(body.timeout, c.command_timeout_secs)?,
        created_at: now,
        updated_at: now,
        expires_at: now + secs(body.ttl, c.command_ttl_secs)?,
        deadline: None,
    };
    let command_id = record.id.clone();
    hub.commands().submit(record, None).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"command_id": command_id, "status": "queued"})),
    )
        .into_response())
}

/// One command with every status it went through.
#[utoipa::path(get, path = "/commands/{id}", params(("id" = String, Path)), responses((status = 200, body = Object), (status = 404)))]
async fn command(
    State(hub): State<Hub>,
    p: Option<Extension<Principal>>,
    Path(id): Path<String>,
) -> HubResult<Json<Value>> {
    let not_found = || HubError(Failure::new(Code::UnknownCommand, format!("no command {id}")));
    let c = hub.store().command(&id).await?.ok_or_else(not_found)?;
    if !may_use(p.as_ref().map(|e| &e.0), &c.device) {
        return Err(not_found());
    }
    let events: Vec<Value> = hub
        .store()
        .command_events(&id)
        .await?
        .into_iter()
        .map(|(status, at)| json!({"status": status, "at": at}))
        .collect();
    let mut body = json!(c);
    body["events"] = json!(events);
    Ok(Json(body))
}
