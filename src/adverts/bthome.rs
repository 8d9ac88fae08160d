//! BTHome v2 (bthome.io), service data 0xFCD2: a device-information byte, an
//! optional MAC, then objects, each an id and a value whose size and scale the id
//! fixes ([`OBJECTS`], every id of the public spec). Several objects of one kind are
//! numbered as Home Assistant numbers them; button, dimmer and command objects are
//! events; text and raw objects carry their own length.
//!
//! Encrypted packets (bit 0) are AES-128-CCM with the device's key: the objects,
//! then a 4-byte counter and a 4-byte tag; the nonce is the device's address, the
//! UUID, the information byte and the counter.

use aes::Aes128;
use ccm::aead::{Aead, KeyInit};
use ccm::consts::{U13, U4};
use ccm::Ccm;
use serde_json::{json, Value};

use super::Reading;
use crate::ble::Uuid;

/// BTHome's service data UUID.
pub const SERVICE: Uuid = Uuid::from_u16(0xFCD2);

/// Why a payload is not a readable BTHome v2 packet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty BTHome service data")]
    Empty,
    #[error("BTHome version {0}: only version 2 is read")]
    UnsupportedVersion(u8),
    #[error("encrypted BTHome, and no key for this device: add it to [[bthome.keys]]")]
    NoKey,
    #[error("encrypted BTHome that this device's key does not open (a wrong key, or a forged packet)")]
    Undecryptable,
    #[error("encrypted BTHome packet too short for its counter and tag")]
    TooShort,
    #[error("BTHome object id {id:#04x} at byte {at} is not in the BTHome specification")]
    UnknownObject { id: u8, at: usize },
    #[error("BTHome object {id:#04x} at byte {at} runs past the end of the packet")]
    Truncated { id: u8, at: usize },
}

/// How an object's bytes are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Unsigned,
    Signed,
    /// Seconds since the Unix epoch.
    Timestamp,
    /// UTF-8, length-prefixed.
    Text,
    /// Bytes, length-prefixed; given as hex.
    Raw,
    Button,
    Dimmer,
    /// A command event: opcode, then arguments (length in the low 5 bits of a prefix).
    Command,
    /// Device information (type, firmware): metadata, not a reading.
    Info,
}

/// One object id of the spec.
struct Object {
    id: u8,
    key: &'static str,
    /// Bytes; 0 for length-prefixed formats.
    len: usize,
    format: Format,
    factor: f64,
    unit: Option<&'static str>,
    /// A binary sensor: the value is a boolean.
    binary: bool,
}

const fn num(id: u8, key: &'static str, len: usize, signed: bool, factor: f64, unit: &'static str) -> Object {
    let format = if signed { Format::Signed } else { Format::Unsigned };
    let unit = if unit.is_empty() { None } else { Some(unit) };
    Object {
        id,
        key,
        len,
        format,
        factor,
        unit,
        binary: false,
    }
}

const fn bin(id: u8, key: &'static str) -> Object {
    Object {
        id,
        key,
        len: 1,
        format: Format::Unsigned,
        factor: 1.0,
        unit: None,
        binary: true,
    }
}

const fn other(id: u8, key: &'static str, len: usize, format: Format) -> Object {
    Object {
        id,
        key,
        len,
        format,
        factor: 1.0,
        unit: None,
        binary: false,
    }
}

