//! Collections: notifications recorded into data an assistant can fetch. Each one is
//! a task that subscribes to a device's characteristics, turns every notification
//! into a sample (numbers by the SIG decoder or a profile's messages, the bytes as
//! hex), optionally stores the numbers in the device hub, and stops after its
//! duration or count. They live server-wide (an HTTP client that reconnects finds its
//! collection), bounded in number and in samples, and render as CSV and as JSON with
//! summary statistics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::stream::{self, SelectAll, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};

use crate::ble::decode::decode;
use crate::ble::{DeviceId, Uuid};
use crate::gateway::serde_helpers::to_unix_ms;
use crate::gateway::{Subscription, SubscriptionEvent};
use crate::profiles::Profile;
use crate::store::{DeviceBatch, Point, TelemetryWriter};
use crate::sync::{lock, AbortOnDrop};

/// Samples one collection keeps; it stops, `full`, at this many.
pub const MAX_SAMPLES: usize = 20_000;
/// Collections kept at once; the oldest finished one goes to make room.
pub const MAX_COLLECTIONS: usize = 32;

/// How notifications become numbers.
#[derive(Clone, Debug)]
pub enum Decoding {
    /// The SIG decoder where the characteristic is standard; nothing otherwise.
    Sig,
    /// A profile's messages (and command answers' fields).
    Profile(Arc<Profile>),
    /// Bytes only.
    Raw,
}

impl Decoding {
    fn label(&self) -> String {
        match self {
            Decoding::Sig => "sig".into(),
            Decoding::Profile(p) => format!("profile:{}", p.name),
            Decoding::Raw => "raw".into(),
        }
    }

    /// The numbers in a notification, each under its series key.
    fn values(&self, characteristic: Uuid, bytes: &[u8]) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        match self {
            Decoding::Sig => {
                if let Some(d) = decode(characteristic, bytes) {
                    let base = snake(d.name);
                    numbers(&base, &d.value, &mut out);
                }
            }
            Decoding::Profile(p) => {
                if let Some((message, Ok(fields))) = p.recognise(bytes) {
                    for (name, field) in fields {
                        numbers(&format!("{}.{name}", message.name), &field["value"], &mut out);
                    }
                }
            }
            Decoding::Raw => {}
        }
        out
    }
}

/// `value`'s numbers: itself when a number (or bool), each numeric member of an
/// object under `base.member`.
fn numbers(base: &str, value: &Value, out: &mut Vec<(String, f64)>) {
    match value {
        Value::Number(n) => out.extend(n.as_f64().map(|f| (base.to_string(), f))),
        Value::Bool(b) => out.push((base.to_string(), f64::from(u8::from(*b)))),
        Value::Object(members) => {
            for (k, v) in members {
                if v.is_number() || v.is_boolean() {
                    numbers(&format!("{base}.{k}"), v, out);
                }
            }
        }
        _ => {}
    }
}

fn snake(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join("_")
}

#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub at_ms: u64,
    pub characteristic: String,
    pub hex: String,
    pub values: BTreeMap<String, f64>,
}

struct State {
    samples: Vec<Sample>,
    /// Notifications the subscription dropped because the collection fell behind.
    dropped: u64,
    stopped: Option<(SystemTime, String)>,
}

/// One recording.
pub struct Collection {
    pub id: String,
    pub device: DeviceId,
    pub targets: Vec<(Uuid, Uuid)>,
    pub decoding: Decoding,
    pub started: SystemTime,
    pub to_hub: bool,
    state: Mutex<State>,
    task: Mutex<Option<AbortOnDrop>>,
}

/// What the recording is told to do.
pub struct Plan {
    pub device: DeviceId,
    pub subscriptions: Vec<((Uuid, Uuid), Subscription)>,
    pub decoding: Decoding,
    pub duration: Duration,
    pub count: Option<u64>,
    pub hub: Option<TelemetryWriter>,
}

/// Every collection of this server.
#[derive(Default)]
pub struct Collections {
    all: Mutex<BTreeMap<u64, Arc<Collection>>>,
    next: AtomicU64,
}

