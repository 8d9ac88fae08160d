//! The packet log: a bounded ring of every value written to and notified by a
//! device, with time and direction, shared by every front end. Debugging tools
//! (the MCP `get_logs`/`search_packets`, `GET /api/v1/packets`) read it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::Serialize;

use super::visibility::DeviceFilter;
use crate::ble::{DeviceId, Uuid};
use crate::sync::lock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Direction {
    /// To the device (a write).
    Tx,
    /// From the device (a notification or indication).
    Rx,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketEntry {
    /// Gattway-wide sequence number; gaps mean entries that fell off the ring.
    pub seq: u64,
    pub at: SystemTime,
    pub direction: Direction,
    pub device: DeviceId,
    pub service: Uuid,
    pub characteristic: Uuid,
    pub data: Bytes,
}

impl PacketEntry {
    /// Upper-case hex without separators, for pattern matching.
    pub fn hex(&self) -> String {
        hex::encode_upper(&self.data)
    }

    /// Upper-case hex bytes separated by spaces, as logs print them.
    pub fn spaced_hex(&self) -> String {
        self.data
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The entry as the REST API and the MCP log tools print it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.seq,
            "timestamp": humantime::format_rfc3339_millis(self.at).to_string(),
            "direction": self.direction,
            "hex": self.spaced_hex(),
            "size": self.data.len(),
            "device": self.device,
            "service": self.service.short(),
            "characteristic": self.characteristic.short(),
        })
    }
}

/// Where a query starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Since {
    /// Entries newer than this long ago.
    Ago(Duration),
    /// Entries at or after this time.
    Time(SystemTime),
    /// Entries with a sequence number above this.
    AfterSeq(u64),
}

impl Since {
    /// Parses `30s`, `5m`, `1h` (any humantime duration), an RFC 3339 time, or a
    /// plain sequence number.
    pub fn parse(s: &str) -> Result<Since, String> {
        let t = s.trim();
        if let Ok(seq) = t.parse::<u64>() {
            return Ok(Since::AfterSeq(seq));
        }
        if let Ok(d) = humantime::parse_duration(t) {
            return Ok(Since::Ago(d));
        }
        humantime::parse_rfc3339_weak(t).map(Since::Time).map_err(|_| {
            format!("since {t:?}: expected a duration (30s, 5m, 1h), an ISO 8601 time or 'last'")
        })
    }
}

/// What entries to keep.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Filter {
    #[default]
    All,
    Direction(Direction),
    /// Upper-case hex, no spaces: entries whose data contains it.
    Hex(String),
}

impl Filter {
    /// `TX`, `RX`, or a hex pattern (spaces and case ignored).
    pub fn parse(s: &str) -> Result<Filter, String> {
        let t = s.trim();
        match t.to_ascii_uppercase().as_str() {
            "" => Ok(Filter::All),
            "TX" => Ok(Filter::Direction(Direction::Tx)),
            "RX" => Ok(Filter::Direction(Direction::Rx)),
            _ => hex_pattern(t).map(Filter::Hex),
        }
    }

    fn keeps(&self, e: &PacketEntry) -> bool {
        match self {
            Filter::All => true,
            Filter::Direction(d) => e.direction == *d,
            Filter::Hex(p) => e.hex().contains(p.as_str()),
        }
    }
}

/// Normalises a hex search pattern: spaces, colons and case are ignored.
pub fn hex_pattern(s: &str) -> Result<String, String> {
    let p: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect::<String>()
        .to_ascii_uppercase();
    if p.is_empty() || !p.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{s:?} is not a hex pattern (e.g. \"A7 B3\")"));
    }
    Ok(p)
}

/// Counts for one device (or all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PacketCounts {
    pub packets_transmitted: u64,
    pub packets_received: u64,
    pub bytes_transmitted: u64,
    pub bytes_received: u64,
}

struct State {
    ring: VecDeque<PacketEntry>,
    next_seq: u64,
    totals: PacketCounts,
}

pub struct PacketLog {
    capacity: usize,
    state: Mutex<State>,
}

