//! Collectors over MCP (rmcp client, simulator): heart-rate notifications recorded
//! and summarised, the data as JSON and CSV resources, a stop, profile decoding of
//! the CS108's tag reports, bad requests, and a recording stored into the hub.

mod common;

use std::time::Duration;

use common::mcp::*;
use common::*;
use rmcp::model::{ReadResourceRequestParams, ResourceContents};
use serde_json::{json, Value};

/// Polls ble_collect_list until the collection has finished.
async fn finished(client: &Client, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = ok(client, "ble_collect_list", json!({})).await;
        let this =
            find_listed(&list, "collections", "id", id).unwrap_or_else(|| panic!("{id} not listed: {list}"));
        if this["state"] == "finished" {
            return this;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} still recording: {this}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn contents(client: &Client, uri: &str) -> Vec<(String, String)> {
    let r = within("read", client.read_resource(ReadResourceRequestParams::new(uri)))
        .await
        .unwrap();
    r.contents
        .into_iter()
        .map(|c| match c {
            ResourceContents::TextResourceContents { text, mime_type, .. } => {
                (mime_type.unwrap_or_default(), text)
            }
            other => panic!("not text: {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn heart_rate_notifications_are_recorded_and_summarised() {
    let (client, _) = stdio_client(&[]).await;
    ok(&client, "ble_connect", json!({"device": HRM})).await;
    let started = ok(
        &client,
        "ble_collect_start",
        json!({"device": "Gattway HRM", "characteristics": ["2a37"], "count": 8, "duration": "30"}),
    )
    .await;
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!(started["state"], "recording");
    assert_eq!(started["characteristics"], json!(["180d/2a37"]));
    assert_eq!(started["decode"], "sig");
    let done = finished(&client, &id).await;
    assert_eq!(done["stop_reason"], "count reached");
    assert_eq!(done["samples"], 8);
    let bpm = &done["series"]["heart_rate_measurement.bpm"];
    assert_eq!(bpm["count"], 8, "{done}");
    let (min, max, mean) = (
        bpm["min"].as_f64().unwrap(),
        bpm["max"].as_f64().unwrap(),
        bpm["mean"].as_f64().unwrap(),
    );
    assert!(
        (60.0..=160.0).contains(&min) && min <= mean && mean <= max && max <= 160.0,
        "{bpm}"
    );
    assert!(bpm["rate_per_s"].as_f64().unwrap() > 0.0, "{bpm}");

    // The data: JSON with the samples and the same statistics, and CSV.
    let uri = format!("gattway://collections/{id}");
    let listed = within("list", client.list_all_resources()).await.unwrap();
    assert!(listed.iter().any(|r| r.uri == uri), "{listed:?}");
    let parts = contents(&client, &uri).await;
    assert_eq!(parts[0].0, "application/json");
    let data: Value = serde_json::from_str(&parts[0].1).unwrap();
    assert_eq!(data["data"].as_array().unwrap().len(), 8);
    assert_eq!(data["series"], done["series"]);
    let first = &data["data"][0];
    assert_eq!(first["characteristic"], "2a37");
    assert!(
        first["values"]["heart_rate_measurement.bpm"].as_f64().is_some(),
        "{first}"
    );
    assert_eq!(parts[1].0, "text/csv");
    let csv = &parts[1].1;
    assert!(
        csv.starts_with("time_ms,time,characteristic,hex,key,value\n"),
        "{csv}"
    );
    let bpm_rows = csv
        .lines()
        .filter(|l| l.contains(",heart_rate_measurement.bpm,"))
        .count();
    assert_eq!(bpm_rows, 8, "{csv}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_recording_stops_when_asked_and_bad_requests_say_why() {
    let (client, _) = stdio_client(&[]).await;
    ok(&client, "ble_connect", json!({"device": ENV})).await;
    let started = ok(
        &client,
        "ble_collect_start",
        json!({"device": ENV, "characteristics": "2a6e, 2a6f", "duration": 600}),
    )
    .await;
    let id = started["id"].as_str().unwrap();
    let stopped = ok(&client, "ble_collect_stop", json!({"id": id})).await;
    assert_eq!(stopped["state"], "finished");
    assert_eq!(stopped["stop_reason"], "stopped");
    assert_eq!(stopped["characteristics"], json!(["181a/2a6e", "181a/2a6f"]));

    for (args, says) in [
        (
            json!({"device": ENV, "characteristics": ["2a37"]}),
            "has no characteristic 2a37",
        ),
        (
            json!({"device": ENV, "characteristics": []}),
            "characteristics is empty",
        ),
        (
            json!({"device": ENV, "characteristics": ["2a6e"], "decode": "magic"}),
            "not one of auto, sig, profile, raw",
        ),
        (
            json!({"device": ENV, "characteristics": ["2a6e"], "to_hub": "true"}),
            "no device hub here",
        ),
        (
            json!({"device": BATTERY, "characteristics": ["2a19"]}),
            "not connected",
        ),
    ] {
        let said = fails(&client, "ble_collect_start", args.clone()).await;
        assert!(said.contains(says), "{args}: {said}");
    }
    let said = fails(&client, "ble_collect_stop", json!({"id": "c999"})).await;
    assert!(said.contains("no collection"), "{said}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_cs108s_tag_reports_are_decoded_with_its_profile() {
    let (client, _) = stdio_client(&[]).await;
    ok(&client, "ble_connect", json!({"device": CS108})).await;
    ok(
        &client,
        "device_command",
        json!({"device": CS108, "command": "rfid_power_on"}),
    )
    .await;
    let started = ok(
        &client,
        "ble_collect_start",
        json!({"device": CS108, "characteristics": ["9901"], "count": 5}),
    )
    .await;
    assert_eq!(started["decode"], "profile:cs108");
    ok(
        &client,
        "device_command",
        json!({"device": CS108, "command": "inventory_start"}),
    )
    .await;
    let done = finished(&client, started["id"].as_str().unwrap()).await;
    // The inventory start's own answer is a sample too; the rest are tag reports.
    let rssi = &done["series"]["tag_report.rssi"];
    assert!(rssi["count"].as_u64().unwrap() >= 4, "{done}");
    ok(
        &client,
        "device_command",
        json!({"device": CS108, "command": "inventory_abort"}),
    )
    .await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_recording_goes_into_the_hub_as_telemetry() {
    let rig = rig();
    let db = TempDb::new();
    let (server, _hub) = start_hub_server(&rig.gateway, &db.url(), hub_config(), Default::default()).await;
    let client = http_client(&server.url("/mcp"), None).await.expect("connect");
    ok(&client, "ble_connect", json!({"device": HRM})).await;
    let started = ok(
        &client,
        "ble_collect_start",
        json!({"device": HRM, "characteristics": ["2a37"], "count": 5, "to_hub": true}),
    )
    .await;
    assert_eq!(started["to_hub"], true);
    finished(&client, started["id"].as_str().unwrap()).await;
    let url = server.url(&format!(
        "/api/v1/devices/{HRM}/telemetry?key=heart_rate_measurement.bpm&limit=100"
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let points = loop {
        let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        let points = body["points"].as_array().cloned().unwrap_or_default();
        if points.len() >= 5 || tokio::time::Instant::now() > deadline {
            break points;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(points.len(), 5, "{points:?}");
    assert!(points
        .iter()
        .all(|p| p["value"].as_f64().is_some_and(|v| (60.0..=160.0).contains(&v))));
    client.cancel().await.unwrap();
    server.stop().await;
}
