//! The gateway driven against the simulator, one file per concern: scanning, the
//! simulated devices, fan-out, leases, limits, faults and recovery, radios.

#[path = "../common/mod.rs"]
mod common;

mod errors;
mod fan_out;
mod leases;
mod link_limits;
mod multiple_radios;
mod radio_watchdog;
mod reconnect;
mod scanning;
mod simulated_devices;
mod writes;

use common::*;
use gattway::ble::DeviceId;
use gattway::gateway::ConnectOptions;

/// A device id from its address.
fn id(s: &str) -> DeviceId {
    DeviceId::new(s)
}

/// Connects to `target` (an address or name), failing the test if it cannot.
async fn connect(rig: &Rig, target: &str) {
    within("connect", rig.gateway.connect(target, ConnectOptions::default()))
        .await
        .unwrap_or_else(|e| panic!("connect {target}: {e}"));
}
