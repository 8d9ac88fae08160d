//! Advertisement decoders: what a sensor broadcasts, as named readings. Each format
//! has its own file; every decoder gives the keys and values Home Assistant's own
//! decoder gives for the same bytes (the reference tests check it), so a reading
//! means the same thing in gattway as in Home Assistant.
//!
//! - `bthome.rs`: BTHome v2, plain and encrypted (service data 0xFCD2).
//! - `ruuvi.rs`: RuuviTag RAWv2 (manufacturer data 0x0499, format 5).
//! - `govee.rs`: Govee H5072/H5075 (manufacturer data 0xEC88).
//! - `atc.rs`: Xiaomi thermometers on atc1441/pvvx firmware (service data 0x181A).
//! - `xiaomi.rs`: Xiaomi MiBeacon thermometers, plain and encrypted (0xFE95).
//! - `beacons.rs`: iBeacon and Eddystone, as presence.

pub mod atc;
pub mod beacons;
pub mod bthome;
pub mod govee;
pub mod ruuvi;
pub mod xiaomi;

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ble::{Advertisement, DeviceId};
use crate::sync::lock;

/// `[bthome]` and `[xiaomi]`: keys of devices that encrypt their adverts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceKeys {
    pub keys: Vec<KeyConfig>,
}

/// One `[[bthome.keys]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The device's address (`C0:FF:EE:00:00:07`).
    pub address: String,
    /// Its 16-byte key, in hex (32 digits).
    pub key: String,
}

/// What decoding needs beyond the bytes: devices' keys, and the last counter of
/// each encrypted device, so that an old packet played again is refused.
#[derive(Default)]
pub struct Keys {
    bthome: HashMap<DeviceId, bthome::Key>,
    xiaomi: HashMap<DeviceId, xiaomi::Key>,
    counters: Mutex<HashMap<DeviceId, u32>>,
}

impl Keys {
    /// BTHome keys (`[[bthome.keys]]`) and Xiaomi bindkeys (`[[xiaomi.keys]]`).
    pub fn new(bthome: &DeviceKeys, xiaomi: &DeviceKeys) -> Result<Keys, String> {
        Ok(Keys {
            bthome: key_map(bthome, "bthome")?,
            xiaomi: key_map(xiaomi, "xiaomi")?,
            counters: Mutex::new(HashMap::new()),
        })
    }

    /// Every reading an advertisement carries in a format gattway reads; none when
    /// it carries none, or cannot be read (its raw data stays in the advertisement).
    pub fn decode(&self, adv: &Advertisement) -> Vec<Reading> {
        let mac = adv.id.mac().unwrap_or_default();
        let mut readings = self.bthome(adv, mac);
        let service = |uuid| adv.service_data.get(&uuid).map(Vec::as_slice);
        let company = |id| adv.manufacturer_data.get(&id).map(Vec::as_slice);
        let mibeacon = service(xiaomi::SERVICE).and_then(|data| {
            xiaomi::decode(data, mac, self.xiaomi.get(&adv.id))
                .map_err(|e| tracing::debug!(device = %adv.id, error = %e, "MiBeacon not read"))
                .ok()
        });
        let vendor = [
            mibeacon,
            service(atc::SERVICE).and_then(atc::decode),
            company(ruuvi::COMPANY).and_then(ruuvi::decode),
            company(govee::COMPANY).and_then(govee::decode),
            company(beacons::APPLE).and_then(beacons::ibeacon),
            service(beacons::EDDYSTONE).and_then(beacons::eddystone),
        ];
        readings.extend(vendor.into_iter().flatten().flatten());
        readings
    }

    fn bthome(&self, adv: &Advertisement, mac: [u8; 6]) -> Vec<Reading> {
        let Some(data) = adv.service_data.get(&bthome::SERVICE) else {
            return Vec::new();
        };
        match bthome::decode_from(data, mac, self.bthome.get(&adv.id)) {
            Ok((readings, None)) => readings,
            Ok((readings, Some(counter))) if self.fresh(&adv.id, counter) => readings,
            Ok(_) => {
                tracing::warn!(device = %adv.id, "encrypted BTHome packet with an old counter: refused (replayed?)");
                Vec::new()
            }
            Err(e) => {
                tracing::debug!(device = %adv.id, error = %e, "BTHome service data not read");
                Vec::new()
            }
        }
    }

