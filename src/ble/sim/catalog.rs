//! The built-in simulated devices (DESIGN.md "Simulated devices"): a heart-rate
//! monitor, a battery tag, an environmental sensor, a Nordic UART echo device, a
//! CS108-style RFID reader, a tag that wanders out of range now and then, and a
//! BTHome thermometer that only broadcasts. Each connectable one also carries a
//! Device Information service, as real devices do.

use super::spec::*;
use crate::ble::{well_known as wk, Uuid};

fn ch(uuid: Uuid, props: &[&str]) -> CharSpec {
    CharSpec {
        uuid,
        properties: props.iter().map(|p| p.to_string()).collect(),
        value: None,
        text: None,
        max_len: 512,
        generator: None,
        on_write: WriteAction::Store,
        descriptors: Vec::new(),
    }
}

fn hex_value(mut c: CharSpec, hex: &str) -> CharSpec {
    c.value = Some(hex.to_string());
    c
}

fn generated(mut c: CharSpec, kind: GeneratorKind, period_ms: u64) -> CharSpec {
    c.generator = Some(GeneratorSpec { kind, period_ms });
    c
}

fn described(mut c: CharSpec, text: &str) -> CharSpec {
    c.descriptors.push(DescriptorSpec {
        uuid: wk::USER_DESCRIPTION,
        value: None,
        text: Some(text.to_string()),
    });
    c
}

fn text(uuid: Uuid, t: &str) -> CharSpec {
    let mut c = ch(uuid, &["read"]);
    c.text = Some(t.to_string());
    c
}

fn device_information(model: &str, serial: &str) -> ServiceSpec {
    ServiceSpec {
        uuid: wk::DEVICE_INFORMATION,
        characteristics: vec![
            text(wk::MANUFACTURER_NAME, "gattway simulator"),
            text(wk::MODEL_NUMBER, model),
            text(wk::SERIAL_NUMBER, serial),
            text(wk::FIRMWARE_REVISION, env!("CARGO_PKG_VERSION")),
        ],
    }
}

fn battery(period_ms: u64) -> ServiceSpec {
    ServiceSpec {
        uuid: wk::BATTERY_SERVICE,
        characteristics: vec![generated(
            hex_value(ch(wk::BATTERY_LEVEL, &["read", "notify"]), "5f"),
            GeneratorKind::BatteryLevel,
            period_ms,
        )],
    }
}

fn device(name: &str, address: &str, rssi: i16, services: Vec<ServiceSpec>) -> DeviceSpec {
    DeviceSpec {
        name: name.to_string(),
        address: address.to_string(),
        rssi,
        tx_power: Some(0),
        mtu: 247,
        connect_latency_ms: 60,
        op_latency_ms: 8,
        advertised_services: services
            .iter()
            .map(|s| s.uuid)
            .filter(|u| *u != wk::DEVICE_INFORMATION)
            .collect(),
        manufacturer_data: Vec::new(),
        service_data: Vec::new(),
        adverts: Vec::new(),
        advert_period_ms: 1_000,
        range_cycle: None,
        services,
    }
}

/// The same thermometer with encryption (AES-CCM), as BTHome devices with a key
/// set broadcast: its key is `231d39c1d7cc1ab1aee224cd096db932` (README). Packets
/// counted 1 to 4, again and again.
pub fn bthome_encrypted_thermometer() -> DeviceSpec {
    let mut d = bthome_thermometer();
    d.name = "Gattway BTHome Secure".into();
    d.address = "C0:FF:EE:00:00:07".into();
    d.rssi = -70;
    for (advert, hex) in d.adverts.iter_mut().zip([
        "41b3dc49c4cee2f67201000000f9e7cc44", // 92 %, 25.06 °C, 50.55 %
        "41b1af2a08016d36de02000000bc491fbb", // 92 %, 25.16 °C, 50.45 %
        "4183a656836e30a969030000009120129e", // 91 %, 25.36 °C, 50.25 %
        "4155b10bb0d401b52d04000000c9c9cdd5", // 91 %, 25.26 °C, 50.35 %
    ]) {
        advert.service_data[0].data = hex.into();
    }
    d
}

/// A BTHome v2 thermometer (unencrypted), as the open firmwares for Xiaomi's LYWSD03MMC
/// broadcast it: service data 0xFCD2 with a packet id, battery %, temperature
/// (0.01 °C) and humidity (0.01 %), a new reading every second. It has no GATT
/// services: like the real ones, it only broadcasts.
pub fn bthome_thermometer() -> DeviceSpec {
    let mut d = device("Gattway BTHome", "C0:FF:EE:00:00:06", -66, Vec::new());
    let payload = |hex: &str| AdvertPayload {
        service_data: vec![ServiceData {
            uuid: Uuid::from_u16(0xFCD2),
            data: hex.into(),
        }],
        manufacturer_data: Vec::new(),
    };
    // 40: BTHome v2, unencrypted. 00 packet id, 01 battery, 02 temperature, 03 humidity.
    d.adverts = vec![
        payload("400001015c02ca0903bf13"), // 25.06 °C, 50.55 %, 92 %
        payload("400002015c02d40903b513"), // 25.16 °C, 50.45 %
        payload("400003015b02e80903a113"), // 25.36 °C, 50.25 %, 91 %
        payload("400004015b02de0903ab13"), // 25.26 °C, 50.35 %
    ];
    d
}

