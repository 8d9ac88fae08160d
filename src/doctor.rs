//! `gattway doctor`: why a real radio would not work, and what to do about it.
//! On Linux it checks BlueZ over the system D-Bus (running, its version, the
//! policy letting this user drive it, each adapter present and powered), rfkill,
//! this user's permission, and that the ports gattway would listen on are free.

use serde::Serialize;

use crate::config::Config;

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Works, but worth knowing.
    Warn,
    Fail,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    /// What to do, when something is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn bad(name: &'static str, status: Status, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every check, in the order a person would fix them.
pub fn run(config: &Config) -> Vec<Check> {
    let mut checks = bluez::checks(&config.adapter);
    checks.push(rfkill());
    checks.push(permission());
    checks.extend(ports(config));
    checks
}

/// Plain text, one line a check, for a person.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        out.push_str(&format!("{mark}  {:<12} {}\n", c.name, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("      {:<12} fix: {fix}\n", ""));
        }
    }
    out
}

fn rfkill() -> Check {
    let Ok(entries) = std::fs::read_dir("/sys/class/rfkill") else {
        return Check::ok("rfkill", "no rfkill switches on this machine");
    };
    let read = |p: &std::path::Path, f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
    let mut blocked = Vec::new();
    let mut seen = 0;
    for e in entries.flatten() {
        let p = e.path();
        if read(&p, "type").trim() != "bluetooth" {
            continue;
        }
        seen += 1;
        let name = read(&p, "name").trim().to_string();
        if read(&p, "hard").trim() == "1" {
            blocked.push(format!("{name} (hard: a switch or the firmware)"));
        } else if read(&p, "soft").trim() == "1" {
            blocked.push(format!("{name} (soft)"));
        }
    }
    match (seen, blocked.is_empty()) {
        (0, _) => Check::ok("rfkill", "no Bluetooth rfkill switch"),
        (_, true) => Check::ok("rfkill", "Bluetooth is not blocked"),
        _ => Check::bad(
            "rfkill",
            Status::Fail,
            format!("blocked: {}", blocked.join(", ")),
            "rfkill unblock bluetooth (a hard block needs the switch or the BIOS)",
        ),
    }
}

/// Root, the `bluetooth` group, or CAP_NET_ADMIN: what BlueZ's policy and the
/// kernel let drive an adapter on common distributions.
fn permission() -> Check {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    if field("Uid:").split_whitespace().nth(1) == Some("0") {
        return Check::ok("permission", "running as root");
    }
    let cap_net_admin = u64::from_str_radix(&field("CapEff:"), 16).is_ok_and(|caps| caps & (1 << 12) != 0);
    if cap_net_admin {
        return Check::ok("permission", "has CAP_NET_ADMIN");
    }
    let groups: Vec<String> = field("Groups:").split_whitespace().map(str::to_string).collect();
    let bluetooth_gid = std::fs::read_to_string("/etc/group")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some("bluetooth")).then(|| f.nth(1).unwrap_or_default().to_string())
        });
    match bluetooth_gid {
        Some(gid) if groups.contains(&gid) => Check::ok("permission", "in the bluetooth group"),
        Some(_) => Check::bad(
            "permission",
            Status::Warn,
            "not root, not in the bluetooth group, no CAP_NET_ADMIN",
            "sudo usermod -aG bluetooth $USER, then log in again",
        ),
        None => Check::ok(
            "permission",
            "no bluetooth group here: BlueZ's policy decides (see dbus_policy)",
        ),
    }
}

fn ports(config: &Config) -> Vec<Check> {
    let mut wanted = vec![("http", config.listen)];
    if let Ok(Some(esphome)) = config.esphome.listen_addr() {
        wanted.push(("esphome", esphome));
    }
    wanted
        .into_iter()
        .map(|(what, addr)| match std::net::TcpListener::bind(addr) {
            Ok(_) => Check::ok("ports", format!("{what} {addr} is free")),
            Err(e) => Check::bad(
                "ports",
                Status::Fail,
                format!("{what} {addr}: {e}"),
                "stop what holds it (ss -ltnp), or listen elsewhere (--listen, esphome.listen)",
            ),
        })
        .collect()
}

#[cfg(target_os = "linux")]
mod bluez {
    use std::time::Duration;

    use dbus::arg::{prop_cast, PropMap};
    use dbus::blocking::stdintf::org_freedesktop_dbus::ObjectManager;
    use dbus::blocking::Connection;

    use super::{Check, Status};

    const TIMEOUT: Duration = Duration::from_secs(3);

