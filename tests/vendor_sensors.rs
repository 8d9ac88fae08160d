//! Sensors in the formats people own, heard by the simulator as they broadcast:
//! a RuuviTag (RAWv2), a Govee H5075, a thermometer on pvvx firmware and an
//! iBeacon become the gateway's decoded readings and the hub's telemetry, each
//! packet once.

mod common;

use common::{fast_gateway, rig_with, sim_config, start_hub_server, within, JsonWs, TempDb};
use gattway::ble::sim::spec::DeviceSpec;
use serde_json::json;

const RUUVI: &str = "D0:00:00:00:00:05";
const GOVEE: &str = "A4:C1:38:00:50:75";
const PVVX: &str = "A4:C1:38:12:34:56";
const BEACON: &str = "F0:00:00:00:0B:EA";

fn sensors() -> Vec<DeviceSpec> {
    let toml = format!(
        r#"
[[devices]]
name = "Ruuvi 884F"
address = "{RUUVI}"
manufacturer_data = [{{ company_id = 0x0499, data = "0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F" }}]
services = []

[[devices]]
name = "GVH5075_5075"
address = "{GOVEE}"
manufacturer_data = [{{ company_id = 0xEC88, data = "000397c05700" }}]
services = []

[[devices]]
name = "ATC_123456"
address = "{PVVX}"
service_data = [{{ uuid = "181a", data = "56341238c1a429090014860b570904" }}]
services = []

[[devices]]
name = "Beacon"
address = "{BEACON}"
manufacturer_data = [{{ company_id = 0x004C, data = "0215e2c56db5dffb48d2b060d0f5a71096e000010002c5" }}]
services = []
"#
    );
    #[derive(serde::Deserialize)]
    struct File {
        devices: Vec<DeviceSpec>,
    }
    toml::from_str::<File>(&toml).unwrap().devices
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_sensors_become_readings_and_telemetry() {
    let rig = rig_with(fast_gateway(), sim_config(100.0, sensors()));
    let db = TempDb::new();
    let hub_config = gattway::hub::HubConfig {
        advert_feed: true,
        ..common::hub_config()
    };
    let (server, _hub) = start_hub_server(&rig.gateway, &db.url(), hub_config, Default::default()).await;
    let mut client = JsonWs::connect(&format!("ws://{}/hub?role=client", server.addr)).await;
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": [RUUVI, GOVEE, PVVX, BEACON], "since": 0}))
        .await;
    // From the first point stored (the feed may have stored some already), then live.
    client.next_of("subscribed").await;
    let mut got: std::collections::BTreeMap<(String, String), serde_json::Value> = Default::default();
    let wanted = [
        (RUUVI, "temperature", json!(24.3)),
        (RUUVI, "pressure", json!(1000.44)),
        (RUUVI, "acceleration_z", json!(10.16)),
        (GOVEE, "temperature", json!(23.5)),
        (GOVEE, "humidity", json!(45.6)),
        (GOVEE, "battery", json!(87)),
        (PVVX, "temperature", json!(23.45)),
        (PVVX, "voltage", json!(2950)),
        (
            BEACON,
            "ibeacon_uuid",
            json!("e2c56db5-dffb-48d2-b060-d0f5a71096e0"),
        ),
        (BEACON, "ibeacon_major", json!(1)),
    ];
    within("every sensor's readings as telemetry", async {
        while !wanted
            .iter()
            .all(|(d, k, _)| got.contains_key(&(d.to_string(), k.to_string())))
        {
            let t = client.next_of("telemetry").await;
            for p in t["points"].as_array().unwrap() {
                let key = (
                    t["device"].as_str().unwrap().to_string(),
                    p["key"].as_str().unwrap().to_string(),
                );
                got.insert(key, p["value"].clone());
            }
        }
    })
    .await;
    for (device, key, value) in wanted {
        assert_eq!(
            got[&(device.to_string(), key.to_string())],
            value,
            "{device} {key}"
        );
    }
    // Each packet once: the sensors repeat one packet, the hub stored it once.
    let history: serde_json::Value = reqwest::get(format!(
        "http://{}/api/v1/devices/{GOVEE}/telemetry?key=temperature",
        server.addr
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(history["points"].as_array().unwrap().len(), 1, "{history}");
    // The gateway's own device list reads them too.
    let govee = rig
        .gateway
        .known_devices()
        .into_iter()
        .find(|d| d.id.as_str() == GOVEE)
        .unwrap();
    assert!(govee
        .readings
        .iter()
        .any(|r| r.key == "humidity" && r.value == json!(45.6)));
    server.stop().await;
}
