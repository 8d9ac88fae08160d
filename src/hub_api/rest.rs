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

use super::failure::{Code, Failure};
use crate::auth::Principal;
use crate::hub::{CommandRequest, HistoryAnswer, HistoryRequest, Hub, HubError};

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

/// A refusal as a problem document: the hub's wire code, with the HTTP status
/// that fits it.
struct Refused(Failure);

impl From<Failure> for Refused {
    fn from(f: Failure) -> Self {
        Refused(f)
    }
}

impl From<HubError> for Refused {
    fn from(e: HubError) -> Self {
        Refused(e.into())
    }
}

impl From<crate::store::StoreError> for Refused {
    fn from(e: crate::store::StoreError) -> Self {
        Refused(e.into())
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let status = match self.0.code {
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::NotAuthenticated | Code::SessionExpired => StatusCode::UNAUTHORIZED,
            Code::CommandQueueFull => StatusCode::TOO_MANY_REQUESTS,
            Code::UnknownCommand => StatusCode::NOT_FOUND,
            Code::CommandClosed => StatusCode::CONFLICT,
            Code::StoreError => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        crate::http::problem(status, self.0.code.as_str(), &self.0.message)
    }
}

type HubResult<T> = Result<T, Refused>;

/// A list's `limit`: 100 when absent, else 1 to 10000 (out of range is refused,
/// not quietly clamped).
fn page_limit(limit: Option<u32>) -> HubResult<u32> {
    match limit.unwrap_or(100) {
        n @ 1..=10_000 => Ok(n),
        n => Err(Failure::params(format!("limit is 1 to 10000, not {n}")).into()),
    }
}

fn admit(p: &Option<Extension<Principal>>, device: &str) -> HubResult<()> {
    crate::auth::check_device(p.as_ref().map(|e| &e.0), device, None).map_err(|e| Failure::from(e).into())
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
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    /// Bucket width ("1m", "30s", or ms): min/max/avg/count per bucket, per key.
    #[param(pattern = r"^(?:[1-9][0-9]{0,11}|[1-9][0-9]{0,5}(?:ms|s|m|h|d))$")]
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
) -> HubResult<Json<HistoryAnswer>> {
    admit(&p, &id)?;
    let answer = hub
        .history(HistoryRequest {
            device: id,
            key: q.key,
            from: q.from,
            to: q.to,
            limit: q.limit,
            bucket: q.bucket.map(Value::String),
        })
        .await?;
    Ok(Json(answer))
}

/// Every hub device with its presence.
#[utoipa::path(get, path = "/hub/devices", responses((status = 200, body = Object)))]
async fn hub_devices(State(hub): State<Hub>, p: Option<Extension<Principal>>) -> HubResult<Json<Value>> {
    let mut list = hub.presence().snapshot(&[]).await?;
    list.retain(|d| crate::auth::admits(p.as_ref().map(|e| &e.0), &d.device, None));
    Ok(Json(json!({"devices": list})))
}

#[derive(Deserialize, IntoParams, Default)]
#[serde(default)]
pub struct ConnectionsQuery {
    /// Most entries, newest first; default 100, at most 10000.
    #[param(minimum = 1, maximum = 10000)]
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
    if p.as_ref().is_some_and(|e| !e.0.devices.is_any()) {
        return Err(Failure::new(
            Code::Forbidden,
            "the connection log covers every device: this credential is limited to some",
        )
        .into());
    }
    let list = hub.store().connections(page_limit(q.limit)?).await?;
    Ok(Json(json!({"connections": list})))
}

#[derive(Deserialize, IntoParams, Default)]
#[serde(default)]
pub struct CommandsQuery {
    /// Most commands, newest first; default 100, at most 10000.
    #[param(minimum = 1, maximum = 10000)]
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
    let commands = hub.store().commands(&id, page_limit(q.limit)?).await?;
    Ok(Json(json!({"device": id, "commands": commands})))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    #[serde(default)]
    params: Option<Value>,
    /// Seconds from sent to a final result (at most a day).
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 86400)]
    timeout: Option<f64>,
    /// Higher goes first.
    #[serde(default, deserialize_with = "crate::gateway::serde_helpers::opt_whole")]
    #[schema(minimum = -2147483648_i64, maximum = 2147483647)]
    priority: Option<i32>,
    /// Seconds it may wait queued (at most 30 days).
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 2592000)]
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
    hub.may_command(p.as_ref().map(|e| &e.0), &id)?;
    let record = CommandRequest {
        device: id,
        name: body.name,
        params: body.params,
        timeout: body.timeout,
        priority: body.priority,
        ttl: body.ttl,
    }
    .into_record(hub.config(), p.map(|e| e.0.subject))?;
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
    let not_found = || Refused(Failure::new(Code::UnknownCommand, format!("no command {id}")));
    let c = hub.store().command(&id).await?.ok_or_else(not_found)?;
    if !crate::auth::admits(p.as_ref().map(|e| &e.0), &c.device, None) {
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
