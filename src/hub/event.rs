//! What the hub tells those who listen: telemetry committed, a device's presence,
//! a command's status. The core builds each [`Event`] once and hands the same one
//! to every listener; it never encodes one. A front end encodes an event the first
//! time one of its connections needs it and keeps that encoding in the event
//! ([`Event::encoded`]), so fan-out to any number of subscribers still encodes
//! once. Commands going to a device are [`super::commands::Delivery`], not events:
//! each has one recipient.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde_json::Value;

use crate::store::{CommandRecord, CommandStatus, StoredPoint};

/// A point as listeners see it: stored, with its id.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PublishedPoint {
    pub id: i64,
    pub key: String,
    pub value: Value,
    pub ts: i64,
}

impl From<&StoredPoint> for PublishedPoint {
    fn from(p: &StoredPoint) -> Self {
        PublishedPoint {
            id: p.id,
            key: p.key.clone(),
            value: p.value.clone(),
            ts: p.ts,
        }
    }
}

/// A command's status as those who hear of it see it (subscribers, its sender,
/// MQTT): which command, where it is now, and its outcome once it has one.
#[derive(Debug, Serialize)]
pub struct StatusReport<'a> {
    pub command_id: &'a str,
    pub device: &'a str,
    pub name: &'a str,
    pub status: CommandStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

impl<'a> From<&'a CommandRecord> for StatusReport<'a> {
    fn from(c: &'a CommandRecord) -> Self {
        StatusReport {
            command_id: &c.id,
            device: &c.device,
            name: &c.name,
            status: c.status,
            result: c.result.as_ref(),
            error: c.error.as_deref(),
        }
    }
}

/// What happened.
#[derive(Debug, PartialEq)]
pub enum Happened {
    /// Points of one device, stored; `replay` marks stored points sent to a
    /// resuming subscriber before live ones.
    Telemetry {
        device: String,
        points: Vec<PublishedPoint>,
        replay: bool,
    },
    /// A device came online or went offline.
    Presence {
        device: String,
        online: bool,
        last_seen: i64,
    },
    /// A command's status changed (or it was queued), as stored.
    CommandStatus(Box<CommandRecord>),
}

/// One event, shared by every listener that gets it; cloning is cheap.
#[derive(Clone, Debug)]
pub struct Event(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    happened: Happened,
    /// The encoding a front end made of it, made once for all its connections.
    /// Untyped, so that the core does not know any front end's frame type.
    encoded: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Event {
    pub fn new(happened: Happened) -> Event {
        Event(Arc::new(Shared {
            happened,
            encoded: OnceLock::new(),
        }))
    }

    pub fn telemetry(device: &str, points: Vec<PublishedPoint>, replay: bool) -> Event {
        Event::new(Happened::Telemetry {
            device: device.to_string(),
            points,
            replay,
        })
    }

    pub fn presence(device: &str, online: bool, last_seen: i64) -> Event {
        Event::new(Happened::Presence {
            device: device.to_string(),
            online,
            last_seen,
        })
    }

    pub fn command_status(record: &CommandRecord) -> Event {
        Event::new(Happened::CommandStatus(Box::new(record.clone())))
    }

    pub fn happened(&self) -> &Happened {
        &self.0.happened
    }

    /// The device the event is about.
    pub fn device(&self) -> &str {
        match &self.0.happened {
            Happened::Telemetry { device, .. } | Happened::Presence { device, .. } => device,
            Happened::CommandStatus(c) => &c.device,
        }
    }

    /// The event as a front end encodes it: `encode` runs once, the first time,
    /// and every later call (from any connection) gets a clone of its result.
    /// One front end encodes the events it shares; should a second ask for another
    /// type, it gets its own encoding each time rather than a wrong one.
    pub fn encoded<T: Clone + Send + Sync + 'static>(&self, encode: impl FnOnce(&Happened) -> T) -> T {
        if let Some(done) = self.0.encoded.get() {
            return match done.downcast_ref::<T>() {
                Some(t) => t.clone(),
                None => encode(&self.0.happened),
            };
        }
        let made = encode(&self.0.happened);
        // Another connection may have encoded it meanwhile: either copy is the same.
        let _ = self.0.encoded.set(Box::new(made.clone()));
        made
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn an_event_is_encoded_once_for_every_listener() {
        let event = Event::presence("a", true, 5);
        let calls = AtomicUsize::new(0);
        let encode = |h: &Happened| {
            calls.fetch_add(1, Ordering::Relaxed);
            format!("{h:?}")
        };
        let first = event.encoded(encode);
        let copies: Vec<String> = (0..3).map(|_| event.clone().encoded(encode)).collect();
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert!(copies.iter().all(|c| *c == first));
        // Another type is encoded on its own, not mistaken for the cached one.
        assert_eq!(event.encoded(|_| 7u8), 7);
        assert_eq!(event.device(), "a");
    }
}
