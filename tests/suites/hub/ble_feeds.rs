//! Telemetry the hub takes from BLE rather than from network devices: simulated
//! notifications (and commands that become writes), a failover of the radio under
//! the feed, and a broadcasting sensor's readings.

use std::time::Duration;

use super::Hub;
use crate::common::*;
use crate::store;
use gattway::auth::AuthConfig;
use serde_json::json;

#[tokio::test]
async fn simulated_ble_notifications_arrive_as_telemetry_and_commands_become_writes() {
    let hub = Hub::start(gattway::hub::HubConfig {
        sim_feed: true,
        ..hub_config()
    })
    .await;
    let mut client = hub.client().await;
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": [HRM, ENV], "keys": ["heart_rate", "temperature"]}))
        .await;
    client.next_of("subscribed").await;
    let mut keys = std::collections::BTreeSet::new();
    while keys.len() < 2 {
        let t = client.next_of("telemetry").await;
        for p in t["points"].as_array().unwrap() {
            let v = p["value"].as_f64().unwrap();
            match p["key"].as_str().unwrap() {
                "heart_rate" => assert!((30.0..=220.0).contains(&v), "{v} bpm"),
                "temperature" => assert!((-40.0..=85.0).contains(&v), "{v} °C"),
                other => panic!("unexpected key {other}"),
            }
            keys.insert(p["key"].as_str().unwrap().to_string());
        }
    }
    client
        .send(json!({"type": "command", "id": 2, "device": HRM, "name": "reset_energy_expended", "params": {"value": "01"}}))
        .await;
    client.next_of("command_accepted").await;
    let done = loop {
        let s = client.next_of("command_status").await;
        if s["status"] != "sent" {
            break s;
        }
    };
    assert_eq!(
        (done["status"].clone(), done["result"].clone()),
        (json!("succeeded"), json!({"written": "01"}))
    );
    let stored = hub
        .get(&format!("/api/v1/devices/{HRM}/telemetry?key=heart_rate"))
        .await;
    assert!(!stored["points"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_ble_feed_carries_on_through_a_radio_failover() {
    let (gateway, near, _far) = two_radios(7, 7);
    let db = store();
    let config = gattway::hub::HubConfig {
        sim_feed: true,
        ..hub_config()
    };
    let (server, _hub) = start_hub_server(&gateway, &db.url(), config, AuthConfig::default()).await;
    let mut client = JsonWs::connect(&format!("ws://{}/hub?role=client", server.addr)).await;
    assert_eq!(client.next().await["type"], "welcome");
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": [HRM], "keys": ["heart_rate"]}))
        .await;
    client.next_of("subscribed").await;
    client.next_of("telemetry").await;
    assert_eq!(link_radio(&gateway, HRM).as_deref(), Some("near"));

    // Near dies mid-session: the feed's link is re-made through far, once.
    let mut events = gateway.events();
    near.set_powered(false);
    reconnected(&mut events, HRM).await;
    assert_eq!(link_radio(&gateway, HRM).as_deref(), Some("far"));
    // Telemetry measured after the reconnect arrives, and the client saw no error.
    let reconnected_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    loop {
        let m = client.next().await;
        assert_ne!(m["type"], "error", "{m}");
        let fresh = m["points"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["ts"].as_i64() > Some(reconnected_ms)));
        if m["type"] == "telemetry" && fresh {
            assert_eq!(m["points"][0]["key"], "heart_rate");
            break;
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_broadcasting_sensors_readings_become_its_telemetry_each_packet_once() {
    let hub = Hub::start(gattway::hub::HubConfig {
        advert_feed: true,
        ..hub_config()
    })
    .await;
    let mut client = hub.client().await;
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": [BTHOME]}))
        .await;
    client.next_of("subscribed").await;
    // Live, as the sensor broadcasts: the readings Home Assistant would give.
    let mut keys = std::collections::BTreeSet::new();
    while keys.len() < 4 {
        let t = client.next_of("telemetry").await;
        assert_eq!(t["device"], BTHOME, "{t}");
        for p in t["points"].as_array().unwrap() {
            keys.insert(p["key"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        keys.into_iter().collect::<Vec<_>>(),
        ["battery", "humidity", "packet_id", "temperature"]
    );
    // Stored, and each packet once although the sensor repeats it: consecutive
    // packet ids differ.
    let stored = within("a few packets stored", async {
        loop {
            let h = hub
                .get(&format!("/api/v1/devices/{BTHOME}/telemetry?key=packet_id"))
                .await;
            if h["points"].as_array().is_some_and(|p| p.len() >= 3) {
                return h;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let ids: Vec<i64> = stored["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_i64().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] != w[1]),
        "a packet stored twice: {ids:?}"
    );
    let temps = hub
        .get(&format!("/api/v1/devices/{BTHOME}/telemetry?key=temperature"))
        .await;
    for p in temps["points"].as_array().unwrap() {
        let t = p["value"].as_f64().unwrap();
        assert!([25.06, 25.16, 25.36, 25.26].contains(&t), "{t}");
    }
}
