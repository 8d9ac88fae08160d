//! Home Assistant MQTT discovery: what entity a telemetry key is (its component,
//! device class, unit and state class) and the retained config that announces it,
//! one HA device per gattway device.

use serde_json::{json, Value};

/// How a key shows in Home Assistant.
#[derive(Debug, PartialEq)]
pub struct Entity {
    /// `sensor` or `binary_sensor`.
    pub component: &'static str,
    pub device_class: Option<&'static str>,
    pub unit: Option<&'static str>,
    pub state_class: Option<&'static str>,
}

/// Binary sensors' device classes that Home Assistant knows by BTHome's names.
const BINARY_CLASSES: &[&str] = &[
    "battery",
    "battery_charging",
    "carbon_monoxide",
    "cold",
    "connectivity",
    "door",
    "garage_door",
    "gas",
    "heat",
    "light",
    "lock",
    "moisture",
    "motion",
    "moving",
    "occupancy",
    "opening",
    "plug",
    "power",
    "presence",
    "problem",
    "running",
    "safety",
    "smoke",
    "sound",
    "tamper",
    "vibration",
    "window",
];

/// Sensor keys (BTHome's, the hub's usual ones) → HA device class, default unit and
/// state class. The unit a decoder gave wins over the default.
#[rustfmt::skip]
const SENSORS: &[(&str, Option<&str>, Option<&str>, &str)] = &[
    ("temperature", Some("temperature"), Some("°C"), "measurement"),
    ("dew_point", Some("temperature"), Some("°C"), "measurement"),
    ("humidity", Some("humidity"), Some("%"), "measurement"),
    ("moisture", Some("moisture"), Some("%"), "measurement"),
    ("battery", Some("battery"), Some("%"), "measurement"),
    ("pressure", Some("pressure"), Some("mbar"), "measurement"),
    ("illuminance", Some("illuminance"), Some("lx"), "measurement"),
    ("mass", Some("weight"), Some("kg"), "measurement"),
    ("energy", Some("energy"), Some("kWh"), "total_increasing"),
    ("power", Some("power"), Some("W"), "measurement"),
    ("voltage", Some("voltage"), Some("V"), "measurement"),
    ("current", Some("current"), Some("A"), "measurement"),
    ("pm25", Some("pm25"), Some("µg/m³"), "measurement"),
    ("pm10", Some("pm10"), Some("µg/m³"), "measurement"),
    ("carbon_dioxide", Some("carbon_dioxide"), Some("ppm"), "measurement"),
    ("volatile_organic_compounds", Some("volatile_organic_compounds"), Some("µg/m³"), "measurement"),
    ("distance", Some("distance"), Some("mm"), "measurement"),
    ("duration", Some("duration"), Some("s"), "measurement"),
    ("speed", Some("speed"), Some("m/s"), "measurement"),
    ("volume", Some("volume"), Some("L"), "total"),
    ("volume_storage", Some("volume_storage"), Some("L"), "measurement"),
    ("volume_flow_rate", Some("volume_flow_rate"), Some("m³/h"), "measurement"),
    ("gas", Some("gas"), Some("m³"), "total_increasing"),
    ("water", Some("water"), Some("L"), "total_increasing"),
    ("conductivity", Some("conductivity"), Some("µS/cm"), "measurement"),
    ("precipitation", Some("precipitation"), Some("mm"), "measurement"),
    ("signal_strength", Some("signal_strength"), Some("dBm"), "measurement"),
    ("rssi", Some("signal_strength"), Some("dBm"), "measurement"),
    ("heart_rate", None, Some("bpm"), "measurement"),
    ("count", None, None, "measurement"),
    ("rotation", None, Some("°"), "measurement"),
    ("uv_index", None, None, "measurement"),
];

