//! Xiaomi thermometers on custom firmware (atc1441's, and pvvx's), in their own
//! formats: service data 0x181A (Environmental Sensing). pvvx's "custom" format is
//! 15 bytes little-endian: MAC (reversed), temperature (0.01 °C), humidity (0.01 %),
//! battery mV, battery %, counter, flags. atc1441's is 13 bytes big-endian: MAC,
//! temperature (0.1 °C), humidity %, battery %, battery mV, counter. Both from the
//! firmwares' READMEs (github.com/pvvx/ATC_MiThermometer). Home Assistant reads
//! these through the BTHome format these firmwares also offer; no HA decoder
//! reads the custom ones, so their tests are the formats' own examples.

use serde_json::json;

use super::Reading;
use crate::ble::Uuid;

pub const SERVICE: Uuid = Uuid::from_u16(0x181A);

/// Readings of either format; `None` for other data under 0x181A.
pub fn decode(data: &[u8]) -> Option<Vec<Reading>> {
    match data.len() {
        15 => {
            let t = i16::from_le_bytes([data[6], data[7]]);
            let h = u16::from_le_bytes([data[8], data[9]]);
            let mv = u16::from_le_bytes([data[10], data[11]]);
            Some(vec![
                Reading::new("temperature", json!(f64::from(t) / 100.0), Some("°C")),
                Reading::new("humidity", json!(f64::from(h) / 100.0), Some("%")),
                Reading::new("voltage", json!(mv), Some("mV")),
                Reading::new("battery", json!(data[12]), Some("%")),
            ])
        }
        13 => {
            let t = i16::from_be_bytes([data[6], data[7]]);
            let mv = u16::from_be_bytes([data[10], data[11]]);
            Some(vec![
                Reading::new("temperature", json!(f64::from(t) / 10.0), Some("°C")),
                Reading::new("humidity", json!(data[8]), Some("%")),
                Reading::new("battery", json!(data[9]), Some("%")),
                Reading::new("voltage", json!(mv), Some("mV")),
            ])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(r: &[Reading]) -> Vec<serde_json::Value> {
        r.iter().map(|r| r.value.clone()).collect()
    }

    #[test]
    fn pvvx_custom_and_atc1441() {
        // pvvx: A4:C1:38:12:34:56, 23.45 °C, 51.20 %, 2,950 mV, 87 %, counter 9.
        let pvvx = hex::decode("563412 38c1a4 2909 0014 860b 57 09 04".replace(' ', "")).unwrap();
        assert_eq!(
            values(&decode(&pvvx).unwrap()),
            [json!(23.45), json!(51.2), json!(2950), json!(87)]
        );
        // atc1441: 21.7 °C, 48 %, 90 %, 2,980 mV.
        let atc = hex::decode("a4c138123456 00d9 30 5a 0ba4 11".replace(' ', "")).unwrap();
        assert_eq!(
            values(&decode(&atc).unwrap()),
            [json!(21.7), json!(48), json!(90), json!(2980)]
        );
        // Negative: −3.5 °C (pvvx).
        let cold = hex::decode("563412 38c1a4 a2fe 0014 860b 57 09 04".replace(' ', "")).unwrap();
        assert_eq!(decode(&cold).unwrap()[0].value, json!(-3.5));
        assert!(decode(&[0; 10]).is_none());
    }
}