/// Every object id of BTHome v2, as Home Assistant's `bthome-ble` reads them.
#[rustfmt::skip]
const OBJECTS: &[Object] = &[
    num(0x00, "packet_id", 1, false, 1.0, ""),
    num(0x01, "battery", 1, false, 1.0, "%"),
    num(0x02, "temperature", 2, true, 0.01, "°C"),
    num(0x03, "humidity", 2, false, 0.01, "%"),
    num(0x04, "pressure", 3, false, 0.01, "mbar"),
    num(0x05, "illuminance", 3, false, 0.01, "lx"),
    num(0x06, "mass", 2, false, 0.01, "kg"),
    num(0x07, "mass", 2, false, 0.01, "lb"),
    num(0x08, "dew_point", 2, true, 0.01, "°C"),
    num(0x09, "count", 1, false, 1.0, ""),
    num(0x0a, "energy", 3, false, 0.001, "kWh"),
    num(0x0b, "power", 3, false, 0.01, "W"),
    num(0x0c, "voltage", 2, false, 0.001, "V"),
    num(0x0d, "pm25", 2, false, 1.0, "µg/m³"),
    num(0x0e, "pm10", 2, false, 1.0, "µg/m³"),
    bin(0x0f, "generic"),
    bin(0x10, "power"),
    bin(0x11, "opening"),
    num(0x12, "carbon_dioxide", 2, false, 1.0, "ppm"),
    num(0x13, "volatile_organic_compounds", 2, false, 1.0, "µg/m³"),
    num(0x14, "moisture", 2, false, 0.01, "%"),
    bin(0x15, "battery"),
    bin(0x16, "battery_charging"),
    bin(0x17, "carbon_monoxide"),
    bin(0x18, "cold"),
    bin(0x19, "connectivity"),
    bin(0x1a, "door"),
    bin(0x1b, "garage_door"),
    bin(0x1c, "gas"),
    bin(0x1d, "heat"),
    bin(0x1e, "light"),
    bin(0x1f, "lock"),
    bin(0x20, "moisture"),
    bin(0x21, "motion"),
    bin(0x22, "moving"),
    bin(0x23, "occupancy"),
    bin(0x24, "plug"),
    bin(0x25, "presence"),
    bin(0x26, "problem"),
    bin(0x27, "running"),
    bin(0x28, "safety"),
    bin(0x29, "smoke"),
    bin(0x2a, "sound"),
    bin(0x2b, "tamper"),
    bin(0x2c, "vibration"),
    bin(0x2d, "window"),
    num(0x2e, "humidity", 1, false, 1.0, "%"),
    num(0x2f, "moisture", 1, false, 1.0, "%"),
    other(0x3a, "button", 1, Format::Button),
    other(0x3b, "command", 0, Format::Command),
    other(0x3c, "dimmer", 2, Format::Dimmer),
    num(0x3d, "count", 2, false, 1.0, ""),
    num(0x3e, "count", 4, false, 1.0, ""),
    num(0x3f, "rotation", 2, true, 0.1, "°"),
    num(0x40, "distance", 2, false, 1.0, "mm"),
    num(0x41, "distance", 2, false, 0.1, "m"),
    num(0x42, "duration", 3, false, 0.001, "s"),
    num(0x43, "current", 2, false, 0.001, "A"),
    num(0x44, "speed", 2, false, 0.01, "m/s"),
    num(0x45, "temperature", 2, true, 0.1, "°C"),
    num(0x46, "uv_index", 1, false, 0.1, ""),
    num(0x47, "volume", 2, false, 0.1, "L"),
    num(0x48, "volume", 2, false, 1.0, "mL"),
    num(0x49, "volume_flow_rate", 2, false, 0.001, "m³/h"),
    num(0x4a, "voltage", 2, false, 0.1, "V"),
    num(0x4b, "gas", 3, false, 0.001, "m³"),
    num(0x4c, "gas", 4, false, 0.001, "m³"),
    num(0x4d, "energy", 4, false, 0.001, "kWh"),
    num(0x4e, "volume", 4, false, 0.001, "L"),
    num(0x4f, "water", 4, false, 0.001, "L"),
    other(0x50, "timestamp", 4, Format::Timestamp),
    num(0x51, "acceleration", 2, false, 0.001, "m/s²"),
    num(0x52, "gyroscope", 2, false, 0.001, "°/s"),
    other(0x53, "text", 0, Format::Text),
    other(0x54, "raw", 0, Format::Raw),
    num(0x55, "volume_storage", 4, false, 0.001, "L"),
    num(0x56, "conductivity", 2, false, 1.0, "µS/cm"),
    num(0x57, "temperature", 1, true, 1.0, "°C"),
    num(0x58, "temperature", 1, true, 0.35, "°C"),
    num(0x59, "count", 1, true, 1.0, ""),
    num(0x5a, "count", 2, true, 1.0, ""),
    num(0x5b, "count", 4, true, 1.0, ""),
    num(0x5c, "power", 4, true, 0.01, "W"),
    num(0x5d, "current", 2, true, 0.001, "A"),
    num(0x5e, "direction", 2, false, 0.01, "°"),
    num(0x5f, "precipitation", 2, false, 0.1, "mm"),
    num(0x60, "channel", 1, false, 1.0, ""),
    num(0x61, "rotational_speed", 2, false, 1.0, "rpm"),
    num(0x62, "speed", 4, true, 0.000_001, "m/s"),
    num(0x63, "acceleration", 4, true, 0.000_001, "m/s²"),
    num(0x64, "light_level", 1, false, 1.0, ""),
    num(0x65, "settings_revision", 1, false, 1.0, ""),
    other(0xf0, "device_type_id", 2, Format::Info),
    other(0xf1, "firmware_version", 4, Format::Info),
    other(0xf2, "firmware_version", 3, Format::Info),
];

