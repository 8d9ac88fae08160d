//! Whatever the hub accepts into its store, the store reads back. Each input is a
//! hub message (JSON text, or CBOR when the first byte is odd); one the hub's door
//! takes (a device's `telemetry`, a client's `command`) is stored through the real
//! store and read back, and must come back as it went in: the same JSON, numbers
//! compared by value (JSON does not tell `5.0` from `5`).
//!
//! The store is SQLite in memory, or the database `GATTWAY_FUZZ_DATABASE` names
//! (`sqlite://FILE` or an empty PostgreSQL database), where what was stored can be
//! counted after the run.
#![no_main]

use std::sync::{Arc, OnceLock};

use gattway::hub_api::cbor;
use gattway::hub_api::message::{ClientMessage, DeviceMessage, Envelope};
use gattway::hub::{accept, CommandRequest, HubConfig};
use gattway::store::{DeviceBatch, PointQuery, Store};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

struct Bed {
    runtime: tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    config: HubConfig,
    /// In memory, points are deleted after each input; a database named by
    /// `GATTWAY_FUZZ_DATABASE` keeps them, to be counted.
    in_memory: bool,
}

fn bed() -> &'static Bed {
    static BED: OnceLock<Bed> = OnceLock::new();
    BED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let url = std::env::var("GATTWAY_FUZZ_DATABASE").unwrap_or_else(|_| "sqlite::memory:".into());
        let store = runtime.block_on(gattway::store::open(&url)).expect("store");
        Bed {
            runtime,
            store,
            config: HubConfig::default(),
            in_memory: url.contains(":memory:"),
        }
    })
}

/// The same JSON, numbers compared by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(x), Some(y), _, _) => x == y,
            (_, _, Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// The message's `device`, which a device's telemetry names in its URL rather
/// than in the message: the fuzzer varies it here too.
fn device_of(cbor_encoded: bool, bytes: &[u8]) -> Option<String> {
    let v: Value = match cbor_encoded {
        false => serde_json::from_slice(bytes).ok()?,
        true => cbor::decode(bytes).ok()?,
    };
    v.get("device")?.as_str().map(String::from)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let cbor_encoded = first % 2 == 1;
    let envelope = match cbor_encoded {
        false => std::str::from_utf8(rest).ok().and_then(|t| Envelope::parse(t.to_string()).ok()),
        true => Envelope::parse_cbor(rest).ok(),
    };
    let Some(envelope) = envelope else { return };
    let bed = bed();
    bed.runtime.block_on(async {
        if let Ok(DeviceMessage::Telemetry(t)) = DeviceMessage::read(&envelope) {
                let device = device_of(cbor_encoded, rest).unwrap_or_else(|| "fuzz".into());
                let Ok(()) = accept::device_id(&device) else { return };
                let Ok(points) = accept::points(t.points, 1_700_000_000_000) else { return };
                let before = bed.store.last_point_id().await.expect("last id");
                let batch = DeviceBatch { device: device.as_str().into(), seq: None, points: points.clone() };
                bed.store.append_telemetry(&[batch]).await.expect("accepted points are stored");
                let query = PointQuery {
                    after_id: Some(before),
                    limit: 100_000,
                    ..Default::default()
                };
                let back = bed.store.points(&query).await.expect("stored points read back");
                assert_eq!(back.len(), points.len());
                for (p, b) in points.iter().zip(&back) {
                    assert_eq!((&p.key, p.ts, device.as_str()), (&b.key, b.ts, b.device.as_str()));
                    assert!(same(&p.value, &b.value), "{} came back as {}", p.value, b.value);
                }
                if bed.in_memory {
                    bed.store.delete_points_before(i64::MAX).await.expect("clean up");
                }
        }
        if let Ok(ClientMessage::Command(m)) = ClientMessage::read(&envelope) {
                let request = CommandRequest::from(m);
                let Ok(record) = request.into_record(&bed.config, None) else { return };
                bed.store.insert_command(&record).await.expect("accepted commands are stored");
                let back = bed.store.command(&record.id).await.expect("stored commands read back");
                let back = back.expect("the command is there");
                assert!(same(&record.params, &back.params), "{} came back as {}", record.params, back.params);
                assert_eq!((&record.device, &record.name), (&back.device, &back.name));
        }
    });
});
