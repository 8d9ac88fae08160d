//! Device knowledge over MCP, through the rmcp client against the simulator:
//! profiles as resources, `ble_profile`, `device_command` on the simulated CS108
//! reader, UART and heart-rate monitor, a profile folder that adds and replaces
//! profiles, prompts, and `gattway profile check`.

mod common;

use common::mcp::*;
use common::*;
use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams, ResourceContents};
use serde_json::{json, Value};

async fn read_resource(client: &Client, uri: &str) -> Result<String, String> {
    let r = within(
        "read resource",
        client.read_resource(ReadResourceRequestParams::new(uri)),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(match &r.contents[0] {
        ResourceContents::TextResourceContents { text, .. } => text.clone(),
        other => panic!("{uri}: not text: {other:?}"),
    })
}

#[tokio::test]
async fn profiles_are_resources_an_assistant_can_list_and_read() {
    let (client, _) = stdio_client(&[]).await;
    let resources = within("list resources", client.list_all_resources())
        .await
        .unwrap();
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    for name in [
        "cs108",
        "heart-rate",
        "nordic-uart",
        "environmental-sensing",
        "battery",
        "bthome",
    ] {
        assert!(
            uris.contains(&format!("gattway://profiles/{name}").as_str()),
            "{uris:?}"
        );
    }
    assert!(resources
        .iter()
        .all(|r| r.mime_type.as_deref() == Some("text/markdown")));
    let cs108 = read_resource(&client, "gattway://profiles/cs108").await.unwrap();
    assert!(cs108.starts_with("# CSL CS108 RFID reader"), "{cs108}");
    for needle in [
        "### `battery_voltage`",
        "field `battery`: U16be at byte 10 (mV)",
        "tag_report",
        "CRC-16/CCITT-FALSE",
    ] {
        assert!(cs108.contains(needle), "{needle} missing from:\n{cs108}");
    }
    let missing = read_resource(&client, "gattway://profiles/nope")
        .await
        .unwrap_err();
    assert!(
        missing.contains("no resource gattway://profiles/nope"),
        "{missing}"
    );
    let templates = client.list_all_resource_templates().await.unwrap();
    assert_eq!(templates[0].uri_template, "gattway://profiles/{name}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_cs108_battery_command_returns_millivolts() {
    let (client, _) = stdio_client(&[]).await;
    ok(&client, "ble_connect", json!({"device": "CS108"})).await;
    let profile = ok(&client, "ble_profile", json!({"device": CS108})).await;
    assert_eq!(profile["profiles"][0]["name"], "cs108", "{profile}");
    let commands: Vec<&str> = profile["profiles"][0]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        commands.contains(&"battery_voltage") && commands.contains(&"inventory_start"),
        "{commands:?}"
    );

    let battery = ok(
        &client,
        "device_command",
        json!({"device": "CS108", "command": "battery_voltage"}),
    )
    .await;
    assert_eq!(battery["request"], "a7b302d982370000a000");
    assert_eq!(
        battery["fields"]["battery"],
        json!({"value": 4080, "unit": "mV"}),
        "{battery}"
    );
    assert!(battery["answer"].as_str().unwrap().starts_with("a7b304d9829e"));

    // A typed parameter, given as hex text, into a register read and back.
    let reg = ok(
        &client,
        "device_command",
        json!({"device": CS108, "command": "register_read", "params": {"register": "0x0706"}}),
    )
    .await;
    assert_eq!(reg["request"], "a7b30ac28237000080020001060700000000");
    assert_eq!(reg["fields"]["register"]["value"], 0x0706, "{reg}");
    // Params as a JSON string, as some clients send objects.
    let power = ok(
        &client,
        "device_command",
        json!({"device": CS108, "command": "rfid_power_level", "params": "{\"power\": \"300\"}"}),
    )
    .await;
    assert_eq!(power["fields"]["status"]["value"], 0);

    let too_strong = fails(
        &client,
        "device_command",
        json!({"device": CS108, "command": "rfid_power_level", "params": {"power": 301}}),
    )
    .await;
    assert!(too_strong.contains("301 is outside 0..=300"), "{too_strong}");
    let missing = fails(
        &client,
        "device_command",
        json!({"device": CS108, "command": "register_read"}),
    )
    .await;
    assert!(missing.contains("\"register\" is required"), "{missing}");
    let unknown = fails(
        &client,
        "device_command",
        json!({"device": CS108, "command": "self_destruct"}),
    )
    .await;
    assert!(
        unknown.contains("has no command \"self_destruct\"") && unknown.contains("battery_voltage"),
        "{unknown}"
    );

    // The inventory streams tag reports until aborted; the abort's answer is found
    // among them.
    ok(
        &client,
        "device_command",
        json!({"device": CS108, "command": "rfid_power_on"}),
    )
    .await;
    ok(
        &client,
        "device_command",
        json!({"device": CS108, "command": "inventory_start"}),
    )
    .await;
    let abort = ok(
        &client,
        "device_command",
        json!({"device": CS108, "command": "inventory_abort"}),
    )
    .await;
    assert!(abort["answer"].as_str().unwrap().contains("81004003"), "{abort}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn commands_without_answers_and_text_commands() {
    let (client, _) = stdio_client(&[]).await;
    ok(&client, "ble_connect", json!({"device": UART})).await;
    let echo = ok(
        &client,
        "device_command",
        json!({"device": UART, "command": "send_text", "params": {"text": "hello"}}),
    )
    .await;
    assert_eq!(echo["fields"]["reply"]["value"], "hello", "{echo}");
    ok(&client, "ble_connect", json!({"device": HRM})).await;
    let reset = ok(
        &client,
        "device_command",
        json!({"device": HRM, "command": "reset_energy_expended"}),
    )
    .await;
    assert_eq!(reset["request"], "01");
    assert_eq!(reset["answer"], Value::Null);
    // Not connected: the assistant is told what to do.
    let said = fails(
        &client,
        "device_command",
        json!({"device": BATTERY, "command": "battery_voltage"}),
    )
    .await;
    assert!(
        said.contains("is not connected: call ble_connect first"),
        "{said}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_profiles_folder_adds_and_replaces_profiles_and_error_frames_are_errors() {
    let dir = TempDir::new();
    // Replaces the built-in cs108 with one that has a command the reader refuses.
    std::fs::write(
        dir.path.as_path().join("cs108.toml"),
        r#"
name = "cs108"
title = "CS108, site variant"
guide = "Our readers."
[match]
name_prefixes = ["CS108"]
[channel]
service = "9800"
write = "9900"
notify = "9901"
[frame]
length = { at = 2, counts_from = 8 }
[[commands]]
name = "mystery"
description = "An event the reader does not know."
request = "A7 B3 00 D9 82 37 0000 A0FF"
answer = "A7 B3 ?? D9 82 9E ???? A0FF"
[[errors]]
name = "error"
pattern = "A7 B3 ?? D9 82 9E ???? A101"
fields = [{ name = "code", at = 10, type = "u16be" }]
"#,
    )
    .unwrap();
    let dir_text = dir.path.as_path().to_str().unwrap();
    let (client, _) = stdio_client_with_env(&[], &[("GATTWAY_MCP_PROFILES_DIR", dir_text)]).await;
    let cs108 = read_resource(&client, "gattway://profiles/cs108").await.unwrap();
    assert!(cs108.starts_with("# CS108, site variant"), "{cs108}");
    ok(&client, "ble_connect", json!({"device": CS108})).await;
    let said = fails(
        &client,
        "device_command",
        json!({"device": CS108, "command": "mystery"}),
    )
    .await;
    assert!(
        said.contains("answered with error") && said.contains("\"code\":{\"value\":2}"),
        "{said}"
    );
    client.cancel().await.unwrap();

    // A bad profile in the folder stops the server with the file's name.
    std::fs::write(dir.path.as_path().join("broken.toml"), "name = \"broken\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gattway"))
        .args(["--backend", "sim", "mcp"])
        .env("GATTWAY_MCP_PROFILES_DIR", dir_text)
        .env_remove("GATTWAY_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("broken.toml"), "{err}");
}

#[tokio::test]
async fn prompts_for_exploring_and_logging() {
    let (client, _) = stdio_client(&[]).await;
    let prompts = client.list_all_prompts().await.unwrap();
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["explore_device", "log_sensor"]);
    let args = json!({"device": "Gattway HRM", "characteristic": "2a37", "minutes": "2"});
    let got = client
        .get_prompt(
            GetPromptRequestParams::new("log_sensor").with_arguments(args.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    let text = serde_json::to_string(&got.messages[0]).unwrap();
    assert!(
        text.contains("ble_collect_start") && text.contains("120 seconds"),
        "{text}"
    );
    let missing = client
        .get_prompt(GetPromptRequestParams::new("explore_device"))
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("needs the argument device"), "{missing}");
    client.cancel().await.unwrap();
}

#[test]
fn profile_check_validates_and_says_what_a_profile_matches() {
    let builtin = concat!(env!("CARGO_MANIFEST_DIR"), "/src/profiles/builtin/cs108.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gattway"))
        .args(["profile", "check", builtin])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("ok: profile cs108"), "{said}");
    assert!(
        said.contains("simulated devices it matches: CS108Reader000001 (C0:FF:EE:00:01:08)"),
        "{said}"
    );
    assert!(said.contains("register_read(register: u16le)"), "{said}");

    let dir = TempDir::new();
    let bad = dir.path.as_path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\ntitle = \"t\"\n[match]\nname_prefixes = [\"x\"]\n[[commands]]\nname = \"c\"\ndescription = \"d\"\nrequest = \"01\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gattway"))
        .args(["profile", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("invalid profile") && err.contains("no [channel]"),
        "{err}"
    );
}
