//! Arguments as real MCP clients send them: numbers and booleans as strings, booleans
//! as 1/0, and device names in any case. Every tool the server lists is called with
//! every numeric and boolean parameter in each such shape; the advertised schema
//! stays typed.

mod common;

use common::mcp::*;
use common::*;
use serde_json::{json, Map, Value};

/// Arguments every call of a tool needs, so that the call can succeed.
fn base_args(tool: &str) -> Value {
    let uart_service = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";
    match tool {
        "ble_connect" | "ble_disconnect" | "ble_services" => json!({"device": HRM}),
        "ble_read" | "ble_subscribe" | "ble_unsubscribe" => {
            json!({"device": HRM, "service": "180d", "characteristic": "2a37"})
        }
        "ble_read_descriptor" => {
            json!({"device": HRM, "service": "180d", "characteristic": "2a37", "descriptor": "2902"})
        }
        "ble_write_descriptor" => {
            json!({"device": HRM, "service": "180d", "characteristic": "2a37", "descriptor": "2902", "value": "0000"})
        }
        "ble_write" => json!({"device": UART, "service": uart_service,
            "characteristic": "6e400002-b5a3-f393-e0a9-e50e24dcca9e", "text": "hi"}),
        "search_packets" => json!({"hex_pattern": "00"}),
        "device_command" => json!({"device": CS108, "command": "battery_voltage"}),
        "ble_collect_start" => json!({"device": HRM, "characteristics": ["2a37"], "count": 1}),
        _ => json!({}),
    }
}

/// The string forms a client sends for a numeric parameter, by name.
fn number_as_text(param: &str) -> &'static str {
    match param {
        "timeout" => "0.3",
        "limit" => "5",
        "cursor" => "0",
        "duration" => "1000",
        "min_rssi" => "-100",
        "count" => "1",
        other => panic!("no test value for the numeric parameter {other}: add one"),
    }
}

fn types_of(schema: &Value) -> Vec<String> {
    match &schema["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts.iter().filter_map(|t| t.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

async fn call_with(client: &Client, tool: &str, param: &str, value: Value) {
    if tool == "ble_unsubscribe" {
        ok(client, "ble_subscribe", base_args("ble_subscribe")).await;
    }
    if [
        "ble_read",
        "ble_subscribe",
        "ble_collect_start",
        "ble_services",
        "ble_read_descriptor",
        "ble_write_descriptor",
    ]
    .contains(&tool)
        || tool == "ble_unsubscribe"
    {
        ok(client, "ble_connect", json!({"device": HRM})).await;
    }
    if tool == "ble_write" {
        ok(client, "ble_connect", json!({"device": UART})).await;
    }
    if tool == "device_command" {
        ok(client, "ble_connect", json!({"device": CS108})).await;
    }
    let mut args: Map<String, Value> = base_args(tool).as_object().cloned().unwrap_or_default();
    args.insert(param.to_string(), value.clone());
    let r = call(client, tool, Value::Object(args)).await;
    if param == "to_hub" && text(&r).contains("no device hub here") {
        // Taken as true: over stdio there is no hub to record into.
        assert!(
            ["true", "1"].contains(
                &value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or(value.to_string())
                    .as_str()
            ),
            "{value}"
        );
        return;
    }
    assert_ne!(
        r.is_error,
        Some(true),
        "{tool} with {param} = {value} failed: {}",
        text(&r)
    );
}

#[tokio::test]
async fn every_number_and_boolean_parameter_takes_the_shapes_clients_send() {
    let (client, _) = stdio_client(&[]).await;
    let tools = within("list tools", client.list_all_tools()).await.unwrap();
    let mut tried = 0;
    for tool in &tools {
        let properties = tool
            .input_schema
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (param, schema) in properties {
            let types = types_of(&schema);
            let shapes: Vec<Value> = if types.iter().any(|t| t == "boolean") {
                vec![json!("true"), json!("false"), json!(1), json!(0), json!("0")]
            } else if types.iter().any(|t| t == "number" || t == "integer") {
                let text = number_as_text(&param);
                vec![json!(text), json!(format!(" {text} "))]
            } else {
                continue;
            };
            // The schema an assistant reads stays typed: never "string".
            assert!(
                !types.iter().any(|t| t == "string"),
                "{} {param}: {types:?}",
                tool.name
            );
            for shape in shapes {
                call_with(&client, &tool.name, &param, shape).await;
                tried += 1;
            }
        }
    }
    // ble_scan's timeout and min_rssi, connect's timeout, write's with_response,
    // notifications' cursor, timeout and limit, the logs' and searches' limits, and
    // scan_devices' duration, at least.
    assert!(tried >= 20, "only {tried} calls: the schemas lost their types?");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_wrong_shape_is_a_clear_error_not_a_silent_default() {
    let (client, _) = stdio_client(&[]).await;
    for (tool, args, says) in [
        (
            "ble_scan",
            json!({"timeout": "soon"}),
            "\"soon\" is not a valid number",
        ),
        (
            "ble_notifications",
            json!({"limit": "-3"}),
            "\"-3\" is not a valid number",
        ),
        (
            "ble_write",
            json!({"device": UART, "service": "6e400001-b5a3-f393-e0a9-e50e24dcca9e",
                "characteristic": "6e400002-b5a3-f393-e0a9-e50e24dcca9e", "text": "x", "with_response": "perhaps"}),
            "expected true or false",
        ),
    ] {
        let mut params = rmcp::model::CallToolRequestParams::new(tool.to_string());
        params = params.with_arguments(args.as_object().cloned().unwrap());
        let said = match within(tool, client.call_tool(params)).await {
            Ok(r) => {
                assert_eq!(r.is_error, Some(true), "{tool} took it");
                text(&r)
            }
            Err(e) => e.to_string(),
        };
        assert!(said.contains(says), "{tool}: {said}");
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn device_names_match_in_any_case_and_ambiguity_lists_the_candidates() {
    let (client, _) = stdio_client(&[]).await;
    ok(&client, "ble_scan", json!({"timeout": "1"})).await;
    let connected = ok(&client, "ble_connect", json!({"device": "gattway hrm"})).await;
    assert_eq!(connected["id"], HRM, "{connected}");
    let read = ok(
        &client,
        "ble_read",
        json!({"device": "GATTWAY HRM", "service": "180d", "characteristic": "2a38"}),
    )
    .await;
    assert_eq!(read["hex"], "01");
    // An id in lower case is the same device.
    let services = ok(&client, "ble_services", json!({"device": HRM.to_lowercase()})).await;
    assert_eq!(services["device"], HRM, "{services}");
    // "gattway bt" fits the plain and the secure BTHome thermometers alike.
    let said = fails(&client, "ble_connect", json!({"device": "gattway bt"})).await;
    assert!(said.contains("matches several devices"), "{said}");
    assert!(
        said.contains("Gattway BTHome (C0:FF:EE:00:00:06)")
            && said.contains("Gattway BTHome Secure (C0:FF:EE:00:00:07)"),
        "{said}"
    );
    // A whole name wins over a longer name it begins: this is the plain one.
    let said = fails(&client, "ble_services", json!({"device": "gattway bthome"})).await;
    assert!(said.contains(BTHOME) && !said.contains("several"), "{said}");
    client.cancel().await.unwrap();
}
