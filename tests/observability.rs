//! Operators' view: `/metrics` moves by exactly what happened, parses as Prometheus
//! text, and never labels by device; `/readyz` follows the adapter; `/health` keeps
//! the ble-mcp-test shape; the packet log is on REST.

mod common;

use std::collections::HashMap;

use common::*;
use futures::{SinkExt, StreamExt};
use gattway::ble::{well_known as wk, DeviceId, ScanFilter};
use gattway::error::ErrorKind;
use gattway::gateway::ConnectOptions;
use rmcp::model::CallToolRequestParams;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Every sample of a scrape, keyed by name and sorted labels; the whole text must
/// parse as Prometheus exposition format.
async fn scrape(server: &Server) -> HashMap<String, f64> {
    let resp = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let text = resp.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let mut out = HashMap::new();
    for s in parsed.samples {
        for (k, v) in s.labels.iter() {
            assert!(!v.contains("C0:FF:EE"), "label {k}={v} carries a device id");
        }
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let key = if labels.is_empty() {
            s.metric.clone()
        } else {
            format!("{}{{{}}}", s.metric, labels.join(","))
        };
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => continue,
        };
        out.insert(key, value);
    }
    // Histograms: keep their _count and _sum samples, which the parser folds.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some((name, v)) = line.rsplit_once(' ') {
            if name.ends_with("_count") || name.ends_with("_sum") {
                out.insert(name.to_string(), v.parse().unwrap());
            }
        }
    }
    out
}

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    after
        .get(key)
        .copied()
        .unwrap_or_else(|| panic!("{key} not scraped; have {:?}", after.keys().collect::<Vec<_>>()))
        - before.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move_by_what_happened() {
    let rig = rig();
    let server = start_server(&rig.gateway, Default::default()).await;
    let before = scrape(&server).await;
    for name in [
        "ble_devices_found_total",
        "ble_connection_success_total",
        "ble_connection_failure_total",
        "ble_transfer_rate_bytes_per_second",
        "ble_memory_usage_bytes",
        "ble_cpu_usage_percent",
        "gattway_connected_devices",
        "gattway_runtime_workers",
        "gattway_runtime_worker_busy_ratio",
        "gattway_runtime_scheduling_delay_seconds",
        "ble_discovery_time_seconds_count",
        "ble_connection_time_seconds_count",
        "ble_transfer_latency_seconds_count",
    ] {
        assert!(before.contains_key(name), "{name} missing");
    }
    assert!(before["ble_memory_usage_bytes"] > 1e6);

    // A scan that hears all eight devices.
    let found = rig.scan(ScanFilter::default(), 400).await;
    assert_eq!(found.len(), 8);
    // Two connects that succeed, one that fails after its retries.
    rig.gateway.connect(HRM, ConnectOptions::default()).await.unwrap();
    rig.gateway.connect(ENV, ConnectOptions::default()).await.unwrap();
    rig.control(BATTERY).fail_next_connects(10);
    rig.gateway
        .connect(BATTERY, ConnectOptions::default())
        .await
        .unwrap_err();
    // Three reads.
    let hrm = rig.gateway.device(&DeviceId::new(HRM));
    for _ in 0..3 {
        hrm.read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
            .await
            .unwrap();
    }
    // A bridge client: connected + keepalive_ack out, keepalive in.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/?service=9800&write=9900&notify=9901&device=CS108",
        server.addr
    ))
    .await
    .unwrap();
    ws.next().await.unwrap().unwrap();
    ws.send(Message::Text(json!({"type": "keepalive"}).to_string().into()))
        .await
        .unwrap();
    ws.next().await.unwrap().unwrap();
    // MCP: two good calls and a tool error.
    let client = ()
        .serve(rmcp::transport::StreamableHttpClientTransport::from_uri(
            server.url("/mcp"),
        ))
        .await
        .unwrap();
    for _ in 0..2 {
        client
            .call_tool(CallToolRequestParams::new("status"))
            .await
            .unwrap();
    }
    let bad = client
        .call_tool(
            CallToolRequestParams::new("ble_read").with_arguments(
                json!({"device": HRM, "service": "nope", "characteristic": "2a38"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(bad.is_error, Some(true));

    let after = scrape(&server).await;
    assert_eq!(delta(&before, &after, "ble_devices_found_total"), 8.0);
    assert_eq!(delta(&before, &after, "ble_discovery_time_seconds_count"), 8.0);
    assert_eq!(
        delta(&before, &after, "ble_connection_success_total"),
        3.0,
        "HRM, Env and the bridge's reader"
    );
    assert_eq!(delta(&before, &after, "ble_connection_time_seconds_count"), 3.0);
    assert_eq!(delta(&before, &after, "ble_connection_failure_total"), 1.0);
    // Three reads; the bridge wrote nothing.
    assert_eq!(delta(&before, &after, "ble_transfer_latency_seconds_count"), 3.0);
    assert_eq!(after["gattway_connected_devices"], 3.0);
    assert_eq!(after["gattway_ws_connections{endpoint=bridge}"], 1.0);
    assert_eq!(
        after["gattway_messages_total{direction=received,endpoint=bridge}"],
        1.0
    );
    assert_eq!(
        after["gattway_messages_total{direction=sent,endpoint=bridge}"],
        2.0
    );
    assert_eq!(after["gattway_mcp_tool_calls_total{outcome=ok,tool=status}"], 2.0);
    assert_eq!(
        after["gattway_mcp_tool_calls_total{outcome=error,tool=ble_read}"],
        1.0
    );
    assert_eq!(after["gattway_mcp_tool_duration_seconds_count{tool=status}"], 2.0);
    assert!(after["gattway_runtime_alive_tasks"] > 0.0);

    // The socket closing takes the gauge back down.
    ws.close(None).await.unwrap();
    drop(ws);
    let mut gauge = 1.0;
    within("ws gauge back to 0", async {
        while gauge != 0.0 {
            gauge = scrape(&server).await["gattway_ws_connections{endpoint=bridge}"];
        }
    })
    .await;
    client.cancel().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn readyz_follows_the_adapter() {
    let rig = rig();
    let server = start_server(&rig.gateway, Default::default()).await;
    let get = || async {
        let r = reqwest::get(server.url("/readyz")).await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let (code, body) = get().await;
    assert_eq!((code, body["status"].as_str()), (200, Some("ready")));
    assert_eq!(body["checks"]["adapter"]["ok"], true);
    rig.sim.set_powered(false);
    let (code, body) = get().await;
    assert_eq!((code, body["status"].as_str()), (503, Some("unready")));
    assert!(body["checks"]["adapter"]["detail"]
        .as_str()
        .unwrap()
        .contains("powered off"));
    // And the radio really is gone.
    let err = rig
        .gateway
        .connect(HRM, ConnectOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RadioUnavailable);
    rig.sim.set_powered(true);
    assert_eq!(get().await.0, 200);
    assert_eq!(reqwest::get(server.url("/healthz")).await.unwrap().status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn health_keeps_the_ble_mcp_test_shape() {
    let rig = rig();
    let server = start_server(&rig.gateway, Default::default()).await;
    let h: Value = reqwest::get(server.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    assert!(humantime::parse_rfc3339(h["timestamp"].as_str().unwrap()).is_ok());
    assert!(!h["hostname"].as_str().unwrap().is_empty());
    assert_eq!(h["bridge"]["sessions"], 0);
    assert_eq!(h["bridge"]["state"], "IDLE");
    server.stop().await;
}

#[tokio::test]
async fn the_packet_log_is_on_rest() {
    let rig = rig();
    let server = start_server(&rig.gateway, Default::default()).await;
    rig.gateway
        .connect(UART, ConnectOptions::default())
        .await
        .unwrap();
    let dev = rig.gateway.device(&DeviceId::new(UART));
    let mut echo = dev.subscribe(wk::NUS_SERVICE, wk::NUS_TX).await.unwrap();
    dev.write(
        wk::NUS_SERVICE,
        wk::NUS_RX,
        &b"\xCA\xFE"[..],
        gattway::ble::WriteKind::WithResponse,
    )
    .await
    .unwrap();
    within("echo", echo.recv()).await.unwrap();
    let page: Value = reqwest::get(server.url("/api/v1/packets?since=1m&filter=CA%20FE"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let packets = page["packets"].as_array().unwrap();
    assert_eq!(packets.len(), 2, "{page}");
    assert_eq!(packets[0]["direction"], "TX");
    assert_eq!(packets[1]["direction"], "RX");
    assert_eq!(packets[0]["hex"], "CA FE");
    assert_eq!(
        packets[0]["characteristic"],
        "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
    );
    let only_rx: Value = reqwest::get(server.url("/api/v1/packets?filter=rx&limit=1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(only_rx["packets"].as_array().unwrap().len(), 1);
    let bad = reqwest::get(server.url("/api/v1/packets?since=whenever"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
    server.stop().await;
}

#[test]
fn the_grafana_dashboard_only_uses_metrics_that_exist() {
    let dash: Value =
        serde_json::from_str(include_str!("../docs/grafana-dashboard.json")).expect("valid JSON");
    let metrics = gattway::metrics::Metrics::new();
    // Tool series exist once a tool has been called.
    let tool = gattway::metrics::ToolLabels {
        tool: "status".into(),
    };
    metrics.mcp_tool_duration.get_or_create(&tool).observe(0.001);
    metrics
        .mcp_tool_calls
        .get_or_create(&gattway::metrics::ToolOutcomeLabels {
            tool: "status".into(),
            outcome: "ok",
        })
        .inc();
    // Radio series exist once the gateway has a radio.
    metrics.set_radio("sim", true, true, (0, 8), Some(1.0));
    metrics.radio_adverts("sim").inc();
    metrics.radio_recovery("sim", "restart_scan", true);
    let rendered = metrics.render(0, 0);
    let mut exprs = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            exprs += 1;
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("ble_") || w.starts_with("gattway_"))
                .collect();
            assert!(!names.is_empty(), "{expr}");
            for n in names {
                let base = n
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_count")
                    .trim_end_matches("_sum");
                assert!(
                    rendered.contains(&format!("# TYPE {base} "))
                        || rendered.contains(&format!("# TYPE {} ", base.trim_end_matches("_total"))),
                    "dashboard uses {n}, which gattway does not export"
                );
            }
        }
    }
    assert!(exprs >= 10);
}

#[tokio::test]
async fn a_plain_get_of_the_root_is_the_index_page() {
    let rig = rig();
    let server = start_server(&rig.gateway, Default::default()).await;
    rig.gateway.connect(HRM, ConnectOptions::default()).await.unwrap();
    let resp = reqwest::get(server.url("/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = resp.text().await.unwrap();
    for endpoint in [
        "/mcp",
        "/ws",
        "/api/v1/openapi.json",
        "/metrics",
        "/readyz",
        "service=&amp;write=",
    ] {
        assert!(html.contains(endpoint), "{endpoint} missing");
    }
    assert!(html.contains("Gattway HRM"), "open links are listed");
    // Each radio, with its state and the slot the link takes.
    assert!(html.contains("<h2>Radios</h2>"), "{html}");
    let slots = rig.gateway.config().max_connections;
    assert!(html.contains("<td>sim</td><td>sim</td><td>Ok</td>"), "{html}");
    assert!(html.contains(&format!("<td>1/{slots}</td>")), "{html}");
    server.stop().await;
}
