//! Theengs / OpenMQTTGateway-style JSON: one message per advertisement that says
//! something, on `home/<gateway>/BTtoMQTT/<MAC without colons>`, with the
//! properties under Theengs Decoder's names (`tempc`, `hum`, `batt`, `volt` …),
//! for the tools built on those gateways.

use serde_json::{json, Map, Value};

use crate::gateway::Heard;

/// Home Assistant's key → Theengs Decoder's property (and a factor).
const NAMES: &[(&str, &str, f64)] = &[
    ("temperature", "tempc", 1.0),
    ("humidity", "hum", 1.0),
    ("battery", "batt", 1.0),
    ("pressure", "pres", 1.0),
    ("illuminance", "lux", 1.0),
    ("moisture", "moi", 1.0),
    ("conductivity", "fer", 1.0),
    ("carbon_dioxide", "co2", 1.0),
    ("pm25", "pm25", 1.0),
    ("pm10", "pm10", 1.0),
    ("movement_counter", "mov", 1.0),
    ("acceleration_x", "accx", 1.0),
    ("acceleration_y", "accy", 1.0),
    ("acceleration_z", "accz", 1.0),
    ("acceleration_total", "acct", 1.0),
];

/// The topic under `home/<gateway>/BTtoMQTT/` and the message, for an
/// advertisement with readings.
pub fn message(heard: &Heard) -> Option<(String, Value)> {
    let readings = &heard.device.readings;
    if readings.is_empty() {
        return None;
    }
    let id = heard.advert.id.as_str();
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    if let Some(name) = &heard.advert.name {
        m.insert("name".into(), json!(name));
    }
    m.insert("rssi".into(), json!(heard.advert.rssi));
    for r in readings {
        match NAMES.iter().find(|(k, ..)| *k == r.key) {
            Some((_, name, factor)) => {
                let v = r.value.as_f64().map_or(r.value.clone(), |v| json!(v * factor));
                m.insert((*name).into(), v);
                if r.key == "temperature" {
                    if let Some(c) = r.value.as_f64() {
                        m.insert("tempf".into(), json!(crate::adverts::py_round(c * 1.8 + 32.0, 2)));
                    }
                }
            }
            // Volts, as Theengs gives them; decoders that say mV are converted.
            None if r.key == "voltage" => {
                let v = r
                    .value
                    .as_f64()
                    .map(|v| if r.unit == Some("mV") { v / 1000.0 } else { v });
                m.insert("volt".into(), v.map_or(r.value.clone(), |v| json!(v)));
            }
            None => {
                m.insert(r.key.clone(), r.value.clone());
            }
        }
    }
    Some((id.replace(':', ""), Value::Object(m)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adverts::Reading;
    use crate::ble::{Advertisement, DeviceId};
    use crate::gateway::DeviceInfo;

    #[test]
    fn readings_under_theengs_names() {
        let advert = Advertisement {
            id: DeviceId::new("A4:C1:38:12:34:56"),
            name: Some("ATC_123456".into()),
            rssi: -70,
            tx_power: None,
            services: vec![],
            manufacturer_data: Default::default(),
            service_data: Default::default(),
        };
        let mut device = DeviceInfo::from(&advert);
        device.readings = vec![
            Reading::new("temperature", json!(23.45), Some("°C")),
            Reading::new("humidity", json!(51.2), Some("%")),
            Reading::new("voltage", json!(2950), Some("mV")),
            Reading::new("packet_id", json!(3), None),
        ];
        let (topic, m) = message(&Heard { advert, device }).unwrap();
        assert_eq!(topic, "A4C138123456");
        assert_eq!(
            m,
            json!({"id": "A4:C1:38:12:34:56", "name": "ATC_123456", "rssi": -70, "tempc": 23.45,
                   "tempf": 74.21, "hum": 51.2, "volt": 2.95, "packet_id": 3})
        );
    }
}
