//! Beacons, as presence: Apple's iBeacon (manufacturer data of Apple, 0x004C,
//! `02 15`, a proximity UUID, major, minor and the power at 1 m) and Google's
//! Eddystone (service data 0xFEAA: UID, URL and TLM frames). What they say is who
//! they are; that they are heard is the presence (the device's last seen).

use serde_json::json;

use super::Reading;
use crate::ble::Uuid;

pub const APPLE: u16 = 0x004C;
pub const EDDYSTONE: Uuid = Uuid::from_u16(0xFEAA);

/// An iBeacon's identity; `None` for Apple data that is not one.
pub fn ibeacon(data: &[u8]) -> Option<Vec<Reading>> {
    if data.len() != 23 || data[0] != 0x02 || data[1] != 0x15 {
        return None;
    }
    let uuid = uuid::Uuid::from_slice(&data[2..18]).ok()?;
    Some(vec![
        Reading::new("ibeacon_uuid", json!(uuid.to_string()), None),
        Reading::new(
            "ibeacon_major",
            json!(u16::from_be_bytes([data[18], data[19]])),
            None,
        ),
        Reading::new(
            "ibeacon_minor",
            json!(u16::from_be_bytes([data[20], data[21]])),
            None,
        ),
        Reading::new("ibeacon_power", json!(data[22] as i8), Some("dBm")),
    ])
}

/// URL scheme prefixes and expansions of the Eddystone-URL encoding.
const SCHEMES: [&str; 4] = ["http://www.", "https://www.", "http://", "https://"];
const EXPANSIONS: [&str; 14] = [
    ".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/", ".com", ".org", ".edu", ".net", ".info",
    ".biz", ".gov",
];

/// An Eddystone frame's readings; `None` for a frame type not read here (EID).
pub fn eddystone(data: &[u8]) -> Option<Vec<Reading>> {
    let (&frame, rest) = data.split_first()?;
    match frame {
        // UID: TX power at 0 m, namespace (10 bytes), instance (6).
        0x00 if rest.len() >= 17 => Some(vec![
            Reading::new("eddystone_namespace", json!(hex::encode(&rest[1..11])), None),
            Reading::new("eddystone_instance", json!(hex::encode(&rest[11..17])), None),
            Reading::new("eddystone_power", json!(rest[0] as i8), Some("dBm")),
        ]),
        // URL: TX power, scheme, then the encoded URL.
        0x10 if rest.len() >= 2 => {
            let mut url = SCHEMES.get(usize::from(rest[1]))?.to_string();
            for &b in &rest[2..] {
                match EXPANSIONS.get(usize::from(b)) {
                    Some(e) => url.push_str(e),
                    None if (0x21..0x7f).contains(&b) => url.push(char::from(b)),
                    None => return None,
                }
            }
            Some(vec![
                Reading::new("eddystone_url", json!(url), None),
                Reading::new("eddystone_power", json!(rest[0] as i8), Some("dBm")),
            ])
        }
        // TLM (unencrypted, version 0): battery mV, temperature in 8.8 fixed point
        // (0x8000: not supported).
        0x20 if rest.len() >= 13 && rest[0] == 0 => {
            let mut out = Vec::new();
            let mv = u16::from_be_bytes([rest[1], rest[2]]);
            if mv != 0 {
                out.push(Reading::new("voltage", json!(mv), Some("mV")));
            }
            let t = i16::from_be_bytes([rest[3], rest[4]]);
            if t != i16::MIN {
                out.push(Reading::new(
                    "temperature",
                    json!(f64::from(t) / 256.0),
                    Some("°C"),
                ));
            }
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ibeacon_says_who_it_is() {
        let mut data = vec![0x02, 0x15];
        data.extend(hex::decode("e2c56db5dffb48d2b060d0f5a71096e0").unwrap());
        data.extend([0x00, 0x01, 0x00, 0x02, 0xC5]);
        let r = ibeacon(&data).unwrap();
        assert_eq!(r[0].value, json!("e2c56db5-dffb-48d2-b060-d0f5a71096e0"));
        assert_eq!(
            (r[1].value.clone(), r[2].value.clone(), r[3].value.clone()),
            (json!(1), json!(2), json!(-59))
        );
        assert!(ibeacon(&[0x10, 0x05, 1, 2, 3]).is_none(), "Apple's other adverts");
    }

    #[test]
    fn eddystone_frames() {
        let url = eddystone(&[0x10, 0xEB, 0x03, b'g', b'o', b'o', b'.', b'g', b'l', 0x00]).unwrap();
        assert_eq!(url[0].value, json!("https://goo.gl.com/"));
        let mut uid = vec![0x00, 0xE7];
        uid.extend(1..=16u8);
        let uid = eddystone(&uid).unwrap();
        assert_eq!(uid[0].value, json!("0102030405060708090a"));
        assert_eq!(uid[1].value, json!("0b0c0d0e0f10"));
        let tlm = eddystone(&[0x20, 0x00, 0x0B, 0xB8, 0x15, 0x80, 0, 0, 0, 1, 0, 0, 0, 2]).unwrap();
        assert_eq!(
            (tlm[0].value.clone(), tlm[1].value.clone()),
            (json!(3000), json!(21.5))
        );
        assert!(eddystone(&[0x30, 1, 2]).is_none());
    }
}
