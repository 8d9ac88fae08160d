//! RuuviTag data format 5 (RAWv2): manufacturer data of Ruuvi Innovations
//! (0x0499), 24 bytes big-endian: format, temperature (0.005 °C), humidity
//! (0.0025 %), pressure (+50,000 Pa), acceleration x/y/z (mG), battery voltage (11
//! bits, +1,600 mV) and TX power (5 bits), movement counter, sequence, MAC
//! (ruuvi-sensor-protocols, dataformat_05). Readings as `ruuvitag-ble` gives them:
//! its keys, units, and its rounding; a field the tag marks invalid is left out.

use serde_json::json;

use super::{py_round, Reading};

/// Ruuvi Innovations Ltd.
pub const COMPANY: u16 = 0x0499;
/// The data format this decoder reads.
pub const FORMAT: u8 = 5;

/// Readings of a RAWv2 payload (the manufacturer data after the company id);
/// `None` when it is not one.
pub fn decode(data: &[u8]) -> Option<Vec<Reading>> {
    if data.len() < 24 || data[0] != FORMAT {
        return None;
    }
    let i16_at = |i: usize| i16::from_be_bytes([data[i], data[i + 1]]);
    let u16_at = |i: usize| u16::from_be_bytes([data[i], data[i + 1]]);
    let mut out = Vec::new();
    let mut push = |key: &str, value, unit| out.push(Reading::new(key, value, unit));
    let t = i16_at(1);
    if t != i16::MIN {
        push(
            "temperature",
            json!(py_round(f64::from(t) / 200.0, 2)),
            Some("°C"),
        );
    }
    let h = u16_at(3);
    if h != u16::MAX {
        push("humidity", json!(py_round(f64::from(h) / 400.0, 2)), Some("%"));
    }
    let p = u16_at(5);
    if p != u16::MAX {
        push(
            "pressure",
            json!(py_round((f64::from(p) + 50_000.0) / 100.0, 2)),
            Some("hPa"),
        );
    }
    let power = u16_at(13);
    let millivolts = power >> 5;
    if millivolts != 0b111_1111_1111 {
        push("voltage", json!(u32::from(millivolts) + 1600), Some("mV"));
    }
    push("movement_counter", json!(data[15]), None);
    let (x, y, z) = (i16_at(7), i16_at(9), i16_at(11));
    if ![x, y, z].contains(&i16::MIN) {
        // m/s², each rounded first, as ruuvitag-ble does, then their length.
        let mss = |mg: i16| py_round(f64::from(mg) * 0.00980665, 2);
        let (x, y, z) = (mss(x), mss(y), mss(z));
        push("acceleration_x", json!(x), Some("m/s²"));
        push("acceleration_y", json!(y), Some("m/s²"));
        push("acceleration_z", json!(z), Some("m/s²"));
        push(
            "acceleration_total",
            json!(py_round((x * x + y * y + z * z).sqrt(), 2)),
            Some("m/s²"),
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocols_valid_data_example() {
        // dataformat_05.md, "valid data".
        let raw = hex::decode("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F").unwrap();
        let r = decode(&raw).unwrap();
        let get = |k: &str| r.iter().find(|x| x.key == k).unwrap().value.clone();
        assert_eq!(get("temperature"), json!(24.3));
        assert_eq!(get("humidity"), json!(53.49));
        assert_eq!(get("pressure"), json!(1000.44));
        assert_eq!(get("voltage"), json!(2977));
        assert_eq!(get("movement_counter"), json!(66));
        assert_eq!(get("acceleration_x"), json!(0.04));
        assert_eq!(get("acceleration_z"), json!(10.16));
    }

    #[test]
    fn invalid_fields_are_left_out_and_other_formats_are_not_read() {
        let raw = hex::decode("058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF").unwrap();
        let keys: Vec<String> = decode(&raw).unwrap().into_iter().map(|r| r.key).collect();
        assert_eq!(keys, ["movement_counter"]);
        assert!(decode(&[3; 24]).is_none());
        assert!(decode(&[5; 10]).is_none());
    }
}
