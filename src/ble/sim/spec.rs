//! What a simulated device is: its advertisement, GATT database and behaviour, as
//! plain data that the built-in devices (`catalog.rs`) are built from and that a
//! TOML file can add to.
//!
//! ```toml
//! [[sim.devices]]
//! name = "Greenhouse Probe"
//! address = "AA:BB:CC:00:00:01"
//! rssi = -62
//! mtu = 185
//!
//! [[sim.devices.services]]
//! uuid = "181a"
//!
//! [[sim.devices.services.characteristics]]
//! uuid = "2a6e"
//! properties = ["read", "notify"]
//! generator = { kind = "temperature", period_ms = 2000 }
//!
//! [[sim.devices.services.characteristics]]
//! uuid = "12345678-1234-5678-1234-56789abcdef0"
//! properties = ["read", "write"]
//! value = "00ff"       # hex
//! max_len = 20
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ble::{CharProps, Uuid};

/// One simulated peripheral.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Advertised local name.
    pub name: String,
    /// Stable address; becomes the `DeviceId`.
    pub address: String,
    /// Mean RSSI in dBm; the advertised value drifts around it.
    #[serde(default = "default_rssi")]
    pub rssi: i16,
    #[serde(default)]
    pub tx_power: Option<i16>,
    /// Largest ATT MTU the device accepts (23 to 247); the link uses the smaller of
    /// this and what the central asks for.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Time to establish a link, before time scaling.
    #[serde(default = "default_connect_latency_ms")]
    pub connect_latency_ms: u64,
    /// Time for one GATT request to be answered, before time scaling.
    #[serde(default = "default_op_latency_ms")]
    pub op_latency_ms: u64,
    /// Services listed in the advertisement (often a subset of the GATT database).
    #[serde(default)]
    pub advertised_services: Vec<Uuid>,
    /// Company id → hex data.
    #[serde(default)]
    pub manufacturer_data: Vec<ManufacturerData>,
    /// Service UUID → hex data (BTHome, for one, broadcasts in service data 0xFCD2).
    #[serde(default)]
    pub service_data: Vec<ServiceData>,
    /// Payloads the advertisement cycles through, one every `advert_period_ms`
    /// (each replaces the service and manufacturer data above); empty: always those.
    #[serde(default)]
    pub adverts: Vec<AdvertPayload>,
    /// How long each of `adverts` is broadcast, before time scaling.
    #[serde(default = "default_advert_period_ms")]
    pub advert_period_ms: u64,
    /// In range for `in_ms`, then out of range for `out_ms`, repeating.
    #[serde(default)]
    pub range_cycle: Option<RangeCycle>,
    /// The GATT database; none for a sensor that only broadcasts.
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ManufacturerData {
    pub company_id: u16,
    /// Hex bytes.
    pub data: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceData {
    pub uuid: Uuid,
    /// Hex bytes.
    pub data: String,
}

/// One advertisement's data, as broadcast in turn.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdvertPayload {
    #[serde(default)]
    pub service_data: Vec<ServiceData>,
    #[serde(default)]
    pub manufacturer_data: Vec<ManufacturerData>,
}

impl AdvertPayload {
    /// The payload's bytes, decoded (checked by [`DeviceSpec::validate`]).
    pub fn decode(&self) -> (BTreeMap<u16, Vec<u8>>, BTreeMap<Uuid, Vec<u8>>) {
        let manufacturer = (self.manufacturer_data.iter())
            .filter_map(|m| Some((m.company_id, hex::decode(&m.data).ok()?)))
            .collect();
        let service = (self.service_data.iter())
            .filter_map(|s| Some((s.uuid, hex::decode(&s.data).ok()?)))
            .collect();
        (manufacturer, service)
    }