fn object(id: u8) -> Option<&'static Object> {
    OBJECTS.iter().find(|o| o.id == id)
}

/// A device's BTHome key.
pub type Key = [u8; 16];

/// Decodes one unencrypted BTHome service-data payload into readings, in packet order.
pub fn decode(data: &[u8]) -> Result<Vec<Reading>, DecodeError> {
    decode_from(data, [0; 6], None).map(|(readings, _)| readings)
}

/// Decodes a payload from the device at `address` (its six bytes, most significant
/// first), decrypting it with `key` when it is encrypted; returns the readings and,
/// for an encrypted packet, its counter (for replay checks).
pub fn decode_from(
    data: &[u8],
    address: [u8; 6],
    key: Option<&Key>,
) -> Result<(Vec<Reading>, Option<u32>), DecodeError> {
    let (&info, rest) = data.split_first().ok_or(DecodeError::Empty)?;
    let version = info >> 5;
    if version != 2 {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    // Bit 1: the device's MAC (6 bytes) comes first, and is the nonce's address.
    let (payload, offset, mac) = if info & 0x02 != 0 {
        let mac = rest.get(..6).ok_or(DecodeError::Truncated { id: info, at: 1 })?;
        // Sent least significant byte first.
        let mut sent = [0u8; 6];
        sent.iter_mut().zip(mac.iter().rev()).for_each(|(a, m)| *a = *m);
        (&rest[6..], 7, sent)
    } else {
        (rest, 1, address)
    };
    if info & 0x01 != 0 {
        let key = key.ok_or(DecodeError::NoKey)?;
        let (plain, counter) = decrypt(info, payload, mac, key)?;
        return Ok((readings(&split(&plain, offset)?), Some(counter)));
    }
    Ok((readings(&split(payload, offset)?), None))
}

/// Opens an encrypted payload: objects, counter (4, little-endian), tag (4).
fn decrypt(info: u8, payload: &[u8], mac: [u8; 6], key: &Key) -> Result<(Vec<u8>, u32), DecodeError> {
    let n = payload.len().checked_sub(8).ok_or(DecodeError::TooShort)?;
    let (ciphertext, rest) = payload.split_at(n);
    let (counter, tag) = rest.split_at(4);
    let mut nonce = [0u8; 13];
    nonce[..6].copy_from_slice(&mac);
    nonce[6..9].copy_from_slice(&[0xd2, 0xfc, info]);
    nonce[9..].copy_from_slice(counter);
    let sealed = [ciphertext, tag].concat();
    let cipher = Ccm::<Aes128, U4, U13>::new(key.into());
    let plain = cipher
        .decrypt((&nonce).into(), sealed.as_slice())
        .map_err(|_| DecodeError::Undecryptable)?;
    let counter = u32::from_le_bytes([counter[0], counter[1], counter[2], counter[3]]);
    Ok((plain, counter))
}

/// Readings from a packet's objects.
fn readings(objects: &[(&'static Object, &[u8])]) -> Vec<Reading> {
    // Kinds that appear more than once are numbered, as Home Assistant does; a kind
    // is the name and unit (0x02 and 0x45 are both temperature in °C).
    let kind = |o: &Object| (o.key, o.unit);
    let repeated = |o: &Object| objects.iter().filter(|(p, _)| kind(p) == kind(o)).count() > 1;
    let mut numbered: Vec<((&str, Option<&str>), usize)> = Vec::new();
    let mut readings = Vec::with_capacity(objects.len());
    for (o, bytes) in objects {
        let Some(value) = value(o, bytes) else {
            continue;
        };
        let key = if repeated(o) {
            let n = match numbered.iter_mut().find(|(k, _)| *k == kind(o)) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    numbered.push((kind(o), 1));
                    1
                }
            };
            format!("{}_{n}", o.key)
        } else {
            o.key.to_string()
        };
        readings.push(Reading {
            key,
            value,
            unit: o.unit,
        });
    }
    readings
}

/// The packet's objects and their value bytes.
fn split(payload: &[u8], offset: usize) -> Result<Vec<(&'static Object, &[u8])>, DecodeError> {
    let mut objects = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        let id = payload[at];
        let o = object(id).ok_or(DecodeError::UnknownObject { id, at: offset + at })?;
        let truncated = DecodeError::Truncated { id, at: offset + at };
        let (start, len) = match o.format {
            Format::Text | Format::Raw => (at + 2, *payload.get(at + 1).ok_or(truncated.clone())? as usize),
            // The prefix's low 5 bits count the arguments after the opcode.
            Format::Command => (
                at + 2,
                1 + (*payload.get(at + 1).ok_or(truncated.clone())? & 0x1f) as usize,
            ),
            _ => (at + 1, o.len),
        };
        let bytes = payload.get(start..start + len).ok_or(truncated)?;
        objects.push((o, bytes));
        at = start + len;
    }
    Ok(objects)
}

