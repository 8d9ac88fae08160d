//! Decoding of standard characteristic values into numbers with units, as the
//! Bluetooth SIG's GATT Specification Supplement defines them. Front ends show these
//! beside the raw hex; the hub turns them into telemetry.

use serde::Serialize;
use serde_json::{json, Value};

use super::Uuid;

/// A decoded value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decoded {
    /// The characteristic's standard name.
    pub name: &'static str,
    /// The value as JSON: a number, a string, or an object for compound values.
    pub value: Value,
    pub unit: Option<&'static str>,
    /// One line a person reads: "72 bpm (sensor contact), RR 833 ms".
    pub text: String,
}

/// Decodes `value` of characteristic `uuid`, when gattway knows its format and the
/// bytes fit it.
pub fn decode(uuid: Uuid, value: &[u8]) -> Option<Decoded> {
    let name = uuid.name()?;
    match uuid.as_u16()? {
        0x2A37 => heart_rate_measurement(value),
        0x2A19 => {
            let [level] = value else { return None };
            Some(Decoded {
                name,
                value: json!(level),
                unit: Some("%"),
                text: format!("{level} %"),
            })
        }
        0x2A6E => {
            let [a, b] = value else { return None };
            let raw = i16::from_le_bytes([*a, *b]);
            // 0x8000: "value is not known".
            let c = (raw != i16::MIN).then(|| raw as f64 / 100.0);
            Some(Decoded {
                name,
                value: json!(c),
                unit: Some("°C"),
                text: c.map_or("unknown".into(), |c| format!("{c:.2} °C")),
            })
        }
        0x2A6F => {
            let [a, b] = value else { return None };
            let raw = u16::from_le_bytes([*a, *b]);
            let h = (raw != 0xFFFF).then(|| raw as f64 / 100.0);
            Some(Decoded {
                name,
                value: json!(h),
                unit: Some("%"),
                text: h.map_or("unknown".into(), |h| format!("{h:.2} %")),
            })
        }
        0x2A38 => {
            let [loc] = value else { return None };
            let place = match loc {
                0 => "other",
                1 => "chest",
                2 => "wrist",
                3 => "finger",
                4 => "hand",
                5 => "ear lobe",
                6 => "foot",
                _ => "reserved",
            };
            Some(Decoded {
                name,
                value: json!(place),
                unit: None,
                text: place.to_string(),
            })
        }
        0x2A00 | 0x2A24..=0x2A29 => {
            let s = std::str::from_utf8(value)
                .ok()?
                .trim_end_matches('\0')
                .to_string();
            Some(Decoded {
                name,
                value: json!(s),
                unit: None,
                text: s,
            })
        }
        _ => None,
    }
}

/// Heart Rate Measurement (0x2A37): flags, bpm (u8 or u16), optional energy
/// expended (u16 kJ), optional RR intervals (u16, 1/1024 s).
fn heart_rate_measurement(v: &[u8]) -> Option<Decoded> {
    let (&flags, mut rest) = v.split_first()?;
    let take_u16 = |rest: &mut &[u8]| -> Option<u16> {
        let (b, tail) = rest.split_first_chunk::<2>()?;
        *rest = tail;
        Some(u16::from_le_bytes(*b))
    };
    let bpm = if flags & 0x01 != 0 {
        take_u16(&mut rest)?
    } else {
        let (&b, tail) = rest.split_first()?;
        rest = tail;
        b as u16
    };
    let contact = match flags & 0x06 {
        0x06 => Some(true),
        0x04 => Some(false),
        _ => None,
    };
    let energy = if flags & 0x08 != 0 {
        Some(take_u16(&mut rest)?)
    } else {
        None
    };
    let mut rr_ms = Vec::new();
    if flags & 0x10 != 0 {
        while rest.len() >= 2 {
            let rr = take_u16(&mut rest)?;
            rr_ms.push((rr as f64 * 1000.0 / 1024.0).round());
        }
    }
    let mut text = format!("{bpm} bpm");
    if contact == Some(true) {
        text.push_str(" (sensor contact)");
    }
    if !rr_ms.is_empty() {
        let list: Vec<String> = rr_ms.iter().map(|r| format!("{r} ms")).collect();
        text.push_str(&format!(", RR {}", list.join(" ")));
    }
    Some(Decoded {
        name: "Heart Rate Measurement",
        value: json!({
            "bpm": bpm,
            "sensor_contact": contact,
            "energy_expended_kj": energy,
            "rr_intervals_ms": rr_ms,
        }),
        unit: Some("bpm"),
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ble::well_known as wk;

    #[test]
    fn decodes_the_simulated_profiles() {
        let hr = decode(wk::HEART_RATE_MEASUREMENT, &[0x16, 72, 0x00, 0x04]).unwrap();
        assert_eq!(hr.value["bpm"], 72);
        assert_eq!(hr.value["sensor_contact"], true);
        assert_eq!(hr.value["rr_intervals_ms"][0], 1000.0);
        assert_eq!(hr.text, "72 bpm (sensor contact), RR 1000 ms");
        let wide = decode(wk::HEART_RATE_MEASUREMENT, &[0x01, 0x2C, 0x01]).unwrap();
        assert_eq!(wide.value["bpm"], 300);
        assert_eq!(decode(wk::BATTERY_LEVEL, &[87]).unwrap().text, "87 %");
        let t = decode(wk::TEMPERATURE, &2150i16.to_le_bytes()).unwrap();
        assert_eq!((t.value.as_f64(), t.unit), (Some(21.5), Some("°C")));
        let h = decode(wk::HUMIDITY, &4512u16.to_le_bytes()).unwrap();
        assert_eq!(h.text, "45.12 %");
        assert_eq!(decode(wk::BODY_SENSOR_LOCATION, &[1]).unwrap().value, "chest");
        assert_eq!(decode(wk::MANUFACTURER_NAME, b"acme").unwrap().value, "acme");
    }

    #[test]
    fn malformed_or_unknown_values_are_not_decoded() {
        assert!(decode(wk::HEART_RATE_MEASUREMENT, &[]).is_none());
        assert!(decode(wk::HEART_RATE_MEASUREMENT, &[0x01, 0x2C]).is_none());
        assert!(decode(wk::BATTERY_LEVEL, &[1, 2]).is_none());
        assert!(decode(wk::TEMPERATURE, &[1]).is_none());
        assert!(decode(wk::NUS_TX, b"hi").is_none());
        assert!(decode(wk::CS108_NOTIFY, &[0xA7]).is_none());
    }
}
