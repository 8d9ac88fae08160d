//! MQTT export against the real Mosquitto: a simulated BTHome sensor reaches Home
//! Assistant's side (discovery configs and states equal to HA's own decoder's
//! reading of the same bytes), commands come from MQTT (when enabled) and their
//! status goes back, and a broker restart mid-stream loses nothing the hub
//! acknowledged.
//!
//! The shared broker is 127.0.0.1:1883 (`.ci/run` starts it); each test uses its
//! own topics. The restart test runs a private Mosquitto, with persistence, on a
//! free port.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{hub_config, rig, start_hub_server, within, JsonWs, BTHOME};
use gattway::mqtt::MqttConfig;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Topics of their own for each test, so tests (and runs) never see each other's.
fn unique(what: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("gattway-test-{}-{what}-{n}", std::process::id())
}

/// An MQTT subscriber: (topic, payload) of everything under `filters`.
async fn subscriber(
    port: u16,
    id: &str,
    filters: &[String],
    clean: bool,
) -> (AsyncClient, mpsc::UnboundedReceiver<(String, String)>) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_clean_session(clean);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(options, 100);
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let topics = filters.to_vec();
    let sub = client.clone();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for t in &topics {
                        let _ = sub.subscribe(t, QoS::AtLeastOnce).await;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(s) = subscribed_tx.take() {
                        let _ = s.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((p.topic, String::from_utf8_lossy(&p.payload).into_owned()));
                }
                Ok(_) => {}
                // The broker restarts in one test: keep polling, rumqttc reconnects.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    within("the subscription", subscribed).await.unwrap();
    (client, rx)
}

/// Home Assistant's reading of a BTHome payload (`bthome-ble`).
fn reference_readings(payload_hex: &str) -> serde_json::Map<String, Value> {
    let answer = common::reference::decode("bthome_ref.py", &[payload_hex]);
    answer[0].as_object().unwrap().clone()
}

/// Starts the export of `hub` to the broker on `port`, under `base` (and
/// discovery under `prefix`, when not empty).
fn start_export(
    hub: &gattway::hub::Hub,
    gateway: &gattway::gateway::Gateway,
    port: u16,
    base: &str,
    prefix: &str,
) -> (MqttConfig, gattway::sync::AbortOnDrop) {
    let config = MqttConfig {
        url: format!("mqtt://127.0.0.1:{port}"),
        client_id: unique("gw"),
        base_topic: base.to_string(),
        discovery_prefix: prefix.to_string(),
        // Theengs-style JSON under the base topic's name, so tests stay apart.
        theengs_gateway: base.to_string(),
        ..Default::default()
    };
    let export = gattway::mqtt::spawn(hub, gateway, &config)
        .unwrap()
        .expect("export on");
    (config, export)
}

/// A hub device on `server`, past its hello.
async fn hub_device(server: &common::Server, id: &str) -> JsonWs {
    let mut device = JsonWs::connect(&format!("ws://{}/hub?device={id}", server.addr)).await;
    device.next().await;
    device
}

