//! gattway as an ESPHome Bluetooth proxy, driven by Home Assistant's own client
//! (`aioesphomeapi` from PyPI, in the reference venv): device info with the proxy's
//! feature flags, raw advertisements, connect, GATT services, reads, notifications,
//! connection slots and disconnect, in plaintext and over Noise; a wrong key and a
//! missing one are refused as an ESP32 refuses them.

mod common;

use std::sync::Arc;

use common::{find_listed, rig, HRM};
use gattway::esphome_proxy::{self, EsphomeConfig};
use gattway::gateway::Gateway;
use gattway::metrics::Metrics;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A proxy over `gateway` on a free loopback port; stops when the token drops.
async fn start_proxy(gateway: &Gateway, noise_psk: &str) -> (u16, tokio_util::sync::DropGuard) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    let config = EsphomeConfig {
        listen: format!("127.0.0.1:{port}"),
        noise_psk: noise_psk.into(),
        name: "gattway-test".into(),
        ..Default::default()
    };
    tokio::spawn(esphome_proxy::serve(
        listener,
        gateway.clone(),
        config,
        stop.clone(),
    ));
    (port, stop.drop_guard())
}

/// Runs the reference client against the proxy; its JSON report.
async fn home_assistant(port: u16, device: &str, key: Option<&str>) -> Value {
    let python = tokio::task::spawn_blocking(common::reference::python)
        .await
        .unwrap();
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(common::reference::script("esphome_client.py"))
        .args(["127.0.0.1", &port.to_string(), device])
        .args(key)
        .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(90), cmd.output())
        .await
        .expect("the reference client finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|_| {
        panic!(
            "no report; stdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// What a user sees of the proxy is what the simulated heart-rate monitor is.
fn assert_drove_the_heart_rate_monitor(report: &Value) {
    assert!(report.get("error").is_none(), "{report}");
    assert_eq!(report["name"], "gattway-test");
    assert_eq!(report["esphome_version"], "2026.6.2");
    assert_eq!(report["active"], true, "{report}");
    assert_eq!(report["raw"], true, "{report}");
    // Its raw advertisement, as on the air: flags, then the complete name.
    let data = report["heard"][HRM]["data"].as_str().unwrap();
    assert!(data.starts_with("020106"), "{data}");
    assert!(data.contains(&hex::encode("Gattway HRM")), "{data}");
    let services: Vec<&str> = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["uuid"].as_str().unwrap())
        .collect();
    assert!(
        services.contains(&"0000180d-0000-1000-8000-00805f9b34fb"),
        "{services:?}"
    );
    // Body sensor location: chest (1); the device information strings.
    assert_eq!(report["reads"]["00002a38-0000-1000-8000-00805f9b34fb"], "01");
    assert_eq!(
        report["reads"]["00002a24-0000-1000-8000-00805f9b34fb"],
        hex::encode("HRM-1")
    );
    // A heart-rate measurement: flags, then a rate in a plausible range.
    let notification = hex::decode(report["notification"].as_str().unwrap()).unwrap();
    assert!((40..=200).contains(&notification[1]), "{notification:?}");
    // Connected with the MTU the device negotiates, then cleanly disconnected.
    let states = report["states"].as_array().unwrap();
    assert_eq!(states.first().unwrap()[0], true, "{states:?}");
    assert!(states.first().unwrap()[1].as_u64().unwrap() >= 23);
    assert_eq!(states.last().unwrap()[0], false, "{states:?}");
    // Slots: all free at first, one taken while connected.
    let slots = report["slots"].as_array().unwrap();
    let limit = slots[0][1].as_u64().unwrap();
    assert!(
        slots.iter().any(|s| s[0].as_u64() == Some(limit - 1)),
        "{slots:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistants_client_scans_connects_reads_and_subscribes_through_the_proxy() {
    let rig = rig();
    let (port, _stop) = start_proxy(&rig.gateway, "").await;
    let report = home_assistant(port, HRM, None).await;
    assert_drove_the_heart_rate_monitor(&report);
    // The client's link is gone with its disconnect.
    common::wait_until("the link to close", || rig.gateway.connections().is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_proxy_serves_the_right_key_and_refuses_a_wrong_or_missing_one() {
    let key = "px7tsbK3C7bpXHr2OevEV2ZMg/FrNBw2+O2pNPbedtA=";
    let rig = rig();
    let (port, _stop) = start_proxy(&rig.gateway, key).await;
    assert_drove_the_heart_rate_monitor(&home_assistant(port, HRM, Some(key)).await);
    let wrong = home_assistant(port, HRM, Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")).await;
    assert_eq!(wrong["error"], "InvalidEncryptionKeyAPIError", "{wrong}");
    let plaintext = home_assistant(port, HRM, None).await;
    assert_eq!(plaintext["error"], "RequiresEncryptionAPIError", "{plaintext}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_proxy_tells_an_encrypting_client_so() {
    let rig = rig();
    let (port, _stop) = start_proxy(&rig.gateway, "").await;
    let report = home_assistant(port, HRM, Some("px7tsbK3C7bpXHr2OevEV2ZMg/FrNBw2+O2pNPbedtA=")).await;
    assert_eq!(report["error"], "EncryptionPlaintextAPIError", "{report}");
}

/// The address in an "ESPHome Bluetooth proxy on ADDR" line.
fn proxy_addr(line: &str) -> String {
    let rest = line
        .split("ESPHome Bluetooth proxy on ")
        .nth(1)
        .expect("proxy line");
    rest.split(['"', ' ']).next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gattway_uses_another_as_an_encrypted_remote_radio() {
    use common::process::{get_json, listening_addr, wait_for_line};
    let key = "px7tsbK3C7bpXHr2OevEV2ZMg/FrNBw2+O2pNPbedtA=";
    // Upstairs: the simulator, served as a proxy.
    let mut upstairs = common::process::gattway();
    upstairs
        .args(["--backend", "sim", "serve", "--listen", "127.0.0.1:0"])
        .env("GATTWAY_ESPHOME_LISTEN", "127.0.0.1:0")
        .env("GATTWAY_ESPHOME_NOISE_PSK", key)
        .env("GATTWAY_HUB_SIM_FEED", "false");
    let (mut upstairs, mut lines) = common::process::reading_stderr(upstairs);
    let proxy = proxy_addr(&wait_for_line(&mut lines, "ESPHome Bluetooth proxy on").await);

    // Downstairs: no radio of its own, the proxy upstairs as one.
    let dir = std::env::temp_dir().join(format!("gattway-esphome-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("radios.toml");
    std::fs::write(
        &file,
        format!("[[radios]]\nname = \"upstairs\"\nkind = \"esphome\"\naddress = \"{proxy}\"\nnoise_psk = \"{key}\"\n"),
    )
    .unwrap();
    let (_downstairs, mut lines) = common::process::spawn_reading_stderr(&[
        "--config",
        file.to_str().unwrap(),
        "serve",
        "--listen",
        "127.0.0.1:0",
    ]);
    let addr = listening_addr(&wait_for_line(&mut lines, "listening on http://").await);
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}/api/v1{path}");

    // Scanning through the proxy finds the simulated heart-rate monitor, by name.
    let scan: Value = http
        .post(url("/scan"))
        .json(&serde_json::json!({"duration_ms": 3000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hrm = find_listed(&scan, "devices", "id", HRM).unwrap_or_else(|| panic!("{scan}"));
    assert_eq!(hrm["name"], "Gattway HRM");
    assert_eq!(hrm["radio"], "upstairs");

    // Connect, list, read, as if the radio were local.
    let connected = http
        .post(url(&format!("/devices/{HRM}/connect")))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert!(
        connected.status().is_success(),
        "{}",
        connected.text().await.unwrap()
    );
    let services = get_json(&url(&format!("/devices/{HRM}/services"))).await;
    assert!(services.to_string().contains("0000180d"), "{services}");
    let location = get_json(&url(&format!("/devices/{HRM}/characteristics/180d/2a38"))).await;
    assert_eq!(location["hex"], "01", "{location}");
    let radios = get_json(&url("/radios")).await;
    let radio = &radios["radios"][0];
    assert_eq!(radio["kind"], "esphome", "{radios}");
    assert_eq!(radio["state"], "ok", "{radios}");
    assert_eq!(radio["slots_used"], 1, "{radios}");

    upstairs.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A gateway over one simulated radio of `world`, as a proxy would have.
fn proxy_gateway(
    world: &std::sync::Arc<gattway::ble::sim::SimBackend>,
    name: &str,
    offset_db: i16,
) -> Gateway {
    let radio = world.radio(name, offset_db);
    let spec = gattway::gateway::RadioSpec {
        name: name.into(),
        backend: radio,
        slots: 3,
    };
    Gateway::with_radios(vec![spec], common::fast_gateway(), Arc::new(Metrics::new())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_route_to_the_stronger_and_fail_over_to_the_other_mid_session() {
    use gattway::ble::esphome::EsphomeRadio;
    use gattway::gateway::{RadioSpec, SubscriptionEvent};
    // Two proxies in one simulated house: the kitchen's hears the devices 20 dB
    // louder than the garage's.
    let world = gattway::ble::sim::SimBackend::new(&common::sim_config(100.0, vec![])).unwrap();
    let (kitchen, garage) = (proxy_gateway(&world, "k", 0), proxy_gateway(&world, "g", -20));
    let (kitchen_port, kitchen_stop) = start_proxy(&kitchen, "").await;
    let (garage_port, _garage_stop) = start_proxy(&garage, "").await;
    let remote = |name: &str, port: u16| RadioSpec {
        name: name.into(),
        backend: EsphomeRadio::open(name, &format!("127.0.0.1:{port}"), None).unwrap(),
        slots: 3,
    };
    let gateway = Gateway::with_radios(
        vec![remote("kitchen", kitchen_port), remote("garage", garage_port)],
        common::fast_gateway(),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    common::within("both proxies", async {
        while gateway.adapter_status().await.is_err()
            || gateway
                .radios()
                .await
                .iter()
                .any(|r| r.state != gattway::gateway::RadioState::Ok)
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let _scan = gateway
        .scan(Default::default(), std::time::Duration::from_secs(60))
        .await
        .unwrap();
    common::within("both proxies hear the monitor", async {
        while gateway
            .radios()
            .await
            .iter()
            .any(|r| r.last_advert_age_ms.is_none())
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;

    // The link goes through the kitchen, which hears the monitor better.
    gateway.connect(HRM, Default::default()).await.unwrap();
    assert_eq!(common::link_radio(&gateway, HRM).as_deref(), Some("kitchen"));
    let id = gattway::ble::DeviceId::new(HRM);
    let hr = gattway::ble::Uuid::from_u16(0x180d);
    let measurement = gattway::ble::Uuid::from_u16(0x2a37);
    let mut sub = gateway.device(&id).subscribe(hr, measurement).await.unwrap();
    common::next_value(&mut sub).await;

    // The kitchen's proxy goes away mid-session: the link moves to the garage, the
    // subscriber keeps receiving, and sees no error.
    let mut events = gateway.events();
    drop(kitchen_stop);
    common::reconnected(&mut events, HRM).await;
    assert_eq!(common::link_radio(&gateway, HRM).as_deref(), Some("garage"));
    for _ in 0..3 {
        match common::within("a notification through the garage", sub.recv()).await {
            Some(SubscriptionEvent::Notification(n)) => assert_eq!(n.characteristic, measurement),
            other => panic!("the subscription saw {other:?}"),
        }
    }
    // The kitchen is down and says so; only the garage scans.
    let radios = gateway.radios().await;
    let status = |name: &str| radios.iter().find(|r| r.name == name).unwrap().clone();
    let (kitchen_status, garage_status) = (status("kitchen"), status("garage"));
    assert!(garage_status.scanning && !kitchen_status.scanning, "{radios:?}");
    assert_eq!(
        kitchen_status.state,
        gattway::gateway::RadioState::Down,
        "{kitchen_status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_heard_through_a_proxy_is_kept_longer_than_one_heard_locally() {
    use gattway::ble::sim::{catalog, SimBackend, SimConfig};
    use gattway::ble::DeviceId;
    use gattway::gateway::{GatewayConfig, RadioSpec};
    // A local radio hearing one tag, and a proxy hearing the built-in devices.
    let mut tag = catalog::battery_tag();
    tag.address = "AA:00:00:00:00:01".into();
    let local = SimBackend::new(&SimConfig {
        time_scale: 100.0,
        builtin: false,
        devices: vec![tag],
        seed: Some(7),
    })
    .unwrap();
    let upstream = common::rig();
    let (port, _stop) = start_proxy(&upstream.gateway, "").await;
    let proxy =
        gattway::ble::esphome::EsphomeRadio::open("proxy", &format!("127.0.0.1:{port}"), None).unwrap();
    let config = GatewayConfig {
        device_expiry_ms: 200,
        proxy_device_expiry_ms: 60_000,
        ..common::fast_gateway()
    };
    let radios = vec![
        RadioSpec {
            name: "local".into(),
            backend: local,
            slots: 3,
        },
        RadioSpec {
            name: "proxy".into(),
            backend: proxy,
            slots: 3,
        },
    ];
    let gateway = Gateway::with_radios(radios, config, Arc::new(Metrics::new())).unwrap();
    common::within("the proxy's session", async {
        while gateway.adapter_status().await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let known = |id: &str| gateway.known_devices().iter().any(|d| d.id.as_str() == id);
    let scan = gateway
        .scan(Default::default(), std::time::Duration::from_secs(60))
        .await
        .unwrap();
    common::wait_until("both heard", || known("AA:00:00:00:00:01") && known(HRM)).await;
    let hrm = gateway
        .known_devices()
        .into_iter()
        .find(|d| d.id == DeviceId::new(HRM))
        .unwrap();
    assert_eq!(hrm.radio.as_deref(), Some("proxy"));
    drop(scan);
    // Nothing is heard any more: the local tag goes after 200 ms; what the proxy
    // heard stays for its own, longer expiry.
    let silent_for = |id: &str, ms: u128| {
        gateway
            .known_devices()
            .iter()
            .any(|d| d.id.as_str() == id && d.last_seen.elapsed().is_ok_and(|e| e.as_millis() > ms))
    };
    common::wait_until(
        "the local tag forgotten, the monitor silent for 3 local expiries",
        || !known("AA:00:00:00:00:01") && (silent_for(HRM, 600) || !known(HRM)),
    )
    .await;
    assert!(
        known(HRM),
        "a device heard through the proxy was forgotten with the local ones"
    );
}