/// An object's value; `None` for device information and "no event" objects.
fn value(o: &Object, bytes: &[u8]) -> Option<Value> {
    let unsigned = || bytes.iter().rev().fold(0u64, |v, b| v << 8 | u64::from(*b));
    let signed = || {
        let shift = 64 - 8 * bytes.len() as u32;
        ((unsigned() << shift) as i64) >> shift
    };
    Some(match o.format {
        Format::Unsigned if o.binary => json!(unsigned() != 0),
        Format::Unsigned => scaled(unsigned() as f64, o.factor),
        Format::Signed => scaled(signed() as f64, o.factor),
        Format::Timestamp => json!(unsigned()),
        Format::Text => json!(std::str::from_utf8(bytes).ok()?),
        Format::Raw => json!(hex::encode(bytes)),
        Format::Button => json!(button(bytes[0])?),
        Format::Dimmer => json!(match bytes[0] {
            1 => "rotate_left",
            2 => "rotate_right",
            _ => return None,
        }),
        Format::Command => json!(match bytes[0] {
            0 => "off",
            1 => "on",
            2 => "toggle",
            3 => "step_up",
            4 => "step_down",
            _ => return None,
        }),
        Format::Info => return None,
    })
}

fn button(code: u8) -> Option<&'static str> {
    Some(match code {
        0x01 => "press",
        0x02 => "double_press",
        0x03 => "triple_press",
        0x04 => "long_press",
        0x05 => "long_double_press",
        0x06 => "long_triple_press",
        0x80 => "hold_press",
        0x81 => "hold_release",
        _ => return None,
    })
}

