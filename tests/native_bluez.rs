//! The native backend (btleplug on BlueZ) driven through the gateway, without
//! hardware: a private D-Bus daemon, and on it a BlueZ stand-in built on
//! python-dbusmock's bluez5 template (`tests/bluez/gattway_bluez.py`) with GATT
//! services, characteristics and descriptors. btleplug finds it through
//! `DBUS_SYSTEM_BUS_ADDRESS`. `.ci/run` installs `dbus` and `python3-dbusmock`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::bluez::FakeBluez;
use common::*;
use gattway::ble::native::NativeBackend;
use gattway::ble::{Backend, DeviceId, ScanFilter, Uuid};
use gattway::gateway::{ConnectOptions, Gateway, GatewayEvent};
use gattway::metrics::Metrics;
use tokio::process::Command;

const HRM_PATH: &str = "/org/bluez/hci0/dev_C0_FF_EE_00_00_01";
const HRM_MEASUREMENT_PATH: &str = "/org/bluez/hci0/dev_C0_FF_EE_00_00_01/service0001/char0001";
const NUS: &str = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";
const NUS_RX: &str = "6e400002-b5a3-f393-e0a9-e50e24dcca9e";
const NUS_TX: &str = "6e400003-b5a3-f393-e0a9-e50e24dcca9e";

