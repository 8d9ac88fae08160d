//! The radios and the links: the original performance guide's `ble_*` series
//! (scans, connects, transfers), the links open now, and each configured radio's
//! state, adverts and the watchdog's recoveries.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use super::{FloatGauge, Metrics};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RadioLabels {
    /// A configured radio's name (a bounded set, unlike device ids).
    pub radio: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecoveryLabels {
    pub radio: String,
    /// `restart_scan` or `power_cycle`.
    pub action: &'static str,
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

/// Each radio's state, set at scrape time ([`Metrics::set_radio`]).
#[derive(Default)]
pub(super) struct RadioGauges {
    up: Family<RadioLabels, Gauge>,
    scanning: Family<RadioLabels, Gauge>,
    slots_used: Family<RadioLabels, Gauge>,
    slots_free: Family<RadioLabels, Gauge>,
    last_advert_age: Family<RadioLabels, FloatGauge>,
    recoveries: Family<RecoveryLabels, Counter>,
    adverts: Family<RadioLabels, Counter>,
}

/// Seconds from a scan's start until a device was first heard.
pub(super) fn discovery_time() -> Histogram {
    Histogram::new([0.1, 0.5, 1.0, 2.0, 5.0])
}

/// Seconds to open a link, retries included.
pub(super) fn connection_time() -> Histogram {
    Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0])
}

/// Seconds of one GATT read or write.
pub(super) fn transfer_latency() -> Histogram {
    Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1])
}

impl Metrics {
    pub(super) fn register_gateway(&mut self) {
        let r = &mut self.registry;
        r.register(
            "ble_discovery_time_seconds",
            "Time from the start of a scan until a device was first heard",
            self.discovery_time.clone(),
        );
        r.register(
            "ble_devices_found",
            "Devices newly found by scans",
            self.devices_found.clone(),
        );
        r.register(
            "ble_connection_time_seconds",
            "Time to open a link, retries included",
            self.connection_time.clone(),
        );
        r.register(
            "ble_connection_success",
            "Connects that succeeded",
            self.connection_success.clone(),
        );
        r.register(
            "ble_connection_failure",
            "Connects that failed after every retry",
            self.connection_failure.clone(),
        );
        r.register(
            "ble_transfer_rate_bytes_per_second",
            "Bytes written and notified per second since the previous scrape",
            self.transfer_rate.clone(),
        );
        r.register(
            "ble_transfer_latency_seconds",
            "Round trip of one GATT read or write",
            self.transfer_latency.clone(),
        );
        r.register(
            "gattway_connected_devices",
            "Devices with an open link",
            self.connected_devices.clone(),
        );
        let radios = &self.radios;
        for (name, help, family) in [
            (
                "gattway_radio_up",
                "1 while the radio is present and powered",
                &radios.up,
            ),
            (
                "gattway_radio_scanning",
                "1 while the radio scans",
                &radios.scanning,
            ),
            (
                "gattway_radio_slots_used",
                "Links open or opening through the radio",
                &radios.slots_used,
            ),
            (
                "gattway_radio_slots_free",
                "Links the radio can still open",
                &radios.slots_free,
            ),
        ] {
            r.register(name, help, family.clone());
        }
        r.register(
            "gattway_radio_recoveries",
            "The watchdog's recoveries of a deaf radio, by action and outcome",
            radios.recoveries.clone(),
        );
        r.register(
            "gattway_radio_adverts",
            "Advertisements each radio heard",
            radios.adverts.clone(),
        );
        r.register(
            "gattway_radio_last_advert_age_seconds",
            "Seconds since the radio last heard an advertisement",
            radios.last_advert_age.clone(),
        );
    }

    /// One radio's state, as the gateway reads it before a scrape.
    pub fn set_radio(
        &self,
        radio: &str,
        up: bool,
        scanning: bool,
        slots: (usize, usize),
        advert_age: Option<f64>,
    ) {
        let labels = RadioLabels {
            radio: radio.to_string(),
        };
        let g = &self.radios;
        g.up.get_or_create(&labels).set(i64::from(up));
        g.scanning.get_or_create(&labels).set(i64::from(scanning));
        g.slots_used.get_or_create(&labels).set(slots.0 as i64);
        g.slots_free.get_or_create(&labels).set(slots.1 as i64);
        if let Some(age) = advert_age {
            g.last_advert_age.get_or_create(&labels).set(age);
        }
    }

    /// The counter of `radio`'s advertisements: the router counts into it directly,
    /// one atomic add per advert.
    pub fn radio_adverts(&self, radio: &str) -> Counter {
        let labels = RadioLabels {
            radio: radio.to_string(),
        };
        self.radios.adverts.get_or_create(&labels).clone()
    }

    /// The watchdog tried `action` on `radio`.
    pub fn radio_recovery(&self, radio: &str, action: &'static str, ok: bool) {
        let labels = RecoveryLabels {
            radio: radio.to_string(),
            action,
            outcome: if ok { "ok" } else { "failed" },
        };
        self.radios.recoveries.get_or_create(&labels).inc();
    }
}
