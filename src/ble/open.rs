//! Picks the backend: the one place that knows which radios exist.

use std::sync::Arc;

use super::sim::{SimBackend, SimConfig};
use super::{Backend, BleError};
use crate::config::BackendKind;

/// Opens the configured backend. `auto` falls back to the simulator, loudly, when
/// there is no usable adapter.
pub fn open_backend(kind: BackendKind, sim: &SimConfig) -> Result<Arc<dyn Backend>, BleError> {
    match kind {
        BackendKind::Sim => Ok(SimBackend::new(sim)?),
        BackendKind::Native => Err(BleError::AdapterUnavailable(
            "this build has no native Bluetooth backend yet; run with --backend sim".into(),
        )),
        BackendKind::Auto => {
            tracing::warn!(
                "no Bluetooth adapter backend available: using SIMULATED devices (--backend sim); \
                 nothing you see is a real radio"
            );
            Ok(SimBackend::new(sim)?)
        }
    }
}
