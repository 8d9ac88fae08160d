//! The packaging: `packaging/gattway.service` verifies with systemd's own checker
//! (`systemd-analyze verify`), pointed at the binary these tests built; the
//! `Dockerfile` passes hadolint (pinned, from PyPI) with no finding at all; no tool
//! cache is tracked.

mod common;

#[test]
fn the_service_file_verifies() {
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/gattway.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/gattway "),
        "the install steps put it there"
    );
    // verify checks that ExecStart's program exists: this build's, then.
    let unit = unit.replace("/usr/local/bin/gattway", env!("CARGO_BIN_EXE_gattway"));
    let dir = std::env::temp_dir().join(format!("gattway-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gattway.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package; .ci/run installs it)");
    let _ = std::fs::remove_dir_all(&dir);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let dockerfile = concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile");
    let out = std::process::Command::new(common::reference::program("hadolint"))
        .args(["--no-color", "--failure-threshold", "style", dockerfile])
        .output()
        .expect("hadolint from the reference venv");
    assert!(
        out.status.success(),
        "hadolint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Running a tool in a clone (schemathesis, say) must not change a tracked file:
/// its cache is ignored, and none is committed.
#[test]
fn no_tool_cache_is_tracked() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("git")
    };
    let tracked = git(&["ls-files", ".schemathesis"]);
    assert!(tracked.status.success());
    assert_eq!(
        String::from_utf8_lossy(&tracked.stdout),
        "",
        "committed tool cache"
    );
    let ignored = git(&[
        "check-ignore",
        "-q",
        ".schemathesis/default/cache/crashes/manifest.json",
    ]);
    assert!(ignored.status.success(), "schemathesis' cache is not ignored");
}
