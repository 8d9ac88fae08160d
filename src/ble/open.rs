//! Picks the backend: the one place that knows which radios exist.

use std::sync::Arc;

use super::esphome::EsphomeRadio;
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

/// What a configured radio is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RadioKind {
    /// A radio in the simulated world (`[sim]`), at its own distance.
    Sim,
    /// One of the machine's adapters.
    Native,
    /// An ESPHome Bluetooth proxy on the network (`address`, `noise_psk`).
    Esphome,
}

/// One `[[radios]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadioConfig {
    pub name: String,
    pub kind: RadioKind,
    /// A native radio's adapter ("hci0"); empty: the first one found.
    #[serde(default)]
    pub adapter: String,
    /// An ESPHome proxy's `host:port` (its API port is 6053).
    #[serde(default)]
    pub address: String,
    /// An ESPHome proxy's API encryption key (base64), when it has one.
    #[serde(default)]
    pub noise_psk: String,
    /// A simulated radio's distance from the devices: dB added to what it hears.
    #[serde(default)]
    pub rssi_offset_db: i16,
    /// Links it holds at once (BlueZ controllers manage about 7).
    #[serde(default = "default_slots")]
    pub slots: usize,
}

fn default_slots() -> usize {
    7
}

/// Opens each configured radio, in order. Simulated radios share one world built
/// from `sim`, so they hear the same devices, each from its own distance.
pub async fn open_radios(radios: &[RadioConfig], sim: &SimConfig) -> Result<Vec<Arc<dyn Backend>>, BleError> {
    let mut world: Option<Arc<SimBackend>> = None;
    let mut out: Vec<Arc<dyn Backend>> = Vec::with_capacity(radios.len());
    for r in radios {
        match r.kind {
            RadioKind::Sim => {
                let world = match &world {
                    Some(w) => w.clone(),
                    None => world.insert(SimBackend::new(sim)?).clone(),
                };
                out.push(world.radio(&r.name, r.rssi_offset_db));
            }
            RadioKind::Native => {
                let adapter = (!r.adapter.is_empty()).then_some(r.adapter.as_str());
                out.push(NativeBackend::open(adapter).await?);
            }
            RadioKind::Esphome => {
                if r.address.trim().is_empty() {
                    return Err(BleError::AdapterUnavailable(format!(
                        "radio {:?}: an esphome radio needs address = \"host:6053\"",
                        r.name
                    )));
                }
                out.push(EsphomeRadio::open(
                    &r.name,
                    r.address.trim(),
                    Some(r.noise_psk.as_str()),
                )?);
            }
        }
    }
    Ok(out)
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
