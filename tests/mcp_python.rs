//! The Python MCP SDK (PyPI `mcp` 2.3.0, in the reference venv) as gattway's client,
//! over stdio and over Streamable HTTP with a token, after the SDK's own OAuth
//! discovery steps: device_command, profiles and collections as resources, a
//! recording's summary, prompts (tests/reference/mcp_sdk_client.py).

mod common;

use common::process::serve_with_config;
use serde_json::{json, Value};

async fn sdk(args: Vec<String>) -> Value {
    let python = tokio::task::spawn_blocking(common::reference::python)
        .await
        .unwrap();
    let out = tokio::process::Command::new(python)
        .arg(common::reference::script("mcp_sdk_client.py"))
        .args(&args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "the SDK client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn check_device_knowledge(seen: &Value) {
    let tools = seen["tools"].as_array().unwrap();
    for t in [
        "device_command",
        "ble_profile",
        "ble_collect_start",
        "ble_collect_list",
        "ble_collect_stop",
    ] {
        assert!(tools.contains(&json!(t)), "{t} missing: {tools:?}");
    }
    assert_eq!(seen["battery"], json!({"value": 4080, "unit": "mV"}));
    assert!(seen["resources"]
        .as_array()
        .unwrap()
        .contains(&json!("gattway://profiles/cs108")));
    assert_eq!(seen["profile_head"], "# CSL CS108 RFID reader");
    let collection = &seen["collection"];
    assert_eq!(collection["samples"], 6, "{collection}");
    assert_eq!(collection["series"]["heart_rate_measurement.bpm"]["count"], 6);
    assert!(collection["csv_rows"].as_u64().unwrap() >= 6);
    assert_eq!(seen["prompts"], json!(["explore_device", "log_sensor"]));
}

#[tokio::test]
async fn the_python_sdk_over_stdio() {
    let seen = sdk(vec!["stdio".into(), env!("CARGO_BIN_EXE_gattway").into()]).await;
    check_device_knowledge(&seen);
}

#[tokio::test]
async fn the_python_sdk_over_http_after_its_oauth_discovery() {
    let served = serve_with_config(
        "[auth]\njwt_secret = \"a-test-secret-of-some-length\"\njwt_audience = \"https://gattway.test/mcp\"\n\
         authorization_servers = [\"https://auth.example\"]\n",
    )
    .await;
    let base = served.base.clone();
    let token = served.token("sdk", "ble:read,ble:write").await;

    let seen = sdk(vec!["http".into(), format!("{base}/mcp"), token]).await;
    assert_eq!(seen["unauthorised_status"], 401);
    assert_eq!(
        seen["resource_metadata"],
        format!("{base}/.well-known/oauth-protected-resource/mcp")
    );
    assert_eq!(seen["metadata"]["resource"], "https://gattway.test/mcp");
    assert_eq!(
        seen["metadata"]["authorization_servers"],
        json!(["https://auth.example"])
    );
    check_device_knowledge(&seen);
}
