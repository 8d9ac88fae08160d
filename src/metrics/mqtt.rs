//! The MQTT export: points the broker acknowledged, skipped or still owes, and
//! whether a broker session is up.

use super::Metrics;

impl Metrics {
    pub(super) fn register_mqtt(&mut self) {
        let r = &mut self.registry;
        r.register(
            "gattway_mqtt_published",
            "Points the MQTT broker acknowledged",
            self.mqtt_published.clone(),
        );
        r.register(
            "gattway_mqtt_dropped",
            "Points skipped because the MQTT backlog passed mqtt.max_backlog",
            self.mqtt_dropped.clone(),
        );
        r.register(
            "gattway_mqtt_backlog",
            "Points committed and not yet acknowledged by the MQTT broker",
            self.mqtt_backlog.clone(),
        );
        r.register(
            "gattway_mqtt_connected",
            "1 while a session with the MQTT broker is up",
            self.mqtt_connected.clone(),
        );
        r.register(
            "gattway_mqtt_skipped",
            "Points not exported to MQTT: no valid topic, or a value over mqtt.max_payload_bytes",
            self.mqtt_skipped.clone(),
        );
    }
}