pub fn heart_rate_monitor() -> DeviceSpec {
    let mut d = device(
        "Gattway HRM",
        "C0:FF:EE:00:00:01",
        -58,
        vec![
            ServiceSpec {
                uuid: wk::HEART_RATE_SERVICE,
                characteristics: vec![
                    generated(
                        ch(wk::HEART_RATE_MEASUREMENT, &["notify"]),
                        GeneratorKind::HeartRate,
                        1000,
                    ),
                    // 0x01: chest.
                    hex_value(ch(wk::BODY_SENSOR_LOCATION, &["read"]), "01"),
                    ch(Uuid::from_u16(0x2A39), &["write"]),
                ],
            },
            battery(30_000),
            device_information("HRM-1", "HRM0001"),
        ],
    );
    // Nordic Semiconductor (0x0059), as many fitness sensors carry.
    d.manufacturer_data.push(ManufacturerData {
        company_id: 0x0059,
        data: "0102".into(),
    });
    d
}

pub fn battery_tag() -> DeviceSpec {
    let mut d = device(
        "Gattway Battery",
        "C0:FF:EE:00:00:02",
        -71,
        vec![battery(5_000), device_information("BAT-1", "BAT0001")],
    );
    d.mtu = 23;
    d
}

pub fn environmental_sensor() -> DeviceSpec {
    device(
        "Gattway Env",
        "C0:FF:EE:00:00:03",
        -66,
        vec![
            ServiceSpec {
                uuid: wk::ENVIRONMENTAL_SENSING,
                characteristics: vec![
                    described(
                        generated(
                            hex_value(ch(wk::TEMPERATURE, &["read", "notify"]), "5208"),
                            GeneratorKind::Temperature,
                            2000,
                        ),
                        "Air temperature",
                    ),
                    described(
                        generated(
                            hex_value(ch(wk::HUMIDITY, &["read", "notify"]), "9411"),
                            GeneratorKind::Humidity,
                            2000,
                        ),
                        "Relative humidity",
                    ),
                ],
            },
            battery(60_000),
            device_information("ENV-1", "ENV0001"),
        ],
    )
}

pub fn nordic_uart() -> DeviceSpec {
    let mut rx = ch(wk::NUS_RX, &["write", "write_without_response"]);
    rx.on_write = WriteAction::Echo { to: wk::NUS_TX };
    rx.max_len = 244;
    let mut d = device(
        "Gattway UART",
        "C0:FF:EE:00:00:04",
        -62,
        vec![
            ServiceSpec {
                uuid: wk::NUS_SERVICE,
                characteristics: vec![rx, ch(wk::NUS_TX, &["notify"])],
            },
            device_information("NUS-1", "NUS0001"),
        ],
    );
    d.mtu = 247;
    d
}

pub fn cs108_reader() -> DeviceSpec {
    let mut write = ch(wk::CS108_WRITE, &["write", "write_without_response"]);
    write.on_write = WriteAction::Cs108 { to: wk::CS108_NOTIFY };
    write.max_len = 255;
    let notify = generated(
        ch(wk::CS108_NOTIFY, &["notify"]),
        GeneratorKind::Cs108Inventory,
        100,
    );
    let mut d = device(
        "CS108Reader000001",
        "C0:FF:EE:00:01:08",
        -55,
        vec![
            ServiceSpec {
                uuid: wk::CS108_SERVICE,
                characteristics: vec![write, notify],
            },
            device_information("CS108", "CS108000001"),
        ],
    );
    d.connect_latency_ms = 120;
    d
}

pub fn roaming_tag() -> DeviceSpec {
    let mut d = device(
        "Gattway Roamer",
        "C0:FF:EE:00:00:05",
        -80,
        vec![battery(10_000), device_information("ROAM-1", "ROAM0001")],
    );
    d.range_cycle = Some(RangeCycle {
        in_ms: 30_000,
        out_ms: 15_000,
    });
    d
}

/// Every built-in device.
pub fn builtin() -> Vec<DeviceSpec> {
    vec![
        heart_rate_monitor(),
        battery_tag(),
        environmental_sensor(),
        nordic_uart(),
        cs108_reader(),
        roaming_tag(),
        bthome_thermometer(),
        bthome_encrypted_thermometer(),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn builtin_devices_are_valid_and_distinct() {
        let all = super::builtin();
        for d in &all {
            d.validate().unwrap();
        }
        let mut addrs: Vec<_> = all.iter().map(|d| &d.address).collect();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), all.len());
    }
}
