//! gattway's advertisement decoders against Home Assistant's own, on the same bytes:
//! `bthome-ble` from PyPI, in a Python venv this test makes (once, kept between runs
//! in the build cache's folder). Every object id of the BTHome spec, several values
//! each, repeated kinds, events, text, raw, device information and the simulator's
//! thermometers, plain and encrypted (`tests/data/bthome_vectors.txt`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The reference decoder's version: a newer one is a deliberate update.
const BTHOME_BLE: &str = "bthome-ble==3.25.0";

/// A venv with the reference decoders, made when missing.
fn reference_python() -> PathBuf {
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
    if !has("bthome_ble") {
        let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "python3 -m venv {} failed: install python3 and python3-venv",
            venv.display()
        );
        let installed = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", BTHOME_BLE])
            .status();
        assert!(
            installed.is_ok_and(|s| s.success()),
            "pip install {BTHOME_BLE} failed"
        );
    }
    python
}

/// Readings as key → value, numbers as f64 so 25 and 25.0 compare equal.
fn normalise(readings: impl IntoIterator<Item = (String, Value)>) -> BTreeMap<String, Value> {
    readings
        .into_iter()
        .map(|(k, v)| match v.as_f64() {
            Some(f) if !v.is_boolean() => (k, serde_json::json!(f)),
            _ => (k, v),
        })
        .collect()
}

#[test]
fn bthome_readings_equal_home_assistants() {
    let vectors = include_str!("data/bthome_vectors.txt");
    let mut child = Command::new(reference_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/reference/bthome_ref.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the reference decoder");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(vectors.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the reference decoder failed");
    let theirs: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let payloads: Vec<&str> = vectors.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(theirs.len(), payloads.len());
    let mut compared = 0;
    for (line, theirs) in payloads.iter().zip(theirs) {
        // A payload; an encrypted one with its key and the device's address.
        let fields: Vec<&str> = line.split_whitespace().collect();
        let hex = fields[0];
        let key: Option<[u8; 16]> = fields.get(1).map(|k| hex::decode(k).unwrap().try_into().unwrap());
        let address: [u8; 6] = fields.get(2).map_or([0; 6], |a| {
            let bytes: Vec<u8> = a.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
            bytes.try_into().unwrap()
        });
        let (ours, _) =
            gattway::adverts::bthome::decode_from(&hex::decode(hex).unwrap(), address, key.as_ref())
                .unwrap_or_else(|e| panic!("{hex}: {e}"));
        let ours = normalise(ours.into_iter().map(|r| (r.key, r.value)));
        let theirs = normalise(theirs.as_object().unwrap().clone());
        assert_eq!(ours, theirs, "payload {hex}");
        compared += ours.len();
    }
    assert!(compared > 300, "only {compared} readings compared");
}
