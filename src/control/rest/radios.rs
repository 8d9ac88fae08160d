//! `GET /api/v1/radios`: each radio's state, for operators and their scripts.

use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::{admit, ApiResult, Problem, RestState};
use crate::auth::{Principal, Scope};
use crate::gateway::{RadioState, RadioStatus};

#[derive(Serialize, ToSchema)]
pub struct RadioJson {
    /// The backend's name (`sim`, `hci0`).
    name: String,
    /// `sim` or `native`.
    kind: String,
    /// `ok`, `restarting` (the watchdog is recovering it), or `down` (then
    /// `detail` says why).
    state: String,
    detail: Option<String>,
    /// Whether it scans now.
    scanning: bool,
    /// Milliseconds since it last heard an advertisement; null when it never has.
    last_advert_age_ms: Option<u64>,
    /// Links open or opening through it.
    slots_used: usize,
    /// Links it can still open.
    slots_free: usize,
}

impl From<RadioStatus> for RadioJson {
    fn from(r: RadioStatus) -> Self {
        RadioJson {
            name: r.name,
            kind: r.kind.to_string(),
            state: match r.state {
                RadioState::Ok => "ok",
                RadioState::Restarting => "restarting",
                RadioState::Down => "down",
            }
            .to_string(),
            detail: r.detail,
            scanning: r.scanning,
            last_advert_age_ms: r.last_advert_age_ms,
            slots_used: r.slots_used,
            slots_free: r.slots_free,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RadiosJson {
    radios: Vec<RadioJson>,
}

/// Every radio: kind, ok or down, scanning, the age of its last advertisement, and
/// its connection slots.
#[utoipa::path(get, path = "/radios", responses((status = 200, body = RadiosJson), (status = 401, body = Problem)))]
pub(super) async fn list_radios(
    State(s): State<RestState>,
    p: Option<Extension<Principal>>,
) -> ApiResult<Json<RadiosJson>> {
    admit(&s, &p, Scope::BleRead, None)?;
    let radios = s
        .gateway
        .radios()
        .await
        .into_iter()
        .map(RadioJson::from)
        .collect();
    Ok(Json(RadiosJson { radios }))
}