#[tokio::test]
async fn the_gateway_drives_bluez_scan_connect_gatt_notify_and_recovers_dropped_links() {
    let bluez = FakeBluez::start().await;
    // Every native test in this binary shares this bus; this is the only one.
    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &bluez.address);
    let backend = NativeBackend::open(Some("hci0"))
        .await
        .expect("native backend on the stand-in");
    assert!(
        NativeBackend::open(Some("hci7")).await.is_err(),
        "a missing adapter is refused"
    );
    let gateway = Gateway::new(backend.clone(), fast_gateway(), Arc::new(Metrics::new())).expect("gateway");
    assert_eq!(gateway.backend_name(), "hci0");
    gateway.adapter_status().await.expect("powered");

    // Scan: the devices heard now, not the one BlueZ only remembers.
    let found = gateway
        .scan(ScanFilter::default(), Duration::from_millis(500))
        .await
        .expect("scan")
        .collect()
        .await;
    let ids: Vec<&str> = found.iter().map(|d| d.id.as_str()).collect();
    assert!(ids.contains(&HRM) && ids.contains(&UART), "{ids:?}");
    assert!(
        !ids.contains(&"C0:FF:EE:00:10:99"),
        "a cached device without RSSI is not reported"
    );
    let hrm = found.iter().find(|d| d.id.as_str() == HRM).unwrap();
    assert_eq!(hrm.name.as_deref(), Some("Gattway HRM"));
    assert!(
        (-63..=-57).contains(&hrm.rssi),
        "RSSI as advertised: {}",
        hrm.rssi
    );

    // Connect by name, discover, read, descriptors.
    let info = gateway
        .connect("Gattway HRM", ConnectOptions::default())
        .await
        .expect("connect");
    assert_eq!(info.id.as_str(), HRM);
    let id = DeviceId::new(HRM);
    let device = gateway.device(&id);
    let services = device.services().await.expect("services");
    let uuids: Vec<Uuid> = services.iter().map(|s| s.uuid).collect();
    assert_eq!(uuids.len(), 2, "{uuids:?}");
    assert!(uuids.contains(&Uuid::from_u16(0x180D)) && uuids.contains(&Uuid::from_u16(0x180F)));
    let hr = Uuid::from_u16(0x180D);
    assert_eq!(
        device
            .read(hr, Uuid::from_u16(0x2A38))
            .await
            .expect("read")
            .to_vec(),
        [0x01]
    );
    assert_eq!(
        device
            .read(Uuid::from_u16(0x180F), Uuid::from_u16(0x2A19))
            .await
            .expect("battery")
            .to_vec(),
        [85]
    );
    let cccd = device
        .read_descriptor(hr, Uuid::from_u16(0x2A37), Uuid::from_u16(0x2902))
        .await
        .expect("descriptor");
    assert_eq!(cccd.len(), 2);
    assert!(
        device.read(hr, Uuid::from_u16(0x2A37)).await.is_err(),
        "2A37 is notify-only"
    );

    // Notifications.
    let mut sub = device
        .subscribe(hr, Uuid::from_u16(0x2A37))
        .await
        .expect("subscribe");
    bluez
        .mock(
            "Notify",
            &[&format!("objpath:{HRM_MEASUREMENT_PATH}"), "array:byte:0,80"],
        )
        .await;
    assert_eq!(next_value(&mut sub).await, [0, 80]);

    // Writes, the UART's echo and scans by service: tests/backend_contract.rs.

    // The link drops: the gateway reconnects and notifications flow again.
    let mut events = gateway.events();
    bluez
        .mock("DropConnection", &[&format!("objpath:{HRM_PATH}")])
        .await;
    wait_event(
        &mut events,
        "reconnected after a drop",
        |e| matches!(e, GatewayEvent::Reconnected { id, .. } if id.as_str() == HRM),
    )
    .await;
    bluez
        .mock(
            "Notify",
            &[&format!("objpath:{HRM_MEASUREMENT_PATH}"), "array:byte:0,91"],
        )
        .await;
    assert_eq!(
        next_value(&mut sub).await,
        [0, 91],
        "notifications resume after a reconnect"
    );

    // The link drops and BlueZ never says so: the next operation finds out, and the
    // gateway reconnects.
    bluez
        .mock("DropSilently", &[&format!("objpath:{HRM_PATH}")])
        .await;
    let _ = device.read(hr, Uuid::from_u16(0x2A38)).await;
    wait_event(
        &mut events,
        "reconnected after a silent drop",
        |e| matches!(e, GatewayEvent::Reconnected { id, .. } if id.as_str() == HRM),
    )
    .await;
    assert_eq!(
        device
            .read(hr, Uuid::from_u16(0x2A38))
            .await
            .expect("read after recovery")
            .to_vec(),
        [0x01]
    );

    // A device gone out of range cannot be connected; a powered-off adapter is not ready.
    device.disconnect().await.expect("disconnect");
    bluez
        .mock("SetInRange", &[&format!("objpath:{HRM_PATH}"), "boolean:false"])
        .await;
    let refused = gateway
        .connect(
            HRM,
            ConnectOptions {
                timeout: Some(Duration::from_secs(2)),
                ..Default::default()
            },
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    bluez.mock("SetPowered", &["boolean:false"]).await;
    assert!(gateway.adapter_status().await.is_err());
    // The watchdog's last resort, through BlueZ's Adapter1.Powered: off, then on.
    within("a power cycle", backend.reset())
        .await
        .expect("power cycle through BlueZ");
    within("the adapter back", async {
        while gateway.adapter_status().await.is_err() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    gateway.shutdown().await;
}

mod mcp_over_native {
    use super::*;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::TokioChildProcess;
    use rmcp::ServiceExt;
    use serde_json::{json, Value};

    type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

    /// `gattway --backend native mcp` on the stand-in's bus (this child only).
    async fn assistant(bus: &str, extra: &[&str]) -> Client {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gattway"));
        cmd.args(["--backend", "native", "--adapter", "hci0"])
            .args(extra)
            .arg("mcp")
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
            .env("GATTWAY_LOG_LEVEL", "warn")
            .env_remove("GATTWAY_CONFIG");
        let transport = TokioChildProcess::new(cmd).expect("spawn gattway mcp");
        within("stdio handshake", ().serve(transport))
            .await
            .expect("initialize")
    }

    async fn ok(client: &Client, tool: &str, args: Value) -> Value {
        let Value::Object(map) = args else { unreachable!() };
        let r = within(
            tool,
            client.call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(map)),
        )
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert_ne!(r.is_error, Some(true), "{tool} failed: {:?}", r.content);
        r.structured_content.expect("structured result")
    }

    async fn tools(client: &Client) -> Vec<String> {
        let list = within("tools", client.list_all_tools()).await.expect("tools");
        list.into_iter().map(|t| t.name.to_string()).collect()
    }

    #[tokio::test]
    async fn an_assistant_drives_a_real_radio_and_cannot_write_until_allowed() {
        let bluez = FakeBluez::start().await;
        let client = assistant(&bluez.address, &[]).await;
        assert!(
            !tools(&client).await.contains(&"ble_write".to_string()),
            "writes are off on a real radio"
        );
        let scan = ok(&client, "ble_scan", json!({"timeout": 0.5})).await;
        let names: Vec<&str> = scan["devices"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["name"].as_str())
            .collect();
        assert!(
            names.contains(&"Gattway HRM") && names.contains(&"Gattway UART"),
            "{names:?}"
        );
        let c = ok(&client, "ble_connect", json!({"device": "Gattway HRM"})).await;
        assert_eq!((c["id"].as_str(), c["mtu"].as_u64()), (Some(HRM), Some(185)));
        let loc = ok(
            &client,
            "ble_read",
            json!({"device": HRM, "service": "180d", "characteristic": "2a38"}),
        )
        .await;
        assert_eq!(
            (loc["hex"].as_str(), loc["decoded"].as_str()),
            (Some("01"), Some("chest"))
        );
        client.cancel().await.expect("close");

        let client = assistant(&bluez.address, &["--mcp-allow-writes"]).await;
        assert!(tools(&client).await.contains(&"ble_write".to_string()));
        ok(&client, "ble_connect", json!({"device": UART})).await;
        let sub = ok(
            &client,
            "ble_subscribe",
            json!({"device": UART, "service": NUS, "characteristic": NUS_TX}),
        )
        .await;
        ok(
            &client,
            "ble_write",
            json!({"device": UART, "service": NUS, "characteristic": NUS_RX, "text": "hello radio"}),
        )
        .await;
        let echo = ok(
            &client,
            "ble_notifications",
            json!({"cursor": sub["cursor"], "timeout": 10}),
        )
        .await;
        assert_eq!(echo["notifications"][0]["text"], "hello radio");
        client.cancel().await.expect("close");
    }
}

/// `gattway doctor --json` against the stand-in: its checks by name.
async fn doctor(bluez: &FakeBluez) -> (bool, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_gattway"))
        .args(["doctor", "--json"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bluez.address)
        .env_remove("GATTWAY_CONFIG")
        // A port nobody holds, so the port check passes whatever runs here.
        .env("GATTWAY_LISTEN", "127.0.0.1:0")
        .output()
        .await
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.success(), report)
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> Vec<&'a serde_json::Value> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .collect()
}

#[tokio::test]
async fn doctor_finds_bluez_and_the_adapter_and_says_what_to_do_when_it_is_off() {
    let bluez = FakeBluez::start().await;
    let (ok, report) = doctor(&bluez).await;
    assert_eq!(check(&report, "bluez")[0]["status"], "ok", "{report}");
    assert_eq!(check(&report, "dbus_policy")[0]["status"], "ok", "{report}");
    let adapter = check(&report, "adapter");
    assert_eq!(adapter[0]["status"], "ok", "{report}");
    assert!(
        adapter[0]["detail"].as_str().unwrap().contains("hci0"),
        "{report}"
    );
    assert_eq!(
        ok,
        report["ok"].as_bool().unwrap(),
        "the exit status follows the checks"
    );

    // The adapter off: a failure, the fix, and a failing exit status.
    assert!(
        bluez
            .call(
                "/org/bluez/hci0",
                "org.freedesktop.DBus.Properties.Set",
                &[
                    "string:org.bluez.Adapter1",
                    "string:Powered",
                    "variant:boolean:false"
                ],
            )
            .await
    );
    let (ok, report) = doctor(&bluez).await;
    let adapter = check(&report, "adapter");
    assert_eq!(adapter[0]["status"], "fail", "{report}");
    assert!(
        adapter[0]["fix"].as_str().unwrap().contains("power on"),
        "{report}"
    );
    assert!(!ok && report["ok"] == false, "{report}");
}

#[tokio::test]
async fn doctor_says_when_bluetoothd_is_not_running() {
    // A bus with no BlueZ on it.
    let mut empty = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .arg(format!(
            "--address=unix:abstract=gattway-test-{}",
            uuid::Uuid::new_v4()
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(empty.stdout.take().unwrap()));
    let address = within("bus address", lines.next_line()).await.unwrap().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gattway"))
        .arg("doctor")
        .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
        .env_remove("GATTWAY_CONFIG")
        .env("GATTWAY_LISTEN", "127.0.0.1:0")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("bluetoothd is not running") && text.contains("systemctl enable --now bluetooth"),
        "{text}"
    );
}
