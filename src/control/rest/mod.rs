//! REST at `/api/v1`: the control operations for scripts and curl, with an
//! OpenAPI 3.1 document (`/api/v1/openapi.json`) generated from these handlers'
//! annotations, so it cannot drift. Errors are `application/problem+json` with the
//! control protocol's `code`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod connections;
mod radios;

use super::protocol::{b64, from_b64, Code, Failure};
use super::Control;
use crate::auth::{AuthError, Principal, Scope};
use crate::ble::{DeviceId, ScanFilter, Uuid, WriteKind};
use crate::gateway::serde_helpers::{opt_whole, to_unix_ms};
use crate::gateway::{ConnectOptions, DeviceInfo, Gateway, SubscriptionEvent};

/// What the REST handlers share.
#[derive(Clone)]
pub struct RestState {
    pub gateway: Gateway,
    pub control: Control,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gattway REST API",
        description = "Bluetooth LE control: scan, connect, read, write, notifications (SSE). Errors are application/problem+json with a `code`."
    ),
    components(schemas(Problem))
)]
struct ApiDoc;

/// The `/api/v1` router and its OpenAPI document.
pub fn router(state: RestState) -> (axum::Router, utoipa::openapi::OpenApi) {
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_devices))
        .routes(routes!(scan))
        .routes(routes!(connect))
        .routes(routes!(disconnect))
        .routes(routes!(services))
        .routes(routes!(read, write))
        .routes(routes!(notifications))
        .routes(routes!(packets))
        .routes(routes!(radios::list_radios))
        .routes(routes!(connections::list_connections))
        .routes(routes!(connections::release))
        .with_state(state)
        .split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_string();
    // Their bodies may be left out (an empty body); a body given must be right.
    for path in ["/scan", "/devices/{id}/connect"] {
        let body = api
            .paths
            .paths
            .get_mut(path)
            .and_then(|i| i.post.as_mut())
            .and_then(|op| op.request_body.as_mut());
        if let Some(utoipa::openapi::RefOr::T(body)) = body {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
    (router, api)
}

/// A JSON body that may be absent (empty), but not wrong: a body that does not
/// parse is a 400, never taken for no body.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| Failure::params(format!("the body: {e}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        // An object, not any JSON serde could map onto the struct (it would take
        // an array as the fields in order).
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|e| Failure::params(format!("the body: {e}")))?;
        if !value.is_object() {
            return Err(Failure::params("the body is a JSON object").into());
        }
        serde_json::from_value(value)
            .map(|v| OptionalJson(Some(v)))
            .map_err(|e| Failure::params(format!("the body: {e}")).into())
    }
}

/// An RFC 9457 problem.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    /// The control protocol's error code (DEVICE_NOT_FOUND, NOT_CONNECTED, ...).
    code: String,
    detail: String,
}

pub struct ApiError(Failure);

impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        ApiError(f)
    }
}

