//! What the hub takes in from the radios rather than from a network device: a
//! BLE device's notifications as its telemetry and hub commands to it as BLE
//! writes (`ble.rs`), and what sensors broadcast in their advertisements
//! (`adverts.rs`).

pub(super) mod adverts;
pub(super) mod ble;

pub use self::ble::{BleCommand, BleTelemetry};