impl PacketLog {
    pub fn new(capacity: usize) -> Self {
        PacketLog {
            capacity: capacity.max(1),
            state: Mutex::new(State {
                ring: VecDeque::with_capacity(capacity.clamp(1, 4096)),
                next_seq: 1,
                totals: PacketCounts::default(),
            }),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn record(
        &self,
        direction: Direction,
        device: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        data: Bytes,
    ) {
        tracing::debug!(%device, %characteristic, dir = ?direction, hex = %hex::encode(&data), "packet");
        let mut st = lock(&self.state);
        let len = data.len() as u64;
        match direction {
            Direction::Tx => {
                st.totals.packets_transmitted += 1;
                st.totals.bytes_transmitted += len;
            }
            Direction::Rx => {
                st.totals.packets_received += 1;
                st.totals.bytes_received += len;
            }
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        if st.ring.len() == self.capacity {
            st.ring.pop_front();
        }
        st.ring.push_back(PacketEntry {
            seq,
            at: SystemTime::now(),
            direction,
            device: device.clone(),
            service,
            characteristic,
            data,
        });
    }

    /// Entries from `since` on, oldest first, of devices the caller may see and that
    /// `filter` keeps: at most `limit`, and how many more matched.
    pub fn query(
        &self,
        since: &Since,
        filter: &Filter,
        visible: &DeviceFilter,
        limit: usize,
    ) -> (Vec<PacketEntry>, usize) {
        let now = SystemTime::now();
        let st = lock(&self.state);
        let start = |e: &PacketEntry| match since {
            Since::Ago(d) => now.duration_since(e.at).map(|age| age <= *d).unwrap_or(true),
            Since::Time(t) => e.at >= *t,
            Since::AfterSeq(s) => e.seq > *s,
        };
        let mut out = Vec::new();
        let mut more = 0;
        for e in st
            .ring
            .iter()
            .filter(|e| start(e) && filter.keeps(e) && visible.admits(&e.device))
        {
            if out.len() < limit {
                out.push(e.clone());
            } else {
                more += 1;
            }
        }
        (out, more)
    }

    /// The newest entries of devices the caller may see whose data contains
    /// `pattern` (normalised hex), newest first.
    pub fn search(&self, pattern: &str, visible: &DeviceFilter, limit: usize) -> Vec<PacketEntry> {
        let st = lock(&self.state);
        st.ring
            .iter()
            .rev()
            .filter(|e| visible.admits(&e.device) && e.hex().contains(pattern))
            .take(limit)
            .cloned()
            .collect()
    }

    /// The highest sequence number handed out so far (0 before any).
    pub fn last_seq(&self) -> u64 {
        lock(&self.state).next_seq - 1
    }

    /// Totals since start, over every device.
    pub fn totals(&self) -> PacketCounts {
        lock(&self.state).totals
    }

    /// Counts over what the ring still holds for one device, and its newest entry's time.
    pub fn device_activity(&self, device: &DeviceId) -> (PacketCounts, Option<SystemTime>) {
        let st = lock(&self.state);
        let mut c = PacketCounts::default();
        let mut last = None;
        for e in st.ring.iter().filter(|e| &e.device == device) {
            let len = e.data.len() as u64;
            match e.direction {
                Direction::Tx => {
                    c.packets_transmitted += 1;
                    c.bytes_transmitted += len;
                }
                Direction::Rx => {
                    c.packets_received += 1;
                    c.bytes_received += len;
                }
            }
            last = Some(e.at);
        }
        (c, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(n: u8, capacity: usize) -> PacketLog {
        let log = PacketLog::new(capacity);
        let dev = DeviceId::new("d");
        for i in 0..n {
            let dir = if i % 2 == 0 { Direction::Tx } else { Direction::Rx };
            log.record(
                dir,
                &dev,
                Uuid::from_u16(1),
                Uuid::from_u16(2),
                Bytes::from(vec![0xA7, 0xB3, i]),
            );
        }
        log
    }

    #[test]
    fn the_ring_keeps_the_newest_and_counts_everything() {
        let log = log_with(10, 4);
        let (all, more) = log.query(&Since::AfterSeq(0), &Filter::All, &DeviceFilter::all(), 100);
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![7, 8, 9, 10]);
        assert_eq!(more, 0);
        assert_eq!(log.totals().packets_transmitted, 5);
        assert_eq!(log.totals().bytes_received, 15);
        assert_eq!(log.last_seq(), 10);
    }

    #[test]
    fn filters_by_direction_hex_and_limit() {
        let log = log_with(10, 100);
        let all = DeviceFilter::all();
        let (tx, _) = log.query(
            &Since::Ago(Duration::from_secs(60)),
            &Filter::parse("tx").unwrap(),
            &all,
            100,
        );
        assert_eq!(tx.len(), 5);
        assert!(tx.iter().all(|e| e.direction == Direction::Tx));
        let (hits, _) = log.query(&Since::AfterSeq(0), &Filter::parse("b3 05").unwrap(), &all, 100);
        assert_eq!(hits.len(), 1);
        let (page, more) = log.query(&Since::AfterSeq(0), &Filter::All, &all, 3);
        assert_eq!((page.len(), more), (3, 7));
        assert_eq!(
            log.search("A7B3", &all, 2)
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>(),
            vec![10, 9]
        );
    }

    #[test]
    fn parses_since_and_rejects_nonsense() {
        assert_eq!(Since::parse("30s").unwrap(), Since::Ago(Duration::from_secs(30)));
        assert_eq!(Since::parse("5m").unwrap(), Since::Ago(Duration::from_secs(300)));
        assert_eq!(Since::parse("42").unwrap(), Since::AfterSeq(42));
        assert!(matches!(
            Since::parse("2026-11-23T12:00:00Z").unwrap(),
            Since::Time(_)
        ));
        assert!(Since::parse("yesterday-ish").is_err());
        assert!(Filter::parse("xyz").is_err());
    }
}
