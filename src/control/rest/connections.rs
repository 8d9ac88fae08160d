//! `GET /api/v1/connections` (every open link and who holds it exclusively) and
//! `POST /api/v1/devices/{id}/release` (an operator takes a device back from its
//! holder: `ble:admin`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::{admit, ApiResult, Problem, RestState};
use crate::auth::{Principal, Scope};
use crate::ble::DeviceId;
use crate::control::protocol::{Code, Failure};

/// The open links the caller may see: id, name, state, MTU, since when, RSSI, the
/// radio, and `lease_holder` (a bridge session holding it exclusively), if any.
#[utoipa::path(get, path = "/connections", responses((status = 200, body = Object), (status = 401, body = Problem)))]
pub(super) async fn list_connections(
    State(s): State<RestState>,
    p: Option<Extension<Principal>>,
) -> ApiResult<Json<Value>> {
    admit(&s, &p, Scope::BleRead, None)?;
    let principal = p.as_ref().map(|Extension(p)| p);
    let connections: Vec<_> = (s.gateway.connections().into_iter())
        .filter(|c| crate::auth::admits(principal, &c.id, c.name.as_deref()))
        .collect();
    Ok(Json(json!({ "connections": connections })))
}

/// Takes the device back from its holder: its lease is void, and every client may use
/// the device again. 404 when nobody holds it.
#[utoipa::path(post, path = "/devices/{id}/release", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn release(
    State(s): State<RestState>,
    p: Option<Extension<Principal>>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = DeviceId::new(id);
    admit(&s, &p, Scope::BleAdmin, Some(&id))?;
    match s.gateway.release(&id) {
        Some(holder) => Ok((
            StatusCode::OK,
            Json(json!({"device": id, "released_from": holder})),
        )),
        None => Err(Failure::new(Code::DeviceNotFound, format!("nobody holds {id}")).into()),
    }
}
