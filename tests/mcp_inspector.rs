//! The MCP Inspector's CLI (npm `@modelcontextprotocol/inspector` 2.12.0, pinned in
//! tests/inspector/, installed by ./test.sh) against `gattway serve`'s `/mcp` with
//! credentials: without a token it is refused and turns to OAuth; with one it lists the tools, connects
//! the simulated CS108, runs its battery command through the profile, and reads the
//! profile resource.

mod common;

use common::process::serve_with_config;
use common::*;
use serde_json::Value;

/// Runs the Inspector's CLI against `url` with these arguments: (success, stdout, stderr).
async fn inspector(url: &str, token: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let bin = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/inspector/node_modules/.bin/mcp-inspector"
    );
    assert!(
        std::path::Path::new(bin).exists(),
        "the MCP Inspector is not installed: ./test.sh installs it (npm ci in tests/inspector)"
    );
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(["--cli", url, "--transport", "http"]).args(args);
    if let Some(t) = token {
        cmd.args(["--header", &format!("Authorization: Bearer {t}")]);
    }
    // Its catalog of servers goes in a scratch place, not the user's home.
    let home = TempDir::new();
    let out = within("the inspector", cmd.env("HOME", &home.path).output())
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn the_mcp_inspector_cli_drives_a_device_through_its_profile() {
    let served = serve_with_config("[auth]\njwt_secret = \"an-inspector-test-secret\"\n").await;
    let url = format!("{}/mcp", served.base);
    let token = served.token("inspector", "ble:read,ble:write").await;

    // No token: the Inspector reads the 401's challenge and wants to start its OAuth
    // flow, which needs a person at a terminal.
    let (ok, out, err) = inspector(&url, None, &["--method", "tools/list"]).await;
    assert!(!ok, "listed tools with no token: {out}");
    assert!(format!("{out}{err}").contains("\"auth_required\""), "{out}{err}");

    let (ok, out, err) = inspector(&url, Some(&token), &["--method", "tools/list"]).await;
    assert!(ok, "{err}");
    let names: Vec<String> = json(&out)["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    assert!(names.contains(&"device_command".to_string()), "{names:?}");

    let (ok, _, err) = inspector(
        &url,
        Some(&token),
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "ble_connect",
            "--tool-arg",
            "device=CS108",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let (ok, out, err) = inspector(
        &url,
        Some(&token),
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "device_command",
            "--tool-arg",
            "device=CS108",
            "command=battery_voltage",
        ],
    )
    .await;
    assert!(ok, "{err}{out}");
    let result = json(&out);
    assert_eq!(
        result["structuredContent"]["fields"]["battery"]["value"], 4080,
        "{result}"
    );

    let (ok, out, err) = inspector(
        &url,
        Some(&token),
        &["--method", "resources/read", "--uri", "gattway://profiles/cs108"],
    )
    .await;
    assert!(ok, "{err}");
    assert!(json(&out)["contents"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("# CSL CS108 RFID reader"));
}