fn db(name: &str) -> String {
    let path = std::env::temp_dir().join(format!("gattway-mqtt-{name}-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    format!("sqlite://{}", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_bthome_sensor_reaches_home_assistant_through_mosquitto() {
    let rig = rig();
    let hub_cfg = gattway::hub::HubConfig {
        advert_feed: true,
        ..hub_config()
    };
    let (server, hub) = start_hub_server(&rig.gateway, &db("bthome"), hub_cfg, Default::default()).await;
    let (base, prefix) = (unique("base"), unique("ha"));
    let (_sub, mut messages) = subscriber(
        1883,
        &unique("sub"),
        &[
            format!("{base}/#"),
            format!("{prefix}/#"),
            format!("home/{base}/BTtoMQTT/#"),
        ],
        true,
    )
    .await;
    let (config, _export) = start_export(&hub, &rig.gateway, 1883, &base, &prefix);

    // One packet the thermometer broadcasts, as Home Assistant reads it.
    let mut adverts = rig.gateway.advertisements();
    let payload = within("a BTHome advert", async {
        loop {
            let h = adverts.recv().await.unwrap();
            if h.advert.id.as_str() == BTHOME {
                return hex::encode(h.advert.service_data.values().next().unwrap());
            }
        }
    })
    .await;
    let reference = tokio::task::spawn_blocking(move || reference_readings(&payload))
        .await
        .unwrap();
    let packet = reference["packet_id"].as_f64().unwrap();

    // Home Assistant's side: the configs, then that packet's states.
    let state = |key: &str| format!("{base}/{BTHOME}/{key}");
    let config_topic = format!("{prefix}/sensor/gattway_C0_FF_EE_00_00_06/temperature/config");
    let mut configs: HashMap<String, Value> = HashMap::new();
    let mut states: HashMap<String, String> = HashMap::new();
    let mut in_packet = false;
    let mut theengs: Option<Value> = None;
    within("the packet's states over MQTT", async {
        while let Some((topic, payload)) = messages.recv().await {
            if topic == format!("home/{base}/BTtoMQTT/C0FFEE000006") {
                let m: Value = serde_json::from_str(&payload).unwrap();
                if m["packet_id"].as_f64() == Some(packet) {
                    theengs = Some(m);
                }
            } else if topic.ends_with("/config") {
                configs.insert(topic, serde_json::from_str(&payload).unwrap());
            } else if topic == state("packet_id") {
                in_packet = payload.parse::<f64>().ok() == Some(packet);
            } else if in_packet && topic.starts_with(&state("")) {
                states.insert(topic.rsplit('/').next().unwrap().to_string(), payload);
            }
            let complete = ["temperature", "humidity", "battery"]
                .iter()
                .all(|k| states.contains_key(*k));
            let announced = [&config_topic, &config_topic.replace("temperature", "battery")]
                .iter()
                .all(|t| configs.contains_key(*t));
            if complete && announced && theengs.is_some() {
                return;
            }
        }
    })
    .await;
    for key in ["temperature", "humidity", "battery"] {
        let ours: f64 = states[key].parse().unwrap();
        let theirs = reference[key].as_f64().unwrap();
        assert!(
            (ours - theirs).abs() < 1e-9,
            "{key}: MQTT {ours}, bthome-ble {theirs}"
        );
    }
    // The same packet in Theengs' words.
    let theengs = theengs.unwrap();
    assert_eq!(theengs["id"], BTHOME);
    assert_eq!(theengs["tempc"].as_f64(), reference["temperature"].as_f64());
    assert_eq!(theengs["hum"].as_f64(), reference["humidity"].as_f64());
    assert_eq!(theengs["batt"].as_f64(), reference["battery"].as_f64());
    let temperature = &configs[&config_topic];
    assert_eq!(temperature["device_class"], "temperature");
    assert_eq!(temperature["unit_of_measurement"], "°C");
    assert_eq!(temperature["state_class"], "measurement");
    assert_eq!(temperature["state_topic"], state("temperature"));
    assert_eq!(temperature["availability_topic"], format!("{base}/status"));
    assert_eq!(temperature["device"]["name"], "Gattway BTHome");
    let battery = &configs[&config_topic.replace("temperature", "battery")];
    assert_eq!(
        (&battery["device_class"], &battery["unit_of_measurement"]),
        (&json!("battery"), &json!("%"))
    );
    // The gateway itself, its sensors' via_device, with its availability.
    let gateway_id = format!("gattway_{}", config.client_id);
    assert_eq!(temperature["device"]["via_device"], gateway_id);
    assert!(
        configs.contains_key(&format!(
            "{prefix}/binary_sensor/{gateway_id}/connectivity/config"
        )),
        "{:?}",
        configs.keys()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_from_mqtt_reach_the_device_and_their_status_comes_back() {
    let rig = rig();
    let (server, hub) =
        start_hub_server(&rig.gateway, &db("commands"), hub_config(), Default::default()).await;
    let base = unique("base");
    let (publisher, mut messages) = subscriber(
        1883,
        &unique("sub"),
        &[format!("{base}/+/command/+/status")],
        true,
    )
    .await;
    // Commands from MQTT are opt-in (the broker is a trust boundary).
    let config = MqttConfig {
        url: "mqtt://127.0.0.1:1883".into(),
        client_id: unique("gw"),
        base_topic: base.clone(),
        discovery_prefix: String::new(),
        commands: true,
        ..Default::default()
    };
    let _export = gattway::mqtt::spawn(&hub, &rig.gateway, &config)
        .unwrap()
        .expect("export on");
    let mut device = hub_device(&server, "dev-9").await;
    // The exporter subscribes once connected: publish until the command arrives.
    let command = within("the command at the device", async {
        loop {
            publisher
                .publish(
                    format!("{base}/dev-9/command/reboot"),
                    QoS::AtLeastOnce,
                    false,
                    r#"{"delay": 2}"#,
                )
                .await
                .unwrap();
            if let Ok(c) = tokio::time::timeout(Duration::from_millis(500), device.next_of("command")).await {
                return c;
            }
        }
    })
    .await;
    assert_eq!(
        (&command["name"], &command["params"]),
        (&json!("reboot"), &json!({"delay": 2}))
    );
    device
        .send(json!({"type": "command_result", "command_id": command["command_id"], "status": "succeeded", "result": {"uptime": 0}}))
        .await;
    let status_topic = format!("{base}/dev-9/command/reboot/status");
    let final_status = within("the final status over MQTT", async {
        loop {
            let (topic, payload) = messages.recv().await.unwrap();
            let v: Value = serde_json::from_str(&payload).unwrap();
            if topic == status_topic && v["command_id"] == command["command_id"] && v["status"] == "succeeded"
            {
                return v;
            }
        }
    })
    .await;
    assert_eq!(final_status["result"], json!({"uptime": 0}));

    // Params that are not JSON: refused, and said so where the status goes.
    publisher
        .publish(
            format!("{base}/dev-9/command/reboot"),
            QoS::AtLeastOnce,
            false,
            "{not json",
        )
        .await
        .unwrap();
    let refused = within("the refusal", async {
        loop {
            let (_, payload) = messages.recv().await.unwrap();
            let v: Value = serde_json::from_str(&payload).unwrap();
            if v["status"] == "rejected" {
                return v;
            }
        }
    })
    .await;
    assert!(
        refused["error"].as_str().unwrap().contains("not JSON"),
        "{refused}"
    );
    server.stop().await;
}

/// A private Mosquitto that keeps sessions across restarts.
struct Broker {
    child: Option<tokio::process::Child>,
    port: u16,
    /// A TLS listener too, with a certificate for 127.0.0.1 signed by `dir/ca.pem`.
    tls_port: Option<u16>,
    conf: std::path::PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 it signs, in `dir`.
fn make_certificates(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=gattway test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    ]);
}

impl Broker {
    async fn start(dir: &std::path::Path) -> Broker {
        Self::start_with(dir, false).await
    }

    async fn start_with(dir: &std::path::Path, tls: bool) -> Broker {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        let mut text = format!(
            // `user root`: run as root, mosquitto would switch to its own user, who
            // cannot read this test's files.
            "user root\nper_listener_settings false\nallow_anonymous true\npersistence true\npersistence_location {}/\nlistener {port} 127.0.0.1\n",
            dir.display()
        );
        let tls_port = tls.then(|| {
            make_certificates(dir);
            let p = free_port();
            let d = dir.display();
            text.push_str(&format!(
                "listener {p} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n"
            ));
            p
        });
        std::fs::write(&conf, text).unwrap();
        let mut b = Broker {
            child: None,
            port,
            tls_port,
            conf,
        };
        b.run().await;
        b
    }

    async fn run(&mut self) {
        let binary = ["/usr/sbin/mosquitto", "mosquitto"]
            .into_iter()
            .find(|b| std::path::Path::new(b).exists())
            .unwrap_or("mosquitto");
        self.child = Some(
            tokio::process::Command::new(binary)
                .arg("-c")
                .arg(&self.conf)
                .kill_on_drop(true)
                .spawn()
                .expect("mosquitto (apt install mosquitto)"),
        );
        for port in [Some(self.port), self.tls_port].into_iter().flatten() {
            within("mosquitto to listen", async {
                while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
        }
    }

    /// SIGTERM (it saves its sessions), then started again on the same port.
    async fn restart(&mut self) {
        let mut child = self.child.take().unwrap();
        let pid = child.id().unwrap().to_string();
        tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        within("mosquitto to stop", child.wait()).await.unwrap();
        self.run().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing_the_hub_acknowledged() {
    let dir = std::env::temp_dir().join(unique("broker"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut broker = Broker::start(&dir).await;
    let rig = rig();
    let (server, hub) =
        start_hub_server(&rig.gateway, &db("restart"), hub_config(), Default::default()).await;
    let base = unique("base");
    // A subscriber whose session the broker keeps (QoS 1, not clean).
    let (_sub, mut messages) =
        subscriber(broker.port, &unique("sub"), &[format!("{base}/counter/n")], false).await;
    let _export = start_export(&hub, &rig.gateway, broker.port, &base, "");
    let mut device = hub_device(&server, "counter").await;
    const N: i64 = 300;
    let mut received = std::collections::BTreeSet::new();
    for i in 1..=N {
        device
            .send(json!({"type": "telemetry", "seq": i, "points": [{"key": "n", "value": i}]}))
            .await;
        assert_eq!(device.next_of("telemetry_ack").await["seq"], i, "acknowledged");
        if i == N / 3 {
            // Some of the stream has reached the subscriber; the broker goes away
            // and comes back while the device keeps sending.
            within("the first third at the subscriber", async {
                while received.len() < 10 {
                    let (_, v) = messages.recv().await.unwrap();
                    received.insert(v.parse::<i64>().unwrap());
                }
            })
            .await;
            broker.restart().await;
        }
    }
    within("every acknowledged point at the subscriber", async {
        while received.len() < N as usize {
            let (_, v) = messages.recv().await.unwrap();
            received.insert(v.parse::<i64>().unwrap());
        }
    })
    .await;
    assert_eq!(received, (1..=N).collect());
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_goes_to_a_tls_broker_trusting_the_configured_ca() {
    let dir = std::env::temp_dir().join(unique("tls"));
    std::fs::create_dir_all(&dir).unwrap();
    let broker = Broker::start_with(&dir, true).await;
    let rig = rig();
    let (server, hub) = start_hub_server(&rig.gateway, &db("tls"), hub_config(), Default::default()).await;
    let base = unique("base");
    // The subscriber reads on the broker's plain listener; gattway writes over TLS.
    let (_sub, mut messages) =
        subscriber(broker.port, &unique("sub"), &[format!("{base}/sensor/t")], true).await;
    let config = MqttConfig {
        url: format!("mqtts://127.0.0.1:{}", broker.tls_port.unwrap()),
        ca_file: dir.join("ca.pem").display().to_string(),
        client_id: unique("gw"),
        base_topic: base.clone(),
        discovery_prefix: String::new(),
        ..Default::default()
    };
    let _export = gattway::mqtt::spawn(&hub, &rig.gateway, &config)
        .unwrap()
        .expect("export on");
    let mut device = hub_device(&server, "sensor").await;
    device
        .send(json!({"type": "telemetry", "seq": 1, "points": [{"key": "t", "value": 21.5}]}))
        .await;
    device.next_of("telemetry_ack").await;
    let (_, value) = within("the point over TLS", messages.recv()).await.unwrap();
    assert_eq!(value, "21.5");
    // A CA file that is not one is refused at start, saying which.
    let bad = MqttConfig {
        ca_file: dir.join("mosquitto.conf").display().to_string(),
        ..config
    };
    let refused = gattway::mqtt::spawn(&hub, &rig.gateway, &bad)
        .err()
        .expect("refused");
    assert!(refused.to_string().contains("mosquitto.conf"), "{refused}");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
