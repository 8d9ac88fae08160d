//! The `gattway` binary as a user runs it: `scan` prints the simulated devices,
//! `serve` listens where it says it does and answers `/healthz`.

mod common;

use std::time::Duration;

use common::process::{gattway, get_json, listening_addr, spawn_reading_stderr, wait_for_line};
use tokio::process::Command;

#[tokio::test]
async fn scan_prints_the_simulated_devices_as_json() {
    let out = gattway()
        .args(["--backend", "sim", "scan", "--timeout", "1", "--json"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let devices: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let mut names: Vec<&str> = devices.iter().filter_map(|d| d["name"].as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "CS108Reader000001",
            "Gattway BTHome",
            "Gattway BTHome Secure",
            "Gattway Battery",
            "Gattway Env",
            "Gattway HRM",
            "Gattway Roamer",
            "Gattway UART"
        ]
    );
    let hrm = devices.iter().find(|d| d["name"] == "Gattway HRM").unwrap();
    assert_eq!(hrm["id"], "C0:FF:EE:00:00:01");
    assert_eq!(hrm["manufacturer_data"]["89"], "0102");
    assert!(hrm["rssi"].as_i64().unwrap() < -30);
    // The BTHome thermometer broadcasts its readings in service data 0xFCD2.
    let bthome = devices.iter().find(|d| d["name"] == "Gattway BTHome").unwrap();
    let data = bthome["service_data"]["0000fcd2-0000-1000-8000-00805f9b34fb"]
        .as_str()
        .unwrap_or_else(|| panic!("{bthome}"));
    assert!(
        data.starts_with("4000"),
        "BTHome v2, unencrypted, packet id first: {data}"
    );
}

#[tokio::test]
async fn scan_table_filters_by_service() {
    let out = gattway()
        .args(["--backend", "sim", "scan", "--timeout", "1", "--service", "181a"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("Gattway Env"), "{table}");
    assert!(table.contains("181a (Environmental Sensing)"), "{table}");
    assert!(!table.contains("Gattway HRM"), "{table}");
    assert!(table.trim_end().ends_with("1 device(s)"), "{table}");
}

#[tokio::test]
async fn native_without_a_radio_fails_fast_saying_what_to_do_and_auto_falls_back_loudly() {
    // No system bus at all: as on a machine without bluetoothd.
    let no_bus = "unix:path=/nonexistent/gattway-test-bus";
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        gattway()
            .args(["--backend", "native", "scan", "--timeout", "1"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", no_bus)
            .output(),
    )
    .await
    .expect("fails fast")
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bluetoothd") && err.contains("--backend sim"),
        "{err}"
    );
    let out = gattway()
        .args([
            "--backend",
            "auto",
            "--log-format",
            "text",
            "scan",
            "--timeout",
            "1",
        ])
        .env("DBUS_SYSTEM_BUS_ADDRESS", no_bus)
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SIMULATED"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Gattway HRM"));
}

