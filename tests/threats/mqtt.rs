//! The MQTT surface against the real Mosquitto (127.0.0.1:1883): a device's key
//! that no topic can carry never stalls the export, and the broker is a trust
//! boundary: commands from it are off unless enabled, run as a configured API key
//! whose device list holds, and the export never hears its own telemetry as a
//! command.

use std::time::Duration;

use gattway::auth::{AuthConfig, Scope};
use gattway::hub::Hub;
use gattway::mqtt::MqttConfig;
use gattway::sync::AbortOnDrop;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::common::{api_key, hub_config, rig, start_hub_server, wait_until, within, JsonWs, Rig, Server};

/// Topics of their own for each test, so tests (and runs) never see each other's.
fn unique(what: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("gattway-threat-{}-{what}-{n}", std::process::id())
}

fn db(name: &str) -> String {
    let path = std::env::temp_dir().join(format!("gattway-threat-mqtt-{name}-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    format!("sqlite://{}", path.display())
}

/// An MQTT subscriber on the shared broker: (topic, payload) under `filter`.
async fn subscriber(filter: &str) -> (AsyncClient, mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    let mut options = MqttOptions::new(unique("sub"), "127.0.0.1", 1883);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(options, 100);
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let (sub, filter) = (client.clone(), filter.to_string());
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = sub.subscribe(&filter, QoS::AtLeastOnce).await;
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(s) = subscribed_tx.take() {
                        let _ = s.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((p.topic, p.payload.to_vec()));
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    within("the subscription", subscribed).await.unwrap();
    (client, rx)
}

/// What an anonymous client on the broker can do (`mosquitto_pub -q 1`): publish
/// at QoS 1, returning once the broker has acknowledged, and so routed, it.
async fn anonymous_publish(topic: &str, payload: &str) {
    publish(topic, payload, false).await
}

/// [`anonymous_publish`], retained or not.
async fn publish(topic: &str, payload: &str, retain: bool) {
    let (client, mut events) = AsyncClient::new(MqttOptions::new(unique("anon"), "127.0.0.1", 1883), 10);
    client
        .publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec())
        .await
        .unwrap();
    within("the broker's PUBACK", async {
        loop {
            if let Event::Incoming(Packet::PubAck(_)) = events.poll().await.expect("the broker") {
                return;
            }
        }
    })
    .await;
    let _ = client.try_disconnect();
}

/// The export of `hub` to the shared broker under `base`, without discovery.
fn export(hub: &Hub, rig: &Rig, base: &str, tweak: impl FnOnce(&mut MqttConfig)) -> AbortOnDrop {
    let mut config = MqttConfig {
        url: "mqtt://127.0.0.1:1883".into(),
        client_id: unique("gw"),
        base_topic: base.to_string(),
        discovery_prefix: String::new(),
        ..Default::default()
    };
    tweak(&mut config);
    gattway::mqtt::spawn(hub, &rig.gateway, &config)
        .unwrap()
        .expect("export on")
}

/// A hub device on `server`, past its welcome; `token` with auth on.
async fn hub_device(server: &Server, id: &str, token: Option<&str>) -> JsonWs {
    let credential = token.map(|t| format!("&token={t}")).unwrap_or_default();
    let mut device = JsonWs::connect(&format!("ws://{}/hub?device={id}{credential}", server.addr)).await;
    assert_eq!(device.next().await["type"], "welcome");
    device
}

/// Sends one point and waits for the hub's acknowledgement.
async fn telemetry(device: &mut JsonWs, seq: u64, key: &str, value: Value) {
    device
        .send(json!({"type": "telemetry", "seq": seq, "points": [{"key": key, "value": value}]}))
        .await;
    assert_eq!(device.next_of("telemetry_ack").await["seq"], seq);
}

/// Waits until the broker has acknowledged `n` points of the export in all. A
/// command the broker routed to the export before those acknowledgements has been
/// acted on by then: the export reads its session in order.
async fn broker_acknowledged(rig: &Rig, n: u64) {
    let published = rig.gateway.metrics().mqtt_published.clone();
    wait_until("the broker's acknowledgements", || published.get() >= n).await;
}

async fn commands_stored(hub: &Hub, device: &str) -> usize {
    hub.store().commands(device, 100).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_no_topic_can_carry_are_escaped_and_the_export_goes_on() {
    let rig = rig();
    let (server, hub) =
        start_hub_server(&rig.gateway, &db("keys"), hub_config(), AuthConfig::default()).await;
    let base = unique("base");
    let (_sub, mut messages) = subscriber(&format!("{base}/#")).await;
    let _export = export(&hub, &rig, &base, |c| c.max_payload_bytes = 64 * 1024);
    let mut device = hub_device(&server, "keys-dev", None).await;
    // Wildcards, a level separator and an empty level: rumqttc refuses the first
    // two outright, and used to retry the same point for ever. A value over
    // rumqttc's default 10 KiB packet ends a session each time it is sent; one over
    // mqtt.max_payload_bytes is skipped and counted.
    telemetry(&mut device, 1, "a/#", json!(1)).await;
    telemetry(&mut device, 2, "+", json!(2)).await;
    telemetry(&mut device, 3, "x//", json!(3)).await;
    telemetry(&mut device, 4, "big", json!("b".repeat(20 * 1024))).await;
    telemetry(&mut device, 5, "huge", json!("h".repeat(100 * 1024))).await;
    telemetry(&mut device, 6, "temperature", json!(21.5)).await;
    let mut seen = Vec::new();
    within("the normal key after the bad ones", async {
        while let Some((topic, payload)) = messages.recv().await {
            let key = topic.rsplit('/').next().unwrap().to_string();
            let done = key == "temperature";
            seen.push((key, payload));
            if done {
                return;
            }
        }
    })
    .await;
    let keys: Vec<&str> = seen
        .iter()
        .filter(|(k, _)| k != "status")
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(keys, ["a%2F%23", "%2B", "x%2F%2F", "big", "temperature"]);
    assert_eq!(seen.iter().find(|(k, _)| k == "big").unwrap().1.len(), 20 * 1024);
    assert_eq!(rig.gateway.metrics().mqtt_skipped.get(), 1, "the huge value");
    assert!(server.metrics().await.contains("gattway_mqtt_skipped_total 1"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_from_mqtt_are_off_by_default() {
    let rig = rig();
    let (server, hub) = start_hub_server(&rig.gateway, &db("off"), hub_config(), AuthConfig::default()).await;
    let base = unique("base");
    let _export = export(&hub, &rig, &base, |_| {});
    let mut device = hub_device(&server, "probe-dev", None).await;
    // The export's session is up (it would have subscribed before this publish).
    telemetry(&mut device, 1, "n", json!(1)).await;
    broker_acknowledged(&rig, 1).await;
    anonymous_publish(&format!("{base}/probe-dev/command/unlock"), "{}").await;
    telemetry(&mut device, 2, "n", json!(2)).await;
    broker_acknowledged(&rig, 2).await;
    assert_eq!(
        commands_stored(&hub, "probe-dev").await,
        0,
        "no command from MQTT"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_commands_run_as_the_configured_key_and_its_device_list_holds() {
    let rig = rig();
    let auth = AuthConfig {
        api_keys: vec![
            api_key("mqtt-commands", vec![Scope::HubClient], vec!["door-*"]),
            api_key("door-1", vec![Scope::HubDevice], vec![]),
            api_key("probe-dev", vec![Scope::HubDevice], vec![]),
        ],
        ..Default::default()
    };
    let (server, hub) = start_hub_server(&rig.gateway, &db("principal"), hub_config(), auth).await;
    let base = unique("base");
    // With auth on, commands on and no principal, the export refuses to start.
    let unnamed = MqttConfig {
        url: "mqtt://127.0.0.1:1883".into(),
        base_topic: base.clone(),
        commands: true,
        ..Default::default()
    };
    let refused = gattway::mqtt::spawn(&hub, &rig.gateway, &unnamed)
        .err()
        .expect("refused");
    assert!(
        refused.to_string().contains("mqtt.command_principal"),
        "{refused}"
    );

    let (_sub, mut statuses) = subscriber(&format!("{base}/+/command/+/status")).await;
    let _export = export(&hub, &rig, &base, |c| {
        c.commands = true;
        c.command_principal = "mqtt-commands".into();
    });
    let mut probe = hub_device(&server, "probe-dev", Some("probe-dev")).await;
    let mut door = hub_device(&server, "door-1", Some("door-1")).await;
    telemetry(&mut door, 1, "n", json!(1)).await;
    broker_acknowledged(&rig, 1).await;
    // Outside the key's device list: refused, and said so where statuses go.
    anonymous_publish(&format!("{base}/probe-dev/command/unlock"), "{}").await;
    // Inside it: the command reaches the device (after the refused one, in order).
    anonymous_publish(&format!("{base}/door-1/command/unlock"), r#"{"for": 5}"#).await;
    let command = within("the allowed command", door.next_of("command")).await;
    assert_eq!(
        (&command["name"], &command["params"]),
        (&json!("unlock"), &json!({"for": 5}))
    );
    assert_eq!(commands_stored(&hub, "probe-dev").await, 0);
    let refusal = within("the refusal", async {
        loop {
            let (topic, payload) = statuses.recv().await.unwrap();
            let v: Value = serde_json::from_slice(&payload).unwrap();
            if topic == format!("{base}/probe-dev/command/unlock/status") {
                return v;
            }
        }
    })
    .await;
    assert_eq!(refusal["status"], "rejected");
    assert!(
        refusal["error"].as_str().unwrap().contains("probe-dev"),
        "{refusal}"
    );
    // The device's connection carried no command: its next message is this ack.
    telemetry(&mut probe, 1, "n", json!(1)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_never_hears_its_own_telemetry_as_a_command() {
    let rig = rig();
    let (server, hub) =
        start_hub_server(&rig.gateway, &db("echo"), hub_config(), AuthConfig::default()).await;
    let base = unique("base");
    let _export = export(&hub, &rig, &base, |c| c.commands = true);
    let mut device = hub_device(&server, "echo-dev", None).await;
    // Published as `<base>/echo-dev/command%2Fx`: no command topic. Before, it was
    // `<base>/echo-dev/command/x`, and the export, subscribed there, heard it.
    telemetry(&mut device, 1, "command/x", json!({})).await;
    broker_acknowledged(&rig, 1).await;
    // A real command still comes, and it is the first the device gets.
    anonymous_publish(&format!("{base}/echo-dev/command/reboot"), "{}").await;
    let command = within("the real command", device.next_of("command")).await;
    assert_eq!(command["name"], "reboot");
    assert_eq!(commands_stored(&hub, "echo-dev").await, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_command_is_never_run() {
    let rig = rig();
    let (server, hub) =
        start_hub_server(&rig.gateway, &db("retained"), hub_config(), AuthConfig::default()).await;
    let base = unique("base");
    // Retained before the export subscribes: the broker hands it over at every
    // subscription (each reconnect of the export's session), marked retained.
    let topic = format!("{base}/lock/command/unlock");
    publish(&topic, "{}", true).await;
    let _export = export(&hub, &rig, &base, |c| c.commands = true);
    let mut device = hub_device(&server, "lock", None).await;
    telemetry(&mut device, 1, "n", json!(1)).await;
    broker_acknowledged(&rig, 1).await;
    anonymous_publish(&format!("{base}/lock/command/beep"), "{}").await;
    let beep = within("the plain command", async {
        loop {
            let c = device.next_of("command").await;
            if c["name"] == "beep" {
                return c;
            }
            assert_ne!(c["name"], "unlock", "a retained command ran: {c}");
        }
    })
    .await;
    assert_eq!(beep["name"], "beep");
    assert_eq!(commands_stored(&hub, "lock").await, 1, "only the plain one");
    // The broker forgets the retained message.
    publish(&topic, "", true).await;
    server.stop().await;
}