    fn validate(&self, device: &str) -> Result<(), String> {
        for m in &self.manufacturer_data {
            hex::decode(&m.data).map_err(|e| format!("{device}: manufacturer data: {e}"))?;
        }
        for s in &self.service_data {
            hex::decode(&s.data).map_err(|e| format!("{device}: service data {}: {e}", s.uuid))?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RangeCycle {
    pub in_ms: u64,
    pub out_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub uuid: Uuid,
    #[serde(default)]
    pub characteristics: Vec<CharSpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CharSpec {
    pub uuid: Uuid,
    /// `read`, `write`, `write_without_response`, `notify`, `indicate`.
    pub properties: Vec<String>,
    /// Initial value, hex.
    #[serde(default)]
    pub value: Option<String>,
    /// Initial value, UTF-8 text (for the string characteristics).
    #[serde(default)]
    pub text: Option<String>,
    /// Longest value accepted by a write.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// A value the device produces on its own, on a period.
    #[serde(default)]
    pub generator: Option<GeneratorSpec>,
    /// What a write does besides storing the value.
    #[serde(default)]
    pub on_write: WriteAction,
    /// Extra descriptors (the CCCD is added for notify/indicate characteristics).
    #[serde(default)]
    pub descriptors: Vec<DescriptorSpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DescriptorSpec {
    pub uuid: Uuid,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSpec {
    pub kind: GeneratorKind,
    /// Period before time scaling.
    pub period_ms: u64,
}

/// Values a device produces by itself.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GeneratorKind {
    /// Heart Rate Measurement (0x2A37): flags + u8 bpm wandering 60..180, with an
    /// RR-interval now and then.
    HeartRate,
    /// Battery Level (0x2A19): a percentage that drains slowly and wraps at 5 %.
    BatteryLevel,
    /// Temperature (0x2A6E): sint16 in 0.01 °C drifting around 21 °C.
    Temperature,
    /// Humidity (0x2A6F): uint16 in 0.01 % drifting around 45 %.
    Humidity,
    /// Re-sends the stored value (a chatty custom sensor).
    Repeat,
    /// CS108 inventory: tag reports while an inventory runs.
    Cs108Inventory,
}

/// What a write does besides storing the value.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum WriteAction {
    /// Only store it.
    #[default]
    Store,
    /// Notify the written bytes on another characteristic of the same service (Nordic UART echo).
    Echo { to: Uuid },
    /// Parse CS108 command frames and answer on `to`.
    Cs108 { to: Uuid },
}

impl CharSpec {
    /// The properties as flags; unknown names are a configuration error.
    pub fn props(&self) -> Result<CharProps, String> {
        self.properties.iter().try_fold(CharProps::empty(), |acc, n| {
            CharProps::from_name(n)
                .map(|p| acc | p)
                .ok_or_else(|| format!("unknown characteristic property {n:?} on {}", self.uuid))
        })
    }

    /// The initial value from `value` (hex) or `text`.
    pub fn initial_value(&self) -> Result<Vec<u8>, String> {
        initial_value(self.value.as_deref(), self.text.as_deref(), self.uuid)
    }
}

impl DescriptorSpec {
    pub fn initial_value(&self) -> Result<Vec<u8>, String> {
        initial_value(self.value.as_deref(), self.text.as_deref(), self.uuid)
    }
}

fn initial_value(hex_value: Option<&str>, text: Option<&str>, uuid: Uuid) -> Result<Vec<u8>, String> {
    match (hex_value, text) {
        (Some(_), Some(_)) => Err(format!("{uuid}: give either value (hex) or text, not both")),
        (Some(h), None) => {
            hex::decode(h.replace([' ', ':'], "")).map_err(|e| format!("{uuid}: value {h:?} is not hex: {e}"))
        }
        (None, Some(t)) => Ok(t.as_bytes().to_vec()),
        (None, None) => Ok(Vec::new()),
    }
}

impl DeviceSpec {
    /// Checks what serde cannot: property names, hex, MTU range, references between
    /// characteristics.
    /// The advertisement data when `adverts` is empty.
    pub fn fixed_payload(&self) -> AdvertPayload {
        AdvertPayload {
            service_data: self.service_data.clone(),
            manufacturer_data: self.manufacturer_data.clone(),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(23..=517).contains(&self.mtu) {
            return Err(format!("{}: mtu {} is outside 23..=517", self.name, self.mtu));
        }
        self.fixed_payload().validate(&self.name)?;
        for a in &self.adverts {
            a.validate(&self.name)?;
        }
        if self.advert_period_ms == 0 {
            return Err(format!("{}: advert_period_ms must be > 0", self.name));
        }
        for s in &self.services {
            for c in &s.characteristics {
                c.props()?;
                c.initial_value()?;
                for d in &c.descriptors {
                    d.initial_value()?;
                }
                if let WriteAction::Echo { to } | WriteAction::Cs108 { to } = &c.on_write {
                    if !s.characteristics.iter().any(|o| o.uuid == *to) {
                        return Err(format!(
                            "{}: characteristic {} writes to {to}, which is not in service {}",
                            self.name, c.uuid, s.uuid
                        ));
                    }
                }
                if c.generator.as_ref().is_some_and(|g| g.period_ms == 0) {
                    return Err(format!("{}: generator period_ms must be > 0", self.name));
                }
            }
        }
        Ok(())
    }
}

fn default_advert_period_ms() -> u64 {
    1_000
}

fn default_rssi() -> i16 {
    -65
}
fn default_mtu() -> u16 {
    247
}
fn default_connect_latency_ms() -> u64 {
    60
}
fn default_op_latency_ms() -> u64 {
    8
}
fn default_max_len() -> usize {
    512
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broadcast_only_device_needs_no_services_key() {
        let spec: DeviceSpec = toml::from_str(
            r#"
            name = "Porch BTHome"
            address = "AA:BB:CC:00:00:02"
            service_data = [{ uuid = "fcd2", data = "400001015c02ca0903bf13" }]
            "#,
        )
        .unwrap();
        assert!(spec.services.is_empty());
        assert_eq!(spec.service_data.len(), 1);
    }
}