#[tokio::test]
async fn bad_arguments_fail_with_a_message() {
    let out = gattway()
        .args(["scan", "--service", "nope"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid UUID"));
    let out = gattway()
        .args(["--backend", "sim", "scan"])
        .env("GATTWAY_GATEWAY_MAX_CONNECTIONS", "lots")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GATTWAY_GATEWAY_MAX_CONNECTIONS"));
}

#[tokio::test]
async fn serve_logs_its_address_answers_healthz_and_stops_on_sigterm() {
    let (mut child, mut lines) =
        spawn_reading_stderr(&["--backend", "sim", "serve", "--listen", "127.0.0.1:0"]);
    let addr = listening_addr(&wait_for_line(&mut lines, "listening on http://").await);
    let body = get_json(&format!("http://{addr}/healthz")).await;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["backend"], "sim");

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// A short scan on the simulator that logs at debug level in `format`.
async fn scan_logging(format: &str) -> std::process::Output {
    gattway()
        .args([
            "--backend",
            "sim",
            "--log-format",
            format,
            "--log-level",
            "debug",
            "scan",
            "--timeout",
            "0.3",
            "--json",
        ])
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_on_stderr() {
    let out = scan_logging("json").await;
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    // stdout stays clean JSON for the caller.
    let _: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
}

#[tokio::test]
async fn text_logs_into_a_pipe_carry_no_colour_codes() {
    let out = scan_logging("text").await;
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("DEBUG") || stderr.contains("INFO"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "escape codes in a pipe: {stderr:?}");
}

#[tokio::test]
async fn serve_refuses_to_expose_the_radio_without_auth() {
    let out = gattway()
        .args(["--backend", "sim", "serve", "--listen", "0.0.0.0:0"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 with no authentication"),
        "{err}"
    );

    // With an API key configured it serves (and the key is what /mcp asks for).
    let (key, hash) = gattway::auth::new_api_key();
    let dir = std::env::temp_dir().join(format!("gattway-cli-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("auth.toml");
    std::fs::write(
        &file,
        format!("[[auth.api_keys]]\nname = \"t\"\nsha256 = \"{hash}\"\nscopes = [\"ble:read\"]\n"),
    )
    .unwrap();
    let (mut child, mut lines) = spawn_reading_stderr(&[
        "--backend",
        "sim",
        "--config",
        file.to_str().unwrap(),
        "serve",
        "--listen",
        "0.0.0.0:0",
    ]);
    let addr = listening_addr(&wait_for_line(&mut lines, "listening on http://").await)
        .replace("0.0.0.0", "127.0.0.1");
    let http = reqwest::Client::new();
    let denied = http
        .post(format!("http://{addr}/mcp"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let allowed = http
        .post(format!("http://{addr}/mcp"))
        .header("Authorization", format!("Bearer {key}"))
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    child.kill().await.unwrap();

    // --insecure-no-auth is the explicit way out.
    let (mut child, mut lines) = spawn_reading_stderr(&[
        "--backend",
        "sim",
        "--insecure-no-auth",
        "serve",
        "--listen",
        "0.0.0.0:0",
    ]);
    wait_for_line(&mut lines, "WITHOUT authentication").await;
    child.kill().await.unwrap();
}

#[tokio::test]
async fn token_mints_jwts_and_api_keys() {
    let out = gattway()
        .args([
            "token",
            "--subject",
            "claude",
            "--scope",
            "ble:read,ble:write",
            "--devices",
            "CS108",
            "--ttl",
            "10m",
        ])
        .env("GATTWAY_AUTH_JWT_SECRET", "top-secret")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let jwt = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let auth = gattway::auth::Authenticator::new(&gattway::auth::AuthConfig {
        jwt_secret: "top-secret".into(),
        ..Default::default()
    })
    .unwrap();
    let p = auth.verify(&jwt).expect("the minted JWT verifies");
    assert_eq!(p.subject, "claude");
    assert!(p.has(gattway::auth::Scope::BleWrite));
    assert_eq!(p.devices, gattway::auth::DeviceAllowList::new(&["CS108"]));

    let out = gattway()
        .args(["token", "--api-key", "--subject", "ci", "--scope", "hub:client"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.lines().nth(1).unwrap().trim();
    let hash = text.lines().find(|l| l.starts_with("sha256 = ")).unwrap();
    assert!(
        hash.contains(&gattway::auth::sha256_hex(key.as_bytes())),
        "{text}"
    );
    assert!(text.contains("scopes = [\"hub:client\"]"), "{text}");

    let out = gattway().args(["token"]).output().await.unwrap();
    assert!(!out.status.success(), "no secret configured");
    assert!(String::from_utf8_lossy(&out.stderr).contains("GATTWAY_AUTH_JWT_SECRET"));
    let out = gattway()
        .args(["token", "--scope", "root"])
        .env("GATTWAY_AUTH_JWT_SECRET", "x")
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scope"));
}

#[tokio::test]
async fn serve_with_radios_in_the_config_lists_each_and_an_unknown_kind_is_refused() {
    let dir = std::env::temp_dir().join(format!("gattway-cli-radios-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("radios.toml");
    let db = dir.join("radios.db");
    std::fs::write(
        &file,
        format!(
            "database = \"sqlite://{}\"\n\n[[radios]]\nname = \"kitchen\"\nkind = \"sim\"\nslots = 2\n\n\
             [[radios]]\nname = \"garage\"\nkind = \"sim\"\nrssi_offset_db = -25\n",
            db.display()
        ),
    )
    .unwrap();
    // Without the hub's simulator feed, which links devices at start: a radio may
    // hold a link more than its slots while the oldest one is being closed, and
    // used + free would then say 3 for a radio of 2.
    let mut command = gattway();
    command
        .args([
            "--config",
            file.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("GATTWAY_HUB_SIM_FEED", "false");
    let (mut child, mut lines) = common::process::reading_stderr(command);
    let addr = listening_addr(&wait_for_line(&mut lines, "listening on http://").await);
    let radios = get_json(&format!("http://{addr}/api/v1/radios")).await;
    let listed: Vec<(&str, &str, u64)> = radios["radios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let used = r["slots_used"].as_u64().unwrap();
            let free = r["slots_free"].as_u64().unwrap();
            (
                r["name"].as_str().unwrap(),
                r["kind"].as_str().unwrap(),
                used + free,
            )
        })
        .collect();
    assert_eq!(listed, [("kitchen", "sim", 2), ("garage", "sim", 7)]);
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    // A kind gattway does not have is refused, naming the ones it has.
    let bad = std::env::temp_dir().join(format!("gattway-cli-radios-bad-{}.toml", std::process::id()));
    std::fs::write(&bad, "[[radios]]\nname = \"shed\"\nkind = \"zigbee\"\n").unwrap();
    let out = gattway()
        .args(["--config", bad.to_str().unwrap(), "scan", "--timeout", "0.1"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("zigbee") && err.contains("sim") && err.contains("native"),
        "{err}"
    );
    let _ = std::fs::remove_file(&bad);
}

#[tokio::test]
async fn version_names_the_commit_and_the_radios() {
    let out = gattway().arg("--version").output().await.unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("gattway {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let commit = text
        .split("(commit ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_default();
    assert!(
        commit == "unknown" || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{text}"
    );
    for radio in ["sim", "native", "esphome"] {
        assert!(text.contains(radio), "{radio} missing: {text}");
    }
}

#[tokio::test]
async fn serve_keeps_its_database_in_the_data_directory_and_says_where() {
    let data = std::env::temp_dir().join(format!("gattway-xdg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut command = gattway();
    command
        .env_remove("GATTWAY_DATABASE")
        .env_remove("STATE_DIRECTORY")
        .env("XDG_DATA_HOME", &data)
        .args(["--backend", "sim", "serve", "--listen", "127.0.0.1:0"]);
    let (mut child, mut lines) = common::process::reading_stderr(command);
    let line = wait_for_line(&mut lines, "hub database at").await;
    let db = data.join("gattway").join("gattway.db");
    assert!(line.contains(&db.display().to_string()), "{line}");
    wait_for_line(&mut lines, "listening on http://").await;
    assert!(db.exists(), "{} made", db.display());
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn completions_are_printed_for_a_shell() {
    let out = gattway().args(["completions", "bash"]).output().await.unwrap();
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script.contains("_gattway") && script.contains("serve") && script.contains("--listen"),
        "{script}"
    );
    let bad = gattway().args(["completions", "cmd.exe"]).output().await.unwrap();
    assert!(!bad.status.success());
}

#[tokio::test]
async fn every_subcommand_has_help_with_an_example() {
    use clap::CommandFactory;
    // Every subcommand clap knows, nested ones too (`profile check`).
    let cli = gattway::cli::Cli::command();
    let mut paths: Vec<Vec<String>> = Vec::new();
    for c in cli.get_subcommands().filter(|c| c.get_name() != "help") {
        paths.push(vec![c.get_name().to_string()]);
        for nested in c.get_subcommands().filter(|n| n.get_name() != "help") {
            paths.push(vec![c.get_name().to_string(), nested.get_name().to_string()]);
        }
    }
    assert!(paths.len() >= 8, "{paths:?}");
    for path in paths {
        let sub = path.join(" ");
        let out = gattway().args(&path).arg("--help").output().await.unwrap();
        assert!(out.status.success(), "{sub} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("xample") || help.contains("e.g."),
            "{sub} --help has no example:\n{help}"
        );
    }
}
