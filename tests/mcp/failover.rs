//! An assistant keeps its device when the radio under its link fails over.

use crate::common::mcp::*;
use crate::common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn an_assistant_keeps_its_device_through_a_radio_failover() {
    let (gateway, near, _far) = two_radios(7, 7);
    let server = start_server(&gateway, Default::default()).await;
    let client = http_client(&server.url("/mcp"), None).await.expect("connect");
    ok(&client, "ble_scan", json!({"duration_ms": 300})).await;
    ok(&client, "ble_connect", json!({"device": HRM})).await;
    let radio_of_hrm =
        |conns: &Value| find_listed(conns, "connections", "id", HRM).map(|c| c["radio"].clone());
    let conns = ok(&client, "ble_connections", json!({})).await;
    assert_eq!(radio_of_hrm(&conns), Some(json!("near")), "{conns}");

    // Near dies: the link is re-made through far; the assistant reads on.
    let mut events = gateway.events();
    near.set_powered(false);
    reconnected(&mut events, HRM).await;
    let conns = ok(&client, "ble_connections", json!({})).await;
    assert_eq!(radio_of_hrm(&conns), Some(json!("far")), "{conns}");
    let loc = read_body_sensor_location(&client).await;
    assert_eq!(loc["decoded"], "chest");
    server.stop().await;
}