/// `temperature_2` → `temperature`: a packet's second reading of a kind.
fn kind_of(key: &str) -> &str {
    match key.rsplit_once('_') {
        Some((kind, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => kind,
        _ => key,
    }
}

/// What `key` with `value` is in Home Assistant; `unit` is the decoder's, when known.
/// Keys that are bookkeeping (`packet_id`) are not entities.
pub fn entity(key: &str, value: &Value, unit: Option<&'static str>) -> Option<Entity> {
    let kind = kind_of(key);
    if kind == "packet_id" {
        return None;
    }
    if value.is_boolean() {
        return Some(Entity {
            component: "binary_sensor",
            device_class: BINARY_CLASSES.iter().find(|c| **c == kind).copied(),
            unit: None,
            state_class: None,
        });
    }
    let known = SENSORS.iter().find(|(k, ..)| *k == kind);
    Some(Entity {
        component: "sensor",
        device_class: known.and_then(|k| k.1),
        unit: unit.or(known.and_then(|k| k.2)),
        // Text and events have no state class: they are not measurements.
        state_class: value.is_number().then(|| known.map_or("measurement", |k| k.3)),
    })
}

/// Topic-safe: letters, digits, `_` and `-`.
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where a device's key is announced, and what is announced.
pub struct Announcement {
    pub topic: String,
    pub config: Value,
}

pub struct Names {
    pub prefix: String,
    /// The gateway's own HA device id (`via_device`), and its availability topic.
    pub gateway_id: String,
    pub availability: String,
}

/// The gateway itself: an HA device with one entity, its connectivity.
pub fn gateway(names: &Names, name: &str) -> Announcement {
    let node = &names.gateway_id;
    Announcement {
        topic: format!("{}/binary_sensor/{node}/connectivity/config", names.prefix),
        config: json!({
            "name": "connectivity",
            "unique_id": format!("{node}_connectivity"),
            "object_id": format!("{node}_connectivity"),
            "state_topic": names.availability,
            "payload_on": "online",
            "payload_off": "offline",
            "device_class": "connectivity",
            "entity_category": "diagnostic",
            "device": {
                "identifiers": [node],
                "name": name,
                "manufacturer": "gattway",
                "model": "Bluetooth LE gateway",
                "sw_version": env!("CARGO_PKG_VERSION"),
            },
        }),
    }
}

/// The discovery config of `device`'s `key`: one HA device per gattway device, the
/// entity's state at `state_topic` (`<base>/<device>/<key>`, escaped), available
/// while gattway is.
pub fn announce(
    names: &Names,
    device: &str,
    device_name: &str,
    key: &str,
    state_topic: &str,
    entity: &Entity,
) -> Announcement {
    let node = format!("gattway_{}", slug(device));
    let object = slug(key);
    let mut config = json!({
        "name": key.replace('_', " "),
        "unique_id": format!("{node}_{object}"),
        "object_id": format!("{node}_{object}"),
        "state_topic": state_topic,
        "availability_topic": names.availability,
        "device": {
            "identifiers": [node],
            "name": device_name,
            "via_device": names.gateway_id,
        },
    });
    if is_mac(device) {
        config["device"]["connections"] = json!([["mac", device.to_ascii_lowercase()]]);
    }
    if entity.component == "binary_sensor" {
        config["payload_on"] = json!("true");
        config["payload_off"] = json!("false");
    }
    for (field, v) in [
        ("device_class", entity.device_class),
        ("unit_of_measurement", entity.unit),
        ("state_class", entity.state_class),
    ] {
        if let Some(v) = v {
            config[field] = json!(v);
        }
    }
    Announcement {
        topic: format!("{}/{}/{node}/{object}/config", names.prefix, entity.component),
        config,
    }
}

fn is_mac(s: &str) -> bool {
    s.len() == 17
        && s.split(':')
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_the_entities_home_assistant_expects() {
        let t = entity("temperature", &json!(21.5), None).unwrap();
        assert_eq!(
            t,
            Entity {
                component: "sensor",
                device_class: Some("temperature"),
                unit: Some("°C"),
                state_class: Some("measurement")
            }
        );
        // A second reading of a kind is that kind; the decoder's unit wins.
        let m = entity("mass_2", &json!(3.2), Some("lb")).unwrap();
        assert_eq!((m.device_class, m.unit), (Some("weight"), Some("lb")));
        let door = entity("door", &json!(true), None).unwrap();
        assert_eq!(
            (door.component, door.device_class),
            ("binary_sensor", Some("door"))
        );
        let generic = entity("generic", &json!(false), None).unwrap();
        assert_eq!(generic.device_class, None);
        let energy = entity("energy", &json!(1.5), None).unwrap();
        assert_eq!(energy.state_class, Some("total_increasing"));
        let text = entity("text", &json!("hello"), None).unwrap();
        assert_eq!(text.state_class, None);
        assert!(entity("packet_id", &json!(7), None).is_none());
    }

    #[test]
    fn a_config_names_its_device_topics_and_availability() {
        let names = Names {
            prefix: "homeassistant".into(),
            gateway_id: "gattway_gateway".into(),
            availability: "gattway/status".into(),
        };
        let e = entity("humidity", &json!(40.1), None).unwrap();
        let state = "gattway/C0:FF:EE:00:00:06/humidity";
        let a = announce(
            &names,
            "C0:FF:EE:00:00:06",
            "Gattway BTHome",
            "humidity",
            state,
            &e,
        );
        assert_eq!(
            a.topic,
            "homeassistant/sensor/gattway_C0_FF_EE_00_00_06/humidity/config"
        );
        assert_eq!(a.config["state_topic"], "gattway/C0:FF:EE:00:00:06/humidity");
        assert_eq!(a.config["availability_topic"], "gattway/status");
        assert_eq!(a.config["unit_of_measurement"], "%");
        assert_eq!(a.config["device"]["connections"][0][1], "c0:ff:ee:00:00:06");
        assert_eq!(a.config["device"]["name"], "Gattway BTHome");
    }
}
