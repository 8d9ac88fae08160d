//! What the benchmarks that measure a real `gattway serve` process share: starting
//! it (release build, simulator, a database file, port 0), reading its memory and
//! its metrics and its CPU time.
// Each benchmark uses a part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

/// CPU time (user + system) a process has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process stat");
    // Fields after the command (which may hold spaces), from field 3 on:
    // utime and stime are fields 14 and 15, in clock ticks (USER_HZ, 100 on Linux).
    let after_comm = stat.rsplit_once(')').expect("stat format").1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| fields[i - 3].parse::<f64>().expect("ticks");
    (ticks(14) + ticks(15)) / 100.0
}

/// A running server; killed, and its database files removed, when dropped.
pub struct Server {
    /// Held so the process lives as long as this value (`kill_on_drop`).
    _child: tokio::process::Child,
    pub pid: u32,
    /// `host:port` it listens on.
    pub addr: String,
    db_path: PathBuf,
}

impl Server {
    /// Starts `gattway --backend sim [args] serve --listen 127.0.0.1:0` with `env`,
    /// a database file named after `name` (rows written go to disk, not into the
    /// measured memory), and text logs; returns once it listens.
    pub async fn start(name: &str, args: &[&str], env: &[(&str, String)]) -> Server {
        let db_path = std::env::temp_dir().join(format!("gattway-{name}-{}.db", std::process::id()));
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_gattway"));
        command
            .args(["--backend", "sim"])
            .args(args)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("GATTWAY_DATABASE", format!("sqlite://{}", db_path.display()))
            .env("GATTWAY_LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn gattway serve");
        let pid = child.id().expect("pid");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let addr = loop {
            let line = lines.next_line().await.expect("stderr").expect("server exited");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().expect("addr").to_string();
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server {
            _child: child,
            pid,
            addr,
            db_path,
        }
    }

    /// The sum of the `/metrics` samples whose line starts with `series` (a name,
    /// or a name with its labels): 0 when there is none.
    pub async fn metric(&self, series: &str) -> f64 {
        let body = reqwest::get(format!("http://{}/metrics", self.addr))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        body.lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// CPU time the server has used, user and system, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid)
    }

    /// One line of the server's `/proc/PID/status`, in KiB (`"VmRSS:"`, `"RssAnon:"`).
    pub fn status_kib(&self, field: &str) -> u64 {
        let pid = self.pid;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.db_path.display()));
        }
    }
}
