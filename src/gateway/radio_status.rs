//! The radios as operators see them: [`RadioStatus`] for `GET /api/v1/radios`, the
//! dashboard and the `gattway_radio_*` metrics, one line per radio.

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::Gateway;

/// Whether a radio can be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RadioState {
    /// Present and powered.
    Ok,
    /// The watchdog is restarting its scan or power-cycling it.
    Restarting,
    /// Absent, unpowered or not answering; `detail` says which.
    Down,
}

/// One radio's state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RadioStatus {
    /// The backend's name (`sim`, `hci0`).
    pub name: String,
    /// `sim`, `native` or `esphome`.
    pub kind: &'static str,
    pub state: RadioState,
    /// Why it is down.
    pub detail: Option<String>,
    /// Whether its scan runs: some caller scans and it started (a radio that
    /// failed to start, or is being recovered, is not scanning).
    pub scanning: bool,
    /// Milliseconds since it last heard an advertisement; `None` when it never has.
    pub last_advert_age_ms: Option<u64>,
    /// Links open or opening through it.
    pub slots_used: usize,
    /// Links it can still open before the least recently used one is closed.
    pub slots_free: usize,
}

impl Gateway {
    /// Every radio's state, in configuration order.
    pub async fn radios(&self) -> Vec<RadioStatus> {
        let inner = &self.inner;
        let mut out = Vec::with_capacity(inner.radios.list.len());
        for (i, r) in inner.radios.list.iter().enumerate() {
            let status = r.backend.adapter_status().await;
            // Stored as the gateway's clock + 1, so that 0 means never.
            let heard = r.last_advert_ms.load(Ordering::Relaxed);
            let used = inner.radios.used(i);
            out.push(RadioStatus {
                name: r.name.clone(),
                kind: r.backend.kind(),
                state: match (status.is_ok(), r.recovering.load(Ordering::Acquire)) {
                    (_, true) => RadioState::Restarting,
                    (true, false) => RadioState::Ok,
                    (false, false) => RadioState::Down,
                },
                // A radio that is down scans nothing, whatever it was told.
                scanning: status.is_ok() && r.scanning.load(Ordering::Relaxed),
                detail: status.err().map(|e| e.to_string()),
                last_advert_age_ms: (heard > 0).then(|| inner.now_ms().saturating_sub(heard - 1)),
                slots_used: used,
                slots_free: r.slots.saturating_sub(used),
            });
        }
        out
    }
}
