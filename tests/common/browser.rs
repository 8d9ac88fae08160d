//! Browser tests: a script of `tests/browser/` run with Node (playwright-core driving
//! Debian's Chromium), which prints one JSON report `{results, errors}`.

use serde_json::Value;

/// Runs `tests/browser/SCRIPT` with `args`; its report, once it has said no page
/// logged an error.
pub async fn run(script: &str, args: &[&std::ffi::OsStr]) -> Value {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
    assert!(
        std::path::Path::new(dir)
            .join("node_modules/playwright-core")
            .exists(),
        "playwright-core is not installed: ./test.sh installs it (npm ci in tests/browser)"
    );
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(std::path::Path::new(dir).join(script))
            .args(args)
            .output(),
    )
    .await
    .expect("the browser run took over two minutes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");
    report
}