    pub fn checks(adapter: &str) -> Vec<Check> {
        let mut out = Vec::new();
        let bus = match Connection::new_system() {
            Ok(bus) => bus,
            Err(e) => {
                out.push(Check::bad(
                    "bluez",
                    Status::Fail,
                    format!("no system D-Bus: {e}"),
                    "start D-Bus (sudo systemctl start dbus); in a container, mount /run/dbus/system_bus_socket",
                ));
                return out;
            }
        };
        let dbus = bus.with_proxy("org.freedesktop.DBus", "/org/freedesktop/DBus", TIMEOUT);
        let running: Result<(bool,), _> =
            dbus.method_call("org.freedesktop.DBus", "NameHasOwner", ("org.bluez",));
        if !matches!(running, Ok((true,))) {
            out.push(Check::bad(
                "bluez",
                Status::Fail,
                "bluetoothd is not running (nobody owns org.bluez on the system bus)",
                "sudo systemctl enable --now bluetooth",
            ));
            return out;
        }
        out.push(match version() {
            Some(v) if older_than_5_50(&v) => Check::bad(
                "bluez",
                Status::Warn,
                format!("bluetoothd {v} is running; gattway is tested with BlueZ 5.50 or later"),
                "upgrade bluez",
            ),
            Some(v) => Check::ok("bluez", format!("bluetoothd {v} is running")),
            None => Check::ok(
                "bluez",
                "bluetoothd is running (its version is not readable here)",
            ),
        });
        let objects = bus.with_proxy("org.bluez", "/", TIMEOUT).get_managed_objects();
        let objects = match objects {
            Ok(o) => {
                out.push(Check::ok("dbus_policy", "BlueZ answers this user"));
                o
            }
            Err(e) => {
                let denied = e.name() == Some("org.freedesktop.DBus.Error.AccessDenied");
                out.push(Check::bad(
                    "dbus_policy",
                    Status::Fail,
                    format!("BlueZ did not answer: {}", e.message().unwrap_or_default()),
                    if denied {
                        "BlueZ's D-Bus policy refuses this user: join the bluetooth group (sudo usermod -aG bluetooth $USER)"
                    } else {
                        "check bluetoothd's logs: journalctl -u bluetooth"
                    },
                ));
                return out;
            }
        };
        let mut adapters: Vec<(String, bool)> = objects
            .iter()
            .filter_map(|(path, ifaces)| {
                let props: &PropMap = ifaces.get("org.bluez.Adapter1")?;
                let name = path.rsplit('/').next()?.to_string();
                Some((
                    name,
                    prop_cast::<bool>(props, "Powered").copied().unwrap_or(false),
                ))
            })
            .collect();
        adapters.sort();
        if !adapter.is_empty() {
            adapters.retain(|(name, _)| name == adapter);
        }
        if adapters.is_empty() {
            let which = if adapter.is_empty() {
                "no Bluetooth adapter".to_string()
            } else {
                format!("no adapter {adapter}")
            };
            out.push(Check::bad(
                "adapter",
                Status::Fail,
                format!("{which} (BlueZ lists none)"),
                "plug in a Bluetooth LE adapter, or check `bluetoothctl list`; without one, use --backend sim",
            ));
        }
        for (name, powered) in adapters {
            out.push(if powered {
                Check::ok("adapter", format!("{name} is present and powered"))
            } else {
                Check::bad(
                    "adapter",
                    Status::Fail,
                    format!("{name} is present but powered off"),
                    format!("bluetoothctl power on (or: bluetoothctl select {name}; power on)"),
                )
            });
        }
        out
    }

    /// `bluetoothd --version`, from where distributions put it.
    fn version() -> Option<String> {
        [
            "/usr/libexec/bluetooth/bluetoothd",
            "/usr/lib/bluetooth/bluetoothd",
            "/usr/sbin/bluetoothd",
        ]
        .iter()
        .find_map(|path| std::process::Command::new(path).arg("--version").output().ok())
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
    }

    fn older_than_5_50(v: &str) -> bool {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (major, minor) < (5, 50)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn versions_compare_as_numbers() {
            assert!(super::older_than_5_50("5.49"));
            assert!(!super::older_than_5_50("5.50"));
            assert!(!super::older_than_5_50("5.66"));
            assert!(super::older_than_5_50("4.101"));
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod bluez {
    use super::{Check, Status};

    pub fn checks(_adapter: &str) -> Vec<Check> {
        vec![Check::bad(
            "bluez",
            Status::Warn,
            "doctor checks BlueZ, on Linux; on this system the OS owns the radio",
            "run `gattway --backend native scan` to see whether it answers",
        )]
    }
}
