//! Xiaomi MiBeacon (service data 0xFE95), versions 2 to 5, for the thermometers
//! (LYWSD03MMC, LYWSDCGQ, LYWSD02, CGG1, MHO-C401 …): a frame control word, the
//! product id, a frame counter, the MAC (reversed) when flagged, a capability when
//! flagged, then objects (`type: u16, length: u8, data`), encrypted from version 4
//! with AES-128-CCM under the device's bindkey. Readings as `xiaomi-ble` gives
//! them: temperature (0x1004), humidity (0x1006, whole percents on the LYWSD03MMC
//! and MHO-C401 as it rounds them), battery with its voltage (0x100A), both
//! (0x100D). Other products and objects are left raw; version 2–3 encryption and
//! mesh frames are not read.

use aes::Aes128;
use ccm::aead::{Aead, KeyInit, Payload};
use ccm::consts::{U12, U4};
use ccm::Ccm;
use serde_json::json;

use super::Reading;
use crate::ble::Uuid;

pub const SERVICE: Uuid = Uuid::from_u16(0xFE95);

/// A device's 16-byte bindkey.
pub type Key = [u8; 16];

/// The thermometers' product ids, and their models (xiaomi-ble's names).
const THERMOMETERS: &[(u16, &str)] = &[
    (0x01AA, "LYWSDCGQ"),
    (0x0347, "CGG1"),
    (0x0387, "MHO-C401"),
    (0x045B, "LYWSD02"),
    (0x055B, "LYWSD03MMC"),
    (0x066F, "CGDK2"),
    (0x0B48, "CGG1-ENCRYPTED"),
    (0x1203, "XMWSDJ04MMC"),
    (0x16E4, "LYWSD02MMC"),
    (0x2542, "LYWSD02MMC"),
    (0x2832, "MJWSD05MMC"),
    (0x4C47, "MJWSD05MMC"),
    (0x4F59, "CGDK3"),
];

/// Readings of a MiBeacon from the device at `mac` (most significant byte first).
pub fn decode(data: &[u8], mac: [u8; 6], key: Option<&Key>) -> Result<Vec<Reading>, String> {
    if data.len() < 5 {
        return Err("shorter than a MiBeacon header".into());
    }
    let control = u16::from_le_bytes([data[0], data[1]]);
    let flag = |bit: u16| control >> bit & 1 == 1;
    let version = control >> 12;
    if flag(7) {
        return Err("a mesh frame".into());
    }
    if version < 2 {
        return Err(format!("MiBeacon version {version}"));
    }
    let mut at = 5;
    if flag(4) {
        at += 6;
        let framed: Vec<u8> = data
            .get(5..11)
            .ok_or("truncated MAC")?
            .iter()
            .rev()
            .copied()
            .collect();
        if framed != mac {
            return Err("the frame's MAC is not the sender's".into());
        }
    }
    let product = u16::from_le_bytes([data[2], data[3]]);
    let model = THERMOMETERS
        .iter()
        .find(|(id, _)| *id == product)
        .map(|(_, m)| *m)
        .ok_or_else(|| format!("product {product:#06x} is not a thermometer read here"))?;
    if flag(5) {
        at += 1;
        let capability = *data.get(at - 1).ok_or("truncated capability")?;
        if capability & 0x20 != 0 {
            at += 1;
        }
    }
    if !flag(6) {
        return Ok(Vec::new());
    }
    let payload = if flag(3) {
        if version <= 3 {
            return Err("MiBeacon v2/v3 encryption is not read".into());
        }
        let key = key.ok_or("encrypted, and no bindkey configured")?;
        if data.len() < at + 9 {
            return Err("encrypted frame too short".into());
        }
        let end = data.len();
        let mut nonce = [0u8; 12];
        nonce[..6].copy_from_slice(&{
            let mut m = mac;
            m.reverse();
            m
        });
        nonce[6..9].copy_from_slice(&data[2..5]);
        nonce[9..].copy_from_slice(&data[end - 7..end - 4]);
        let mut sealed = data[at..end - 7].to_vec();
        sealed.extend_from_slice(&data[end - 4..]);
        Ccm::<Aes128, U4, U12>::new(key.into())
            .decrypt(
                (&nonce).into(),
                Payload {
                    msg: &sealed,
                    aad: &[0x11],
                },
            )
            .map_err(|_| "decryption failed: wrong bindkey?".to_string())?
    } else {
        if data.len() < at + 3 {
            return Err("no object in the frame".into());
        }
        data[at..].to_vec()
    };
    Ok(objects(&payload, model))
}