impl From<crate::gateway::GatewayError> for ApiError {
    fn from(e: crate::gateway::GatewayError) -> Self {
        ApiError(e.into())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0.code {
            Code::DeviceNotFound | Code::AttributeNotFound => StatusCode::NOT_FOUND,
            Code::NotConnected | Code::Busy | Code::AlreadyConnected | Code::ScanAlreadyActive => {
                StatusCode::CONFLICT
            }
            Code::InvalidParams | Code::InvalidMessage | Code::InvalidMessageType => StatusCode::BAD_REQUEST,
            Code::NotAuthenticated | Code::InvalidApiKey | Code::InvalidToken | Code::SessionExpired => {
                StatusCode::UNAUTHORIZED
            }
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::RateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            Code::MessageTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::BleNotAvailable | Code::ConnectionLimitReached | Code::NoFreeSlot | Code::QueueFull => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Code::OperationFailed => StatusCode::BAD_GATEWAY,
        };
        let body = Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            code: self.0.code.as_str().into(),
            detail: self.0.message,
        };
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            serde_json::to_string(&body).unwrap_or_default(),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Scope, device list and rate limit for one request (all no-ops without credentials).
fn admit(
    state: &RestState,
    principal: &Option<Extension<Principal>>,
    scope: Scope,
    device: Option<&DeviceId>,
) -> ApiResult<()> {
    let Some(Extension(p)) = principal else {
        return Ok(());
    };
    p.require(scope)?;
    if let Some(id) = device {
        crate::auth::check_device(Some(p), id, state.gateway.name_of(id).as_deref())?;
    }
    if !state.control.take_principal_token(&p.subject) {
        state.gateway.metrics().rate_limited.inc();
        return Err(Failure::new(
            Code::RateLimitExceeded,
            "too many requests for this credential: slow down",
        )
        .into());
    }
    Ok(())
}

/// The devices the request's principal (if any) may see.
fn devices_json(p: &Option<Extension<Principal>>, devices: &[DeviceInfo]) -> Json<DevicesJson> {
    let principal = p.as_ref().map(|Extension(p)| p);
    Json(DevicesJson {
        devices: devices
            .iter()
            .filter(|d| crate::auth::admits(principal, &d.id, d.name.as_deref()))
            .map(DeviceJson::from)
            .collect(),
    })
}

fn uuid(name: &str, s: &str) -> ApiResult<Uuid> {
    s.parse()
        .map_err(|e| Failure::params(format!("{name}: {e}")).into())
}

/// A device as the REST API shows it.
#[derive(Serialize, ToSchema)]
pub struct DeviceJson {
    id: String,
    name: Option<String>,
    rssi: i16,
    tx_power: Option<i16>,
    /// Canonical 128-bit UUIDs.
    services: Vec<String>,
    /// Company id → hex.
    manufacturer_data: std::collections::BTreeMap<String, String>,
    /// Milliseconds since the Unix epoch.
    last_seen_ms: u64,
    /// The radio that hears it best (`rssi` is that radio's).
    radio: Option<String>,
    /// Service data, UUID → hex.
    service_data: std::collections::BTreeMap<String, String>,
    /// What the advertisement says in a format gattway reads (BTHome): `{key, value, unit}`.
    #[schema(value_type = Vec<Object>)]
    readings: Vec<Value>,
}

impl From<&DeviceInfo> for DeviceJson {
    fn from(d: &DeviceInfo) -> Self {
        DeviceJson {
            id: d.id.to_string(),
            name: d.name.clone(),
            rssi: d.rssi,
            tx_power: d.tx_power,
            services: d.services.iter().map(|u| u.to_string()).collect(),
            manufacturer_data: d
                .manufacturer_data
                .iter()
                .map(|(k, v)| (k.to_string(), hex::encode(v)))
                .collect(),
            last_seen_ms: to_unix_ms(d.last_seen),
            radio: d.radio.clone(),
            service_data: d
                .service_data
                .iter()
                .map(|(k, v)| (k.to_string(), hex::encode(v)))
                .collect(),
            readings: d
                .readings
                .iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DevicesJson {
    devices: Vec<DeviceJson>,
}

/// Devices heard so far, strongest first, with their last advertisement.
#[utoipa::path(get, path = "/devices", responses((status = 200, body = DevicesJson), (status = 401, body = Problem)))]
async fn list_devices(
    State(s): State<RestState>,
    p: Option<Extension<Principal>>,
) -> ApiResult<Json<DevicesJson>> {
    admit(&s, &p, Scope::BleRead, None)?;
    Ok(devices_json(&p, &s.gateway.known_devices()))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ScanBody {
    /// Milliseconds (default 5000, at most 60000).
    #[serde(deserialize_with = "opt_whole")]
    #[schema(minimum = 0, maximum = 60000)]
    duration_ms: Option<u64>,
    name_prefix: Option<String>,
    /// Service UUIDs, short or long.
    services: Vec<String>,
    #[serde(deserialize_with = "opt_whole")]
    #[schema(minimum = -32768, maximum = 32767)]
    min_rssi: Option<i16>,
}

/// Scans and returns what was found, strongest first.
#[utoipa::path(post, path = "/scan", request_body = ScanBody, responses((status = 200, body = DevicesJson), (status = 400, body = Problem), (status = 503, body = Problem)))]
async fn scan(
    State(s): State<RestState>,
    p: Option<Extension<Principal>>,
    OptionalJson(body): OptionalJson<ScanBody>,
) -> ApiResult<Json<DevicesJson>> {
    admit(&s, &p, Scope::BleRead, None)?;
    let body = body.unwrap_or_default();
    let duration = body.duration_ms.unwrap_or(5000);
    if duration > 60_000 {
        return Err(Failure::params("duration_ms is at most 60000").into());
    }
    let filter = ScanFilter {
        name_prefix: body.name_prefix,
        services: body
            .services
            .iter()
            .map(|u| uuid("services", u))
            .collect::<ApiResult<_>>()?,
        min_rssi: body.min_rssi,
    };
    let found = s
        .gateway
        .scan(filter, Duration::from_millis(duration))
        .await?
        .collect()
        .await;
    Ok(devices_json(&p, &found))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectBody {
    /// Milliseconds (default: the gateway's connect timeout).
    #[serde(deserialize_with = "opt_whole")]
    #[schema(minimum = 0, maximum = 60000)]
    timeout_ms: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionJson {
    id: String,
    name: Option<String>,
    mtu: u16,
    state: String,
}

/// Connects (returns at once when connected already). A device that does not
/// answer is a 502 (`OPERATION_FAILED`): the request was fine, the radio link was not.
#[utoipa::path(post, path = "/devices/{id}/connect", params(("id" = String, Path, description = "device id or name prefix")), request_body = ConnectBody,
    responses((status = 200, body = ConnectionJson), (status = 404, body = Problem), (status = 502, body = Problem)))]
async fn connect(
    State(s): State<RestState>,
    p: Option<Extension<Principal>>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<ConnectBody>,
) -> ApiResult<Json<ConnectionJson>> {
    let timeout = body.and_then(|b| b.timeout_ms).map(Duration::from_millis);
    if timeout.is_some_and(|t| t > Duration::from_secs(60)) {
        return Err(Failure::params("timeout_ms is at most 60000").into());
    }
    // A name prefix is resolved first, and the device list checked against the
    // device it names: checked raw, "Gattway U" admitted "Gattway UART".
    admit(&s, &p, Scope::BleRead, None)?;
    let resolving = timeout.unwrap_or(s.gateway.config().connect_timeout());
    let id = s.gateway.resolve(&id, &[], resolving).await?;
    if let Some(Extension(p)) = &p {
        crate::auth::check_device(Some(p), &id, s.gateway.name_of(&id).as_deref())?;
    }
    let info = s
        .gateway
        .connect(
            id.as_str(),
            ConnectOptions {
                timeout,
                services: Vec::new(),
            },
        )
        .await?;
    Ok(Json(ConnectionJson {
        id: info.id.to_string(),
        name: info.name,
        mtu: info.mtu,
        state: serde_json::to_value(info.state)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
    }))
}

/// Disconnects.
#[utoipa::path(post, path = "/devices/{id}/disconnect", params(("id" = String, Path)), responses((status = 204), (status = 409, body = Problem)))]
async fn disconnect(
    State(s): State<RestState>,
    p: Option<Extension<Principal>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = DeviceId::new(id);
    admit(&s, &p, Scope::BleRead, Some(&id))?;
    s.gateway.device(&id).disconnect().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The GATT tree.
#[utoipa::path(get, path = "/devices/{id}/services", params(("id" = String, Path)), responses((status = 200, body = Object), (status = 409, body = Problem)))]
async fn services(
    State(s): State<RestState>,
    p: Option<Extension<Principal>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = DeviceId::new(id);
    admit(&s, &p, Scope::BleRead, Some(&id))?;
    let tree = s.gateway.device(&id).services().await?;
    let services: Vec<Value> = tree
        .iter()
        .map(|sv| {
            json!({
                "uuid": sv.uuid.to_string(), "name": sv.uuid.name(), "primary": sv.primary,
                "characteristics": sv.characteristics.iter().map(|c| json!({
                    "uuid": c.uuid.to_string(), "name": c.uuid.name(), "properties": c.props.names(),
                    "descriptors": c.descriptors.iter().map(|d| d.uuid.to_string()).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({"device": id, "services": services})))
}

#[derive(Serialize, ToSchema)]
pub struct ValueJson {
    hex: String,
    base64: String,
}

/// Reads a characteristic.
#[utoipa::path(get, path = "/devices/{id}/characteristics/{service}/{characteristic}", params(("id" = String, Path), ("service" = String, Path), ("characteristic" = String, Path)),
    responses((status = 200, body = ValueJson), (status = 400, body = Problem), (status = 409, body = Problem)))]
async fn read(
    State(s): State<RestState>,
    p: Option<Extension<Principal>>,
    Path((id, service, characteristic)): Path<(String, String, String)>,
) -> ApiResult<Json<ValueJson>> {
    let id = DeviceId::new(id);
    admit(&s, &p, Scope::BleRead, Some(&id))?;
    let v = s
        .gateway
        .device(&id)
        .read(
            uuid("service", &service)?,
            uuid("characteristic", &characteristic)?,
        )
        .await?;
    Ok(Json(ValueJson {
        hex: hex::encode(&v),
        base64: b64(&v),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteBody {
    /// The bytes as hex (spaces allowed); or give `base64`, not both.
    #[schema(pattern = r"^ *(?:[0-9A-Fa-f] *[0-9A-Fa-f] *)*$")]
    hex: Option<String>,
    #[schema(pattern = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")]
    base64: Option<String>,
    /// Default true.
    with_response: Option<bool>,
}

/// Writes a characteristic (needs `ble:write`).
#[utoipa::path(put, path = "/devices/{id}/characteristics/{service}/{characteristic}", params(("id" = String, Path), ("service" = String, Path), ("characteristic" = String, Path)), request_body = WriteBody,
    responses((status = 204), (status = 400, body = Problem), (status = 403, body = Problem)))]
async fn write(
    State(s): State<RestState>,
    p: Option<Extension<Principal>>,
    Path((id, service, characteristic)): Path<(String, String, String)>,
    Json(body): Json<WriteBody>,
) -> ApiResult<StatusCode> {
    let id = DeviceId::new(id);
    admit(&s, &p, Scope::BleWrite, Some(&id))?;
    let bytes = match (body.hex, body.base64) {
        (Some(h), None) => {
            hex::decode(h.replace(' ', "")).map_err(|e| Failure::params(format!("hex: {e}")))?
        }
        (None, Some(b)) => from_b64(&b).map_err(|e| Failure::params(format!("base64: {e}")))?,
        _ => return Err(Failure::params("give exactly one of hex or base64").into()),
    };
    let kind = if body.with_response.unwrap_or(true) {
        WriteKind::WithResponse
    } else {
        WriteKind::WithoutResponse
    };
    s.gateway
        .device(&id)
        .write(
            uuid("service", &service)?,
            uuid("characteristic", &characteristic)?,
            bytes,
            kind,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
pub struct NotifyQuery {
    service: String,
    characteristic: String,
}

/// Notifications as Server-Sent Events (`event: notification`, data
/// `{"hex","base64","timestamp"}`; `event: lagged` when some were dropped).
#[utoipa::path(get, path = "/devices/{id}/notifications", params(("id" = String, Path), NotifyQuery), responses((status = 200, content_type = "text/event-stream"), (status = 409, body = Problem)))]
async fn notifications(
    State(s): State<RestState>,
    p: Option<Extension<Principal>>,
    Path(id): Path<String>,
    Query(q): Query<NotifyQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let id = DeviceId::new(id);
    admit(&s, &p, Scope::BleRead, Some(&id))?;
    let sub = s
        .gateway
        .device(&id)
        .subscribe(
            uuid("service", &q.service)?,
            uuid("characteristic", &q.characteristic)?,
        )
        .await?;
    let stream = futures::stream::unfold(sub, |mut sub| async move {
        let event = match sub.recv().await? {
            SubscriptionEvent::Notification(n) => Event::default().event("notification").data(
                json!({"hex": hex::encode(&n.value), "base64": b64(&n.value), "timestamp": to_unix_ms(n.at)})
                    .to_string(),
            ),
            SubscriptionEvent::Lagged(k) => Event::default()
                .event("lagged")
                .data(json!({"dropped": k}).to_string()),
        };
        Some((Ok(event), sub))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize, IntoParams, Default)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PacketsQuery {
    /// From when: `30s`/`5m` ago (default `5m`), or after a sequence number; an
    /// RFC 3339 time is taken too.
    #[param(pattern = r"^\s*(?:[0-9]{1,19}|[0-9]{1,9}(?:ms|s|m|h|d))\s*$")]
    since: Option<String>,
    /// `TX`, `RX`, or hex the data must contain (spaces and colons ignored).
    #[param(pattern = r"^\s*(?:[Tt][Xx]|[Rr][Xx]|[0-9A-Fa-f: ]*[0-9A-Fa-f][0-9A-Fa-f: ]*)?\s*$")]
    filter: Option<String>,
    /// Most entries (1 to 10000; default 100).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct PacketsJson {
    /// Oldest first: `id`, `timestamp`, `direction`, `hex`, `size`, `device`,
    /// `service`, `characteristic`.
    packets: Vec<Value>,
    /// How many matched, beyond `limit` too.
    count: usize,
    truncated: bool,
}

/// The packet log: every value written and notified, oldest first, for the
/// devices the credential may see.
#[utoipa::path(get, path = "/packets", params(PacketsQuery), responses((status = 200, body = PacketsJson)))]
async fn packets(
    State(s): State<RestState>,
    p: Option<Extension<Principal>>,
    Query(q): Query<PacketsQuery>,
) -> ApiResult<Json<PacketsJson>> {
    use crate::gateway::packet_log::{Filter, Since};
    admit(&s, &p, Scope::BleRead, None)?;
    let since = Since::parse(q.since.as_deref().unwrap_or("5m")).map_err(Failure::params)?;
    let filter = Filter::parse(q.filter.as_deref().unwrap_or("")).map_err(Failure::params)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(Failure::params("limit must be a number from 1 to 10000").into());
    }
    let visible = s.gateway.device_filter(p.as_ref().map(|e| &e.0));
    let (entries, more) = s
        .gateway
        .packet_log()
        .query(&since, &filter, &visible, limit as usize);
    Ok(Json(PacketsJson {
        packets: entries.iter().map(|e| e.to_json()).collect(),
        count: entries.len() + more,
        truncated: more > 0,
    }))
}