/// `raw × factor`, rounded to the factor's decimals (as Home Assistant rounds), and
/// a whole number when the factor is 1.
fn scaled(raw: f64, factor: f64) -> Value {
    if factor == 1.0 {
        return json!(raw as i64);
    }
    // The factor's exponent: 0.01 → 2 decimals, 0.35 → 1, 0.000001 → 6. Rounded
    // through the exact decimal value, as Python's `round` does (0.35 × 1 is
    // 0.34999…, so 0.3).
    let decimals = (-factor.log10().floor()).max(0.0) as usize;
    let rounded = format!("{:.*}", decimals, raw * factor);
    json!(rounded.parse::<f64>().unwrap_or(raw * factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readings(hex: &str) -> Vec<(String, Value)> {
        let data = hex::decode(hex).unwrap();
        decode(&data)
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.value))
            .collect()
    }

    #[test]
    fn the_simulated_thermometer_reads_as_the_readme_says() {
        assert_eq!(
            readings("400001015c02ca0903bf13"),
            [
                ("packet_id".into(), json!(1)),
                ("battery".into(), json!(92)),
                ("temperature".into(), json!(25.06)),
                ("humidity".into(), json!(50.55)),
            ]
        );
    }

    #[test]
    fn repeated_kinds_are_numbered_and_events_named() {
        assert_eq!(
            readings("4002ca0902d209"),
            [
                ("temperature_1".into(), json!(25.06)),
                ("temperature_2".into(), json!(25.14))
            ]
        );
        assert_eq!(readings("403a04"), [("button".into(), json!("long_press"))]);
        assert_eq!(readings("403c0203"), [("dimmer".into(), json!("rotate_right"))]);
        assert_eq!(readings("40530568656c6c6f"), [("text".into(), json!("hello"))]);
        assert_eq!(readings("405402abcd"), [("raw".into(), json!("abcd"))]);
        assert_eq!(
            readings("4021012d00"),
            [("motion".into(), json!(true)), ("window".into(), json!(false))]
        );
    }

    #[test]
    fn encrypted_packets_open_with_the_devices_key_only() {
        // The simulated encrypted thermometer's first packet (README has the key).
        let key: Key = hex::decode("231d39c1d7cc1ab1aee224cd096db932")
            .unwrap()
            .try_into()
            .unwrap();
        let address = [0xC0, 0xFF, 0xEE, 0x00, 0x00, 0x07];
        let data = hex::decode("41b3dc49c4cee2f67201000000f9e7cc44").unwrap();
        let (readings, counter) = decode_from(&data, address, Some(&key)).unwrap();
        let values: Vec<(String, Value)> = readings.into_iter().map(|r| (r.key, r.value)).collect();
        assert_eq!(
            values,
            [
                ("battery".into(), json!(92)),
                ("temperature".into(), json!(25.06)),
                ("humidity".into(), json!(50.55)),
            ]
        );
        assert_eq!(counter, Some(1));
        let mut wrong = key;
        wrong[0] ^= 1;
        assert_eq!(
            decode_from(&data, address, Some(&wrong)),
            Err(DecodeError::Undecryptable)
        );
        assert_eq!(
            decode_from(&data, [0; 6], Some(&key)),
            Err(DecodeError::Undecryptable),
            "another device"
        );
        assert_eq!(decode_from(&data, address, None), Err(DecodeError::NoKey));
        assert_eq!(
            decode_from(&data[..8], address, Some(&key)),
            Err(DecodeError::TooShort)
        );
    }

    #[test]
    fn bad_packets_get_typed_errors() {
        assert_eq!(decode(&[]), Err(DecodeError::Empty));
        assert_eq!(
            decode(&[0x20, 0x01, 0x5c]),
            Err(DecodeError::UnsupportedVersion(1))
        );
        assert_eq!(decode(&[0x41, 0x00]), Err(DecodeError::NoKey));
        assert_eq!(
            decode(&[0x40, 0x02, 0xca]),
            Err(DecodeError::Truncated { id: 0x02, at: 1 })
        );
        assert_eq!(
            decode(&[0x40, 0x99, 0x00]),
            Err(DecodeError::UnknownObject { id: 0x99, at: 1 })
        );
        assert_eq!(
            decode(&[0x40, 0x53, 0x05, 0x41]),
            Err(DecodeError::Truncated { id: 0x53, at: 1 })
        );
    }
}
