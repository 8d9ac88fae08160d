//! Advertisements decoded per second: `adverts::Keys::decode` on one packet of
//! each format, as the gateway's router calls it for every advert it hears.
//!
//! Run: `cargo bench --bench adverts`

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gattway::adverts::{DeviceKeys, KeyConfig, Keys};
use gattway::ble::{Advertisement, DeviceId, Uuid};

fn advert(id: &str, service: Option<(u16, &str)>, company: Option<(u16, &str)>) -> Advertisement {
    Advertisement {
        id: DeviceId::new(id),
        name: Some("bench".into()),
        rssi: -60,
        tx_power: None,
        services: Vec::new(),
        manufacturer_data: company
            .map(|(c, d)| BTreeMap::from([(c, hex::decode(d).unwrap())]))
            .unwrap_or_default(),
        service_data: service
            .map(|(u, d)| BTreeMap::from([(Uuid::from_u16(u), hex::decode(d).unwrap())]))
            .unwrap_or_default(),
    }
}

fn bench(c: &mut Criterion) {
    let bthome = DeviceKeys {
        keys: vec![KeyConfig {
            address: "C0:FF:EE:00:00:07".into(),
            key: "231d39c1d7cc1ab1aee224cd096db932".into(),
        }],
    };
    let keys = Keys::new(&bthome, &DeviceKeys::default()).unwrap();
    // The simulator's encrypted thermometer's first packet.
    let secure = gattway::ble::sim::catalog::bthome_encrypted_thermometer().adverts[0].service_data[0]
        .data
        .clone();
    let cases = [
        (
            "bthome",
            advert(
                "C0:FF:EE:00:00:06",
                Some((0xFCD2, "400001015c02ca0903bf13")),
                None,
            ),
        ),
        (
            "bthome_encrypted",
            advert("C0:FF:EE:00:00:07", Some((0xFCD2, &secure)), None),
        ),
        (
            "ruuvi",
            advert(
                "D0:00:00:00:00:05",
                None,
                Some((0x0499, "0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")),
            ),
        ),
        (
            "govee",
            advert("A4:C1:38:00:50:75", None, Some((0xEC88, "000397c05700"))),
        ),
        (
            "none",
            advert("AA:BB:CC:DD:EE:FF", None, Some((0x0006, "0109200222"))),
        ),
    ];
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    for (name, adv) in &cases {
        assert!(*name == "none" || !keys.decode(adv).is_empty(), "{name} decodes");
        group.bench_function(*name, |b| b.iter(|| keys.decode(std::hint::black_box(adv))));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
