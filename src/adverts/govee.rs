//! Govee H5072/H5075 thermo-hygrometers: manufacturer data under 0xEC88, six
//! bytes: a zero, then temperature and humidity packed in 24 bits (the top bit a
//! sign; the rest `temperature × 10,000 + humidity × 10`, in tenths), then the
//! battery (7 bits) with an error flag. Readings as `govee-ble` gives them: an
//! error, or a temperature outside −40…100 °C, reads "error".

use serde_json::json;

use super::Reading;

/// The id these models advertise their readings under.
pub const COMPANY: u16 = 0xEC88;

/// Readings of an H5072/H5075 payload (after the company id); `None` when it is
/// not one.
pub fn decode(data: &[u8]) -> Option<Vec<Reading>> {
    if data.len() != 6 {
        return None;
    }
    let packed = u32::from_be_bytes([0, data[1], data[2], data[3]]);
    let magnitude = packed & 0x7F_FFFF;
    let mut temperature = f64::from(magnitude / 1000) / 10.0;
    if packed & 0x80_0000 != 0 {
        temperature = -temperature;
    }
    let humidity = f64::from(magnitude % 1000) / 10.0;
    let battery = data[4] & 0x7F;
    let error = data[4] & 0x80 != 0;
    let valid = !error && (-40.0..=100.0).contains(&temperature);
    Some(vec![
        Reading::new(
            "temperature",
            if valid { json!(temperature) } else { json!("error") },
            Some("°C"),
        ),
        Reading::new(
            "humidity",
            if valid { json!(humidity) } else { json!("error") },
            Some("%"),
        ),
        Reading::new("battery", json!(battery), Some("%")),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warm_a_freezing_and_a_broken_reading() {
        // 23.5 °C, 45.6 %, 87 %: 235,456.
        let warm = decode(&[0x00, 0x03, 0x97, 0xC0, 87, 0x00]).unwrap();
        assert_eq!(warm[0].value, json!(23.5));
        assert_eq!(warm[1].value, json!(45.6));
        assert_eq!(warm[2].value, json!(87));
        // −5.2 °C, 60 %: sign bit and 52,600.
        let cold = decode(&[0x00, 0x80, 0xCD, 0x78, 50, 0x00]).unwrap();
        assert_eq!(
            (cold[0].value.clone(), cold[1].value.clone()),
            (json!(-5.2), json!(60.0))
        );
        let broken = decode(&[0x00, 0x03, 0x97, 0xC0, 0x80 | 20, 0x00]).unwrap();
        assert_eq!(broken[0].value, json!("error"));
        assert_eq!(broken[2].value, json!(20));
        assert!(decode(&[0; 7]).is_none());
    }
}
