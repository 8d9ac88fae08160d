//! A BlueZ stand-in for native-backend tests: a private `dbus-daemon` and, on it,
//! `tests/bluez/gattway_bluez.py` (python-dbusmock's bluez5 template with GATT).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::within;

/// The private bus and the BlueZ stand-in on it; both end with the test.
pub struct FakeBluez {
    pub address: String,
    _daemon: Child,
    _bluez: Child,
}

impl FakeBluez {
    pub async fn start() -> FakeBluez {
        let mut daemon = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            // An abstract socket: nothing is left in /tmp when the daemon is killed.
            .arg(format!(
                "--address=unix:abstract=gattway-test-{}",
                uuid::Uuid::new_v4()
            ))
            .stdout(Stdio::piped())
            // It warns that it may not raise its open-files limit; harmless here.
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("dbus-daemon (Debian package dbus-daemon; .ci/run installs it)");
        let mut lines = BufReader::new(daemon.stdout.take().unwrap()).lines();
        let address = within("bus address", lines.next_line())
            .await
            .unwrap()
            .expect("address line");
        let template = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bluez/gattway_bluez.py");
        let bluez = Command::new("/usr/bin/python3")
            .args(["-m", "dbusmock", "--system", "--template", template])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("Debian python3 with dbusmock (Debian package python3-dbusmock; .ci/run installs it)");
        let fake = FakeBluez {
            address,
            _daemon: daemon,
            _bluez: bluez,
        };
        // Ready once org.bluez answers.
        within("org.bluez on the bus", async {
            while !fake
                .call(
                    "/org/bluez/hci0",
                    "org.freedesktop.DBus.Properties.Get",
                    &["string:org.bluez.Adapter1", "string:Powered"],
                )
                .await
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        fake
    }

    /// Calls a method of the stand-in; true when it answered without error.
    pub async fn call(&self, path: &str, method: &str, args: &[&str]) -> bool {
        Command::new("dbus-send")
            .arg(format!("--bus={}", self.address))
            .args(["--print-reply", "--dest=org.bluez", path, method])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    pub async fn mock(&self, method: &str, args: &[&str]) {
        let m = format!("org.bluez.Mock.{method}");
        assert!(self.call("/org/bluez", &m, args).await, "mock {method} failed");
    }
}