    /// Whether `counter` may follow the device's last one. A repeat of the last is
    /// fine (devices repeat each packet); a lower one is refused unless it is below
    /// 100, where a device that restarted counts from (as Home Assistant allows).
    fn fresh(&self, device: &DeviceId, counter: u32) -> bool {
        let mut counters = lock(&self.counters);
        let last = counters.get(device).copied();
        if last.is_some_and(|last| counter < last && counter >= 100) {
            return false;
        }
        counters.insert(device.clone(), counter);
        true
    }
}

/// `round(v, digits)` as Python rounds: to the nearest, ties to even, on the exact
/// binary value (Home Assistant's decoders round so; formatting rounds the same).
pub(crate) fn py_round(v: f64, digits: usize) -> f64 {
    format!("{v:.digits$}").parse().unwrap_or(v)
}

/// `[[<table>.keys]]` as device → 16-byte key, each checked.
fn key_map(config: &DeviceKeys, table: &str) -> Result<HashMap<DeviceId, [u8; 16]>, String> {
    let mut keys = HashMap::new();
    for k in &config.keys {
        let key: [u8; 16] = hex::decode(&k.key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                format!(
                    "{table}.keys: the key of {} is 32 hex digits (16 bytes)",
                    k.address
                )
            })?;
        let id = DeviceId::new(&k.address);
        id.mac().ok_or_else(|| {
            format!(
                "{table}.keys: {:?} is not an address like C0:FF:EE:00:00:07",
                k.address
            )
        })?;
        keys.insert(id, key);
    }
    Ok(keys)
}

/// Devices whose last packet [`NewPackets`] remembers; past this the memory starts
/// over (at worst one repeated packet per device counts as new once more).
const REMEMBERED: usize = 4096;

/// Tells a sensor's new packet from the repeats: it sends each packet many times.
#[derive(Default)]
pub struct NewPackets {
    last: HashMap<DeviceId, Vec<u8>>,
}

impl NewPackets {
    /// Whether `adv` carries a packet other than the device's last one (and
    /// remembers it).
    pub fn is_new(&mut self, adv: &Advertisement) -> bool {
        let payload = adv.payload();
        if self.last.get(&adv.id) == Some(&payload) {
            return false;
        }
        if self.last.len() >= REMEMBERED {
            self.last.clear();
        }
        self.last.insert(adv.id.clone(), payload);
        true
    }
}

/// One named reading from an advertisement: `temperature` 25.06 °C.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reading {
    /// Home Assistant's key: the measurement's name, `_1`, `_2`… when a packet has
    /// several of one kind.
    pub key: String,
    /// A number, a boolean (binary sensors), text, or an event's type (`press`).
    pub value: Value,
    /// The unit, when the value has one.
    pub unit: Option<&'static str>,
}

impl Reading {
    pub fn new(key: &str, value: Value, unit: Option<&'static str>) -> Reading {
        Reading {
            key: key.to_string(),
            value,
            unit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_counter_is_refused_unless_the_device_restarted() {
        let keys = Keys::default();
        let d = DeviceId::new("C0:FF:EE:00:00:07");
        assert!(keys.fresh(&d, 200));
        assert!(keys.fresh(&d, 200), "a repeat of the last packet");
        assert!(!keys.fresh(&d, 150), "an old packet played again");
        assert!(keys.fresh(&d, 3), "a device that restarted counts from 0");
        assert!(keys.fresh(&d, 4));
    }

    #[test]
    fn keys_are_checked_when_configured() {
        let key = |address: &str, key: &str| DeviceKeys {
            keys: vec![KeyConfig {
                address: address.into(),
                key: key.into(),
            }],
        };
        let none = DeviceKeys::default();
        let good = key("C0:FF:EE:00:00:07", "231d39c1d7cc1ab1aee224cd096db932");
        assert!(Keys::new(&good, &none).is_ok());
        assert!(Keys::new(&none, &good).is_ok());
        let short = Keys::new(&key("C0:FF:EE:00:00:07", "231d"), &none).err().unwrap();
        assert!(
            short.contains("bthome.keys") && short.contains("32 hex digits"),
            "{short}"
        );
        let bad = Keys::new(&none, &key("kitchen", "231d39c1d7cc1ab1aee224cd096db932"))
            .err()
            .unwrap();
        assert!(
            bad.contains("xiaomi.keys") && bad.contains("not an address"),
            "{bad}"
        );
    }
}
