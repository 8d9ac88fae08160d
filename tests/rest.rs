//! REST at /api/v1 with reqwest against the simulator: every operation, SSE
//! notifications, problem+json errors, auth and rate limits, and the generated
//! OpenAPI document.

mod common;

use common::*;
use futures::StreamExt;
use gattway::auth::{sha256_hex, ApiKeyConfig, AuthConfig, Scope};
use gattway::control::ControlConfig;
use serde_json::{json, Value};

const NUS: &str = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";
const NUS_RX: &str = "6e400002-b5a3-f393-e0a9-e50e24dcca9e";
const NUS_TX: &str = "6e400003-b5a3-f393-e0a9-e50e24dcca9e";

/// The JSON body of a successful response.
async fn body(req: reqwest::RequestBuilder) -> Value {
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.unwrap()
}

async fn problem(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let rig = rig();
    let server = start_control_server(&rig.gateway, ControlConfig::default(), AuthConfig::default()).await;
    let api: Value = reqwest::get(server.url("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        api["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        api["openapi"]
    );
    let paths = api["paths"].as_object().unwrap();
    for p in [
        "/devices",
        "/scan",
        "/devices/{id}/connect",
        "/devices/{id}/disconnect",
        "/devices/{id}/services",
        "/devices/{id}/notifications",
        "/radios",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    let chars = &paths["/devices/{id}/characteristics/{service}/{characteristic}"];
    assert!(chars.get("get").is_some() && chars.get("put").is_some());
    assert!(api["components"]["schemas"].get("Problem").is_some());
    server.stop().await;
}

#[tokio::test]
async fn scan_connect_read_write_and_stream_notifications() {
    let rig = rig();
    let server = start_control_server(&rig.gateway, ControlConfig::default(), AuthConfig::default()).await;
    let http = reqwest::Client::new();
    let url = |p: &str| server.url(&format!("/api/v1{p}"));

    let found = body(
        http.post(url("/scan"))
            .json(&json!({"duration_ms": 400, "services": ["180d"]})),
    )
    .await;
    assert_eq!(found["devices"].as_array().unwrap().len(), 1);
    assert_eq!(found["devices"][0]["name"], "Gattway HRM");
    let known = body(http.get(url("/devices"))).await;
    assert!(!known["devices"].as_array().unwrap().is_empty());

    let c = body(http.post(url(&format!("/devices/{HRM}/connect")))).await;
    assert_eq!(
        (c["mtu"].as_u64(), c["state"].as_str()),
        (Some(247), Some("connected"))
    );
    let tree = body(http.get(url(&format!("/devices/{HRM}/services")))).await;
    assert_eq!(tree["services"][0]["name"], "Heart Rate");
    let v = body(http.get(url(&format!("/devices/{HRM}/characteristics/180d/2a38")))).await;
    assert_eq!(
        (v["hex"].as_str(), v["base64"].as_str()),
        (Some("01"), Some("AQ=="))
    );

    // Notifications as SSE, fed by a write to the UART.
    http.post(url(&format!("/devices/{UART}/connect")))
        .send()
        .await
        .unwrap();
    let sse = http
        .get(url(&format!(
            "/devices/{UART}/notifications?service={NUS}&characteristic={NUS_TX}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    let mut body = sse.bytes_stream();
    // The subscription exists once the response has started.
    wait_until("SSE subscribed", || rig.gateway.stats().subscribers == 1).await;
    let put = http
        .put(url(&format!("/devices/{UART}/characteristics/{NUS}/{NUS_RX}")))
        .json(&json!({"hex": "cafe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let mut text = String::new();
    within("SSE event", async {
        while !text.contains("\"hex\":\"cafe\"") {
            text.push_str(&String::from_utf8_lossy(&body.next().await.unwrap().unwrap()));
        }
    })
    .await;
    assert!(text.contains("event: notification"), "{text}");
    drop(body);

    assert_eq!(
        http.post(url(&format!("/devices/{HRM}/disconnect")))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let (status, p) = problem(
        http.get(url(&format!("/devices/{HRM}/characteristics/180d/2a38")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, p["code"].as_str()), (409, Some("NOT_CONNECTED")));
    let (status, p) = problem(
        http.post(url("/devices/AA:AA:AA:AA:AA:AA/connect"))
            .json(&json!({"timeout_ms": 200}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, p["code"].as_str()), (404, Some("DEVICE_NOT_FOUND")));
    let (status, p) = problem(
        http.get(url(&format!("/devices/{UART}/characteristics/zz/2a38")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, p["code"].as_str()), (400, Some("INVALID_PARAMS")));
    let both = http
        .put(url(&format!("/devices/{UART}/characteristics/{NUS}/{NUS_RX}")))
        .json(&json!({"hex": "00", "base64": "AA=="}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(both).await.0, 400);
    server.stop().await;
}

#[tokio::test]
async fn credentials_scopes_and_rate_limits() {
    let rig = rig();
    let key = |name: &str, scopes: Vec<Scope>| ApiKeyConfig {
        name: name.into(),
        sha256: sha256_hex(name.as_bytes()),
        scopes,
        devices: vec![],
    };
    let auth = AuthConfig {
        api_keys: vec![
            key("reader", vec![Scope::BleRead]),
            key("writer", vec![Scope::BleRead, Scope::BleWrite]),
        ],
        ..Default::default()
    };
    let control = ControlConfig {
        rate_per_principal: 0.01,
        burst_per_principal: 4.0,
        ..Default::default()
    };
    let server = start_control_server(&rig.gateway, control, auth).await;
    let http = reqwest::Client::new();
    let url = |p: &str| server.url(&format!("/api/v1{p}"));
    let (status, p) = problem(http.get(url("/devices")).send().await.unwrap()).await;
    assert_eq!((status, p["code"].as_str()), (401, Some("NOT_AUTHENTICATED")));
    http.post(url(&format!("/devices/{UART}/connect")))
        .bearer_auth("writer")
        .send()
        .await
        .unwrap();
    let write = |who: &'static str| {
        http.put(url(&format!("/devices/{UART}/characteristics/{NUS}/{NUS_RX}")))
            .bearer_auth(who)
            .json(&json!({"hex": "00"}))
            .send()
    };
    let (status, p) = problem(write("reader").await.unwrap()).await;
    assert_eq!((status, p["code"].as_str()), (403, Some("FORBIDDEN")));
    assert_eq!(write("writer").await.unwrap().status(), 204);
    // The writer's burst of 4: connect, write, now two more, then 429.
    assert_eq!(write("writer").await.unwrap().status(), 204);
    assert_eq!(write("writer").await.unwrap().status(), 204);
    let (status, p) = problem(write("writer").await.unwrap()).await;
    assert_eq!((status, p["code"].as_str()), (429, Some("RATE_LIMIT_EXCEEDED")));
    server.stop().await;
}

/// `GET /api/v1/radios` until `done` holds for the one radio, within [`WAIT`].
async fn radio_until(server: &Server, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    within(what, async {
        loop {
            let radios = body(reqwest::Client::new().get(server.url("/api/v1/radios"))).await;
            let radio = radios["radios"][0].clone();
            if done(&radio) {
                return radio;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}

#[tokio::test]
async fn radios_report_state_scanning_adverts_and_slots() {
    let rig = rig();
    let slots = rig.gateway.config().max_connections;
    let server = start_control_server(&rig.gateway, ControlConfig::default(), AuthConfig::default()).await;
    let listed = body(reqwest::Client::new().get(server.url("/api/v1/radios"))).await;
    assert_eq!(listed["radios"].as_array().unwrap().len(), 1);
    let radio = &listed["radios"][0];
    assert_eq!(
        (&radio["name"], &radio["kind"], &radio["state"], &radio["detail"]),
        (&json!("sim"), &json!("sim"), &json!("ok"), &Value::Null)
    );
    assert_eq!(
        (&radio["slots_used"], &radio["slots_free"]),
        (&json!(0), &json!(slots))
    );
    assert_eq!(radio["scanning"], false);

    // A scan: the radio scans, hears adverts, and says how long ago.
    let mut scan = rig
        .gateway
        .scan(
            gattway::ble::ScanFilter::default(),
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap();
    within("an advert", scan.next()).await.expect("a device");
    let radio = radio_until(&server, "scanning", |r| r["scanning"] == true).await;
    assert!(
        radio["last_advert_age_ms"].as_u64().is_some_and(|ms| ms < 5_000),
        "{radio}"
    );
    drop(scan);
    radio_until(&server, "the scan to stop", |r| r["scanning"] == false).await;

    // A link takes a slot.
    rig.gateway
        .connect(UART, gattway::gateway::ConnectOptions::default())
        .await
        .unwrap();
    let radio = radio_until(&server, "a slot in use", |r| r["slots_used"] == 1).await;
    assert_eq!(radio["slots_free"], json!(slots - 1));
    let metrics = server.metrics().await;
    for line in [
        "gattway_radio_up{radio=\"sim\"} 1",
        "gattway_radio_slots_used{radio=\"sim\"} 1",
        &format!("gattway_radio_slots_free{{radio=\"sim\"}} {}", slots - 1),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing from /metrics");
    }
    // The scan above was heard, and counted.
    let adverts = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gattway_radio_adverts_total{radio=\"sim\"} "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(adverts.is_some_and(|n| n > 0), "adverts counted: {adverts:?}");

    // A powered-off adapter is down, with the reason.
    rig.sim.set_powered(false);
    let radio = radio_until(&server, "the radio down", |r| r["state"] == "down").await;
    assert!(
        radio["detail"]
            .as_str()
            .is_some_and(|d| d.contains("powered off")),
        "{radio}"
    );
    let metrics = server.metrics().await;
    assert!(metrics.lines().any(|l| l == "gattway_radio_up{radio=\"sim\"} 0"));
    server.stop().await;
}

#[tokio::test]
async fn a_broadcasting_sensor_is_listed_with_its_decoded_readings_and_raw_data() {
    let rig = rig();
    let server = start_control_server(&rig.gateway, ControlConfig::default(), AuthConfig::default()).await;
    let found = body(
        reqwest::Client::new()
            .post(server.url("/api/v1/scan"))
            .json(&json!({"duration_ms": 300, "name_prefix": "Gattway BTHome"})),
    )
    .await;
    let sensor = &found["devices"][0];
    assert_eq!(sensor["id"], BTHOME, "{found}");
    let fcd2 = sensor["service_data"]["0000fcd2-0000-1000-8000-00805f9b34fb"]
        .as_str()
        .unwrap_or_else(|| panic!("{sensor}"));
    assert!(fcd2.starts_with("4000"), "raw BTHome bytes: {fcd2}");
    let reading = |key: &str| {
        find_listed(sensor, "readings", "key", key).unwrap_or_else(|| panic!("no {key} in {sensor}"))
    };
    let t = reading("temperature");
    assert_eq!(t["unit"], "°C");
    assert!((25.0..=25.4).contains(&t["value"].as_f64().unwrap()), "{t}");
    assert!((50.2..=50.6).contains(&reading("humidity")["value"].as_f64().unwrap()));
    assert!([91, 92].contains(&reading("battery")["value"].as_i64().unwrap()));
    server.stop().await;
}

#[tokio::test]
async fn an_encrypted_sensor_is_read_only_with_its_key() {
    let rig = rig();
    let server = start_control_server(&rig.gateway, ControlConfig::default(), AuthConfig::default()).await;
    let scan = || async {
        let found = body(
            reqwest::Client::new()
                .post(server.url("/api/v1/scan"))
                .json(&json!({"duration_ms": 300, "name_prefix": "Gattway BTHome Secure"})),
        )
        .await;
        found["devices"][0].clone()
    };
    let locked = scan().await;
    assert_eq!(locked["id"], BTHOME_SECURE);
    assert_eq!(locked["readings"], json!([]), "no key, no readings: {locked}");

    let keys = gattway::adverts::DeviceKeys {
        keys: vec![gattway::adverts::KeyConfig {
            address: BTHOME_SECURE.into(),
            key: BTHOME_KEY.into(),
        }],
    };
    rig.gateway
        .set_advert_keys(gattway::adverts::Keys::new(&keys, &Default::default()).unwrap());
    let open = scan().await;
    let t = find_listed(&open, "readings", "key", "temperature").expect("temperature");
    assert!((25.0..=25.4).contains(&t["value"].as_f64().unwrap()), "{open}");
    server.stop().await;
}