impl Collections {
    /// Starts recording; fails only when every kept collection is still running.
    pub fn start(&self, plan: Plan) -> Result<Arc<Collection>, String> {
        let mut all = lock(&self.all);
        if all.len() >= MAX_COLLECTIONS {
            let oldest_done = all.iter().find(|(_, c)| c.is_stopped()).map(|(n, _)| *n);
            match oldest_done {
                Some(n) => {
                    all.remove(&n);
                }
                None => {
                    return Err(format!(
                        "{MAX_COLLECTIONS} collections are running: stop one with ble_collect_stop first"
                    ))
                }
            }
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let collection = Arc::new(Collection {
            id: format!("c{n}"),
            device: plan.device.clone(),
            targets: plan.subscriptions.iter().map(|(t, _)| *t).collect(),
            decoding: plan.decoding.clone(),
            started: SystemTime::now(),
            to_hub: plan.hub.is_some(),
            state: Mutex::new(State {
                samples: Vec::new(),
                dropped: 0,
                stopped: None,
            }),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(record(Arc::downgrade(&collection), plan));
        *lock(&collection.task) = Some(AbortOnDrop(task));
        all.insert(n, collection.clone());
        Ok(collection)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Collection>> {
        lock(&self.all).values().find(|c| c.id == id).cloned()
    }

    pub fn list(&self) -> Vec<Arc<Collection>> {
        lock(&self.all).values().cloned().collect()
    }
}

/// The recording task: until the duration passes, the count is reached, the
/// device goes for good, or the collection is stopped (which aborts this task).
async fn record(collection: std::sync::Weak<Collection>, plan: Plan) {
    let mut streams = SelectAll::new();
    for ((service, characteristic), sub) in plan.subscriptions {
        streams.push(
            stream::unfold(sub, |mut s| async move { s.recv().await.map(|e| (e, s)) })
                .map(move |e| (service, characteristic, e))
                .boxed(),
        );
    }
    let deadline = tokio::time::sleep(plan.duration);
    tokio::pin!(deadline);
    let hub_device: Arc<str> = plan.device.as_str().into();
    let reason = loop {
        let next = tokio::select! {
            _ = &mut deadline => break "duration reached",
            next = streams.next() => next,
        };
        let Some(c) = collection.upgrade() else { return };
        match next {
            None => break "the device disconnected",
            Some((_, _, SubscriptionEvent::Lagged(n))) => lock(&c.state).dropped += n,
            Some((_, characteristic, SubscriptionEvent::Notification(n))) => {
                let values = plan.decoding.values(characteristic, &n.value);
                let at_ms = to_unix_ms(n.at);
                if let Some(hub) = &plan.hub {
                    if !values.is_empty() {
                        let points = (values.iter())
                            .map(|(key, v)| Point {
                                key: key.clone(),
                                value: json!(v),
                                ts: at_ms as i64,
                            })
                            .collect();
                        let batch = DeviceBatch {
                            device: hub_device.clone(),
                            seq: None,
                            points,
                        };
                        if hub.submit(batch).await.is_err() {
                            break "the hub's store stopped";
                        }
                    }
                }
                let mut state = lock(&c.state);
                state.samples.push(Sample {
                    at_ms,
                    characteristic: characteristic.short(),
                    hex: hex::encode(&n.value),
                    values: values.into_iter().collect(),
                });
                if plan.count.is_some_and(|max| state.samples.len() as u64 >= max) {
                    break "count reached";
                }
                if state.samples.len() >= MAX_SAMPLES {
                    break "full";
                }
            }
        }
    };
    if let Some(c) = collection.upgrade() {
        c.finish(reason);
    }
}

impl Collection {
    fn finish(&self, reason: &str) {
        let mut state = lock(&self.state);
        if state.stopped.is_none() {
            state.stopped = Some((SystemTime::now(), reason.to_string()));
        }
    }

    /// Stops the recording (its subscriptions go with the task).
    pub fn stop(&self) {
        self.finish("stopped");
        lock(&self.task).take();
    }

    pub fn is_stopped(&self) -> bool {
        lock(&self.state).stopped.is_some()
    }

    pub fn resource(&self) -> String {
        format!("gattway://collections/{}", self.id)
    }

    /// The collection without its samples: what it is and its statistics.
    pub fn summary(&self) -> Value {
        let state = lock(&self.state);
        self.describe(&state, false)
    }

    /// The whole collection, samples included, as JSON.
    pub fn to_json(&self) -> Value {
        let state = lock(&self.state);
        self.describe(&state, true)
    }

    fn describe(&self, state: &State, with_samples: bool) -> Value {
        let (stopped_ms, reason) = match &state.stopped {
            Some((at, why)) => (Some(to_unix_ms(*at)), Some(why.clone())),
            None => (None, None),
        };
        let mut out = json!({
            "id": self.id,
            "resource": self.resource(),
            "device": self.device.to_string(),
            "characteristics": self.targets.iter().map(|(s, c)| format!("{}/{}", s.short(), c.short())).collect::<Vec<_>>(),
            "decode": self.decoding.label(),
            "to_hub": self.to_hub,
            "state": if state.stopped.is_some() { "finished" } else { "recording" },
            "started_ms": to_unix_ms(self.started),
            "stopped_ms": stopped_ms,
            "stop_reason": reason,
            "samples": state.samples.len(),
            "dropped": state.dropped,
            "series": statistics(&state.samples),
        });
        if with_samples {
            out["data"] = serde_json::to_value(&state.samples).unwrap_or_default();
        }
        out
    }

    /// One row per sample and series (`time_ms,time,characteristic,hex,key,value`);
    /// a sample without numbers is one row with `key` and `value` empty.
    pub fn to_csv(&self) -> String {
        let state = lock(&self.state);
        let mut out = String::from("time_ms,time,characteristic,hex,key,value\n");
        for s in &state.samples {
            let time =
                humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_millis(s.at_ms));
            let prefix = format!("{},{time},{},{}", s.at_ms, s.characteristic, s.hex);
            if s.values.is_empty() {
                out.push_str(&format!("{prefix},,\n"));
            }
            for (key, value) in &s.values {
                out.push_str(&format!("{prefix},{key},{value}\n"));
            }
        }
        out
    }
}

/// For each series: count, min, max, mean, the rate (samples a second), and gaps
/// (intervals over three times the median interval: a sensor that went quiet).
fn statistics(samples: &[Sample]) -> Value {
    let mut by_key: BTreeMap<&str, Vec<(u64, f64)>> = BTreeMap::new();
    for s in samples {
        for (k, v) in &s.values {
            by_key.entry(k.as_str()).or_default().push((s.at_ms, *v));
        }
    }
    let mut out = serde_json::Map::new();
    for (key, points) in by_key {
        let count = points.len();
        let values = points.iter().map(|(_, v)| *v);
        let min = values.clone().fold(f64::INFINITY, f64::min);
        let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
        let mean = values.sum::<f64>() / count as f64;
        let intervals: Vec<u64> = points.windows(2).map(|w| w[1].0.saturating_sub(w[0].0)).collect();
        let span_ms: u64 = intervals.iter().sum();
        let rate = if span_ms > 0 {
            (count - 1) as f64 * 1000.0 / span_ms as f64
        } else {
            0.0
        };
        let mut sorted = intervals.clone();
        sorted.sort_unstable();
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
        let gaps = intervals
            .iter()
            .filter(|i| median > 0 && **i > 3 * median)
            .count();
        let longest = sorted.last().copied().unwrap_or(0);
        out.insert(
            key.to_string(),
            json!({
                "count": count,
                "min": min,
                "max": max,
                "mean": (mean * 1000.0).round() / 1000.0,
                "rate_per_s": (rate * 1000.0).round() / 1000.0,
                "gaps": gaps,
                "longest_interval_ms": longest,
            }),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, v: f64) -> Sample {
        Sample {
            at_ms,
            characteristic: "2a37".into(),
            hex: String::new(),
            values: [("bpm".to_string(), v)].into_iter().collect(),
        }
    }

    #[test]
    fn statistics_count_extremes_mean_rate_and_gaps() {
        // Every 100 ms, then one 1 s silence.
        let samples: Vec<Sample> = [0, 100, 200, 300, 1300, 1400]
            .iter()
            .zip([60.0, 70.0, 80.0, 90.0, 100.0, 110.0])
            .map(|(t, v)| sample(*t, v))
            .collect();
        let s = &statistics(&samples)["bpm"];
        assert_eq!(s["count"], 6);
        assert_eq!(s["min"], 60.0);
        assert_eq!(s["max"], 110.0);
        assert_eq!(s["mean"], 85.0);
        assert_eq!(s["rate_per_s"], 3.571);
        assert_eq!(s["gaps"], 1);
        assert_eq!(s["longest_interval_ms"], 1000);
    }

    #[test]
    fn sig_values_become_series() {
        let hr = Decoding::Sig.values(Uuid::from_u16(0x2A37), &[0x00, 72]);
        assert!(
            hr.contains(&("heart_rate_measurement.bpm".to_string(), 72.0)),
            "{hr:?}"
        );
        let battery = Decoding::Sig.values(Uuid::from_u16(0x2A19), &[91]);
        assert_eq!(battery, vec![("battery_level".to_string(), 91.0)]);
        assert!(Decoding::Raw.values(Uuid::from_u16(0x2A19), &[91]).is_empty());
    }
}
