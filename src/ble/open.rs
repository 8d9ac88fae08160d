//! Picks the backend: the one place that knows which radios exist.

use std::sync::Arc;

use super::native::NativeBackend;
use super::sim::{SimBackend, SimConfig};
use super::{Backend, BleError};
use serde::{Deserialize, Serialize};

/// Which radio to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Built-in simulated devices.
    Sim,
    /// The machine's Bluetooth adapter.
    Native,
    /// The adapter when there is one, else the simulator (with a warning).
    Auto,
}

/// Opens the configured backend on `adapter` ("hci0"; empty: the first). `native`
/// fails fast, saying what to do, when there is no usable adapter; `auto` falls back
/// to the simulator, loudly.
pub async fn open_backend(
    kind: BackendKind,
    adapter: &str,
    sim: &SimConfig,
) -> Result<Arc<dyn Backend>, BleError> {
    let adapter = (!adapter.is_empty()).then_some(adapter);
    match kind {
        BackendKind::Sim => Ok(SimBackend::new(sim)?),
        BackendKind::Native => Ok(NativeBackend::open(adapter).await?),
        BackendKind::Auto => match NativeBackend::open(adapter).await {
            Ok(native) => Ok(native),
            Err(e) => {
                tracing::warn!(
                    reason = %e,
                    "no usable Bluetooth adapter: using SIMULATED devices (--backend sim); nothing you see is a real radio"
                );
                Ok(SimBackend::new(sim)?)
            }
        },
    }
}