fn objects(payload: &[u8], model: &str) -> Vec<Reading> {
    let mut out: Vec<Reading> = Vec::new();
    // A later object of a kind replaces an earlier one, as in Home Assistant.
    let mut set = |key: &str, value: serde_json::Value, unit| {
        out.retain(|r| r.key != key);
        out.push(Reading::new(key, value, unit));
    };
    let mut start = 0;
    while payload.len() >= start + 3 {
        let kind = u16::from_le_bytes([payload[start], payload[start + 1]]);
        let next = start + 3 + usize::from(payload[start + 2]);
        let Some(object) = payload.get(start + 3..next) else {
            break;
        };
        let i16_at = |i: usize| i16::from_le_bytes([object[i], object[i + 1]]);
        let u16_at = |i: usize| u16::from_le_bytes([object[i], object[i + 1]]);
        match (kind, object.len()) {
            (0x1004, 2) => set("temperature", json!(f64::from(i16_at(0)) / 10.0), Some("°C")),
            (0x1006, 2) => {
                let h = u16_at(0);
                if matches!(model, "LYWSD03MMC" | "MHO-C401") {
                    set("humidity", json!(h / 10), Some("%"));
                } else {
                    set("humidity", json!(f64::from(h) / 10.0), Some("%"));
                }
            }
            (0x100A, n) if n >= 1 => {
                let b = object[0];
                let volts = if matches!(model, "LYWSDCGQ" | "CGDK3") {
                    0.8 + (1.6 - 0.8) * (f64::from(b) / 100.0)
                } else {
                    2.2 + (3.1 - 2.2) * (f64::from(b) / 100.0)
                };
                set("battery", json!(b), Some("%"));
                set("voltage", json!(volts), Some("V"));
            }
            (0x100D, 4) => {
                set("temperature", json!(f64::from(i16_at(0)) / 10.0), Some("°C"));
                set("humidity", json!(f64::from(u16_at(2)) / 10.0), Some("%"));
            }
            _ => {}
        }
        start = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0xA4, 0xC1, 0x38, 0x56, 0x53, 0x84];

    #[test]
    fn a_plain_frame_with_its_mac_and_temperature_and_humidity() {
        // v5, object and MAC included; LYWSD03MMC; 0x100D: 23.4 °C, 55.3 %.
        let data = hex::decode("5050 5b05 0a 845356 38c1a4 0d10 04 ea00 2902".replace(' ', "")).unwrap();
        let r = decode(&data, MAC, None).unwrap();
        assert_eq!(r[0].value, json!(23.4));
        assert_eq!(r[1].value, json!(55.3));
        let wrong_mac = decode(&data, [0; 6], None);
        assert!(wrong_mac.is_err());
    }

    #[test]
    fn humidity_is_whole_on_the_lywsd03mmc_and_battery_gives_volts() {
        let data =
            hex::decode("5050 5b05 0b 845356 38c1a4 0610 02 2b02 0a10 01 50".replace(' ', "")).unwrap();
        let r = decode(&data, MAC, None).unwrap();
        let get = |k: &str| r.iter().find(|x| x.key == k).unwrap().value.clone();
        assert_eq!(get("humidity"), json!(55));
        assert_eq!(get("battery"), json!(80));
        // xiaomi-ble's own arithmetic, float for float (2.92).
        assert_eq!(get("voltage"), json!(2.2 + (3.1 - 2.2) * 0.8));
    }
}
