//! Home Assistant's own Python code as the reference: a venv this harness makes
//! once (kept in the build cache's folder) with pinned PyPI releases of its
//! decoders (BTHome, Xiaomi, RuuviTag, Govee) and its ESPHome client.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// (module to import, pinned requirement). A newer release is a deliberate update.
const PACKAGES: &[(&str, &str)] = &[
    ("bthome_ble", "bthome-ble==3.25.0"),
    ("aioesphomeapi", "aioesphomeapi==46.23.0"),
    ("ruuvitag_ble", "ruuvitag-ble==0.4.0"),
    ("govee_ble", "govee-ble==1.5.2"),
    ("xiaomi_ble", "xiaomi-ble==1.21.2"),
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
    let has = |module: &str| {
        Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(module, _)| !has(module))
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

/// A script of `tests/reference/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/reference")
        .join(name)
}
