//! BLE devices as hub devices. For each configured BLE device a feed task holds the
//! link through the gateway: it subscribes to the mapped characteristics, decodes
//! each notification into a telemetry point (stored and fanned out like a network
//! device's), keeps the device online while connected, and turns hub commands into
//! BLE writes. On the simulator with nothing configured, the simulated heart-rate
//! monitor, battery and environmental sensor feed the hub out of the box.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::stream::{self, SelectAll, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ble::decode::decode;
use crate::ble::{Uuid, WriteKind};
use crate::gateway::{ConnectOptions, Gateway, SubscriptionEvent};
use crate::hub::commands::{CommandSink, Delivery};
use crate::hub::presence::Replaced;
use crate::hub::{Hub, Inner};
use crate::store::{now_ms, CommandStatus, DeviceBatch, Point};
use crate::sync::AbortOnDrop;

/// How a notification's bytes become a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decoder {
    /// Heart Rate Measurement (0x2A37): beats per minute.
    HeartRate,
    /// Battery Level (0x2A19): percent.
    Battery,
    /// Temperature (0x2A6E): °C.
    Temperature,
    /// Humidity (0x2A6F): percent.
    Humidity,
    /// The bytes as hex.
    Raw,
}

impl Decoder {
    fn value(self, bytes: &[u8]) -> Option<Value> {
        let standard = |uuid| decode(Uuid::from_u16(uuid), bytes).map(|d| d.value);
        match self {
            Decoder::HeartRate => standard(0x2A37)?.get("bpm").cloned(),
            Decoder::Battery => standard(0x2A19),
            Decoder::Temperature => standard(0x2A6E),
            Decoder::Humidity => standard(0x2A6F),
            Decoder::Raw => Some(json!(hex::encode(bytes))),
        }
        .filter(|v| !v.is_null())
    }
}

/// One `[[hub.ble]]` entry: a characteristic's notifications as a telemetry key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BleTelemetry {
    /// The BLE device: an id, or a name prefix.
    pub device: String,
    /// The hub device id; the BLE device id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_id: Option<String>,
    pub service: Uuid,
    pub characteristic: Uuid,
    pub decoder: Decoder,
    pub key: String,
}

impl BleTelemetry {
    pub fn validate(&self) -> Result<(), String> {
        if self.key.is_empty() || self.device.is_empty() {
            return Err("hub.ble entries need device and key".into());
        }
        Ok(())
    }
}

/// One `[[hub.ble_commands]]` entry: a hub command that writes `params.value`
/// (hex) to a characteristic.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BleCommand {
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_id: Option<String>,
    /// The command name clients send.
    pub name: String,
    pub service: Uuid,
    pub characteristic: Uuid,
    /// Write with response (the default) or without.
    #[serde(default = "yes")]
    pub with_response: bool,
}

fn yes() -> bool {
    true
}

impl BleCommand {
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.device.is_empty() {
            return Err("hub.ble_commands entries need device and name".into());
        }
        Ok(())
    }
}

/// Everything one BLE device contributes.
#[derive(Clone, Debug, Default)]
pub(in crate::hub) struct Feed {
    device: String,
    hub_id: Option<String>,
    telemetry: Vec<BleTelemetry>,
    commands: Vec<BleCommand>,
}

impl Feed {
    /// The hub ids known before connecting whose commands become BLE writes.
    pub(in crate::hub) fn written_ids(&self) -> Vec<String> {
        if self.commands.is_empty() {
            return Vec::new();
        }
        let mut ids = vec![self.device.clone()];
        ids.extend(self.hub_id.clone());
        ids
    }
}

/// The simulator's devices, fed when nothing is configured.
fn sim_defaults() -> (Vec<BleTelemetry>, Vec<BleCommand>) {
    let t = |device: &str, service: u16, characteristic: u16, decoder, key: &str| BleTelemetry {
        device: device.into(),
        hub_id: None,
        service: Uuid::from_u16(service),
        characteristic: Uuid::from_u16(characteristic),
        decoder,
        key: key.into(),
    };
    let telemetry = vec![
        t(
            "C0:FF:EE:00:00:01",
            0x180D,
            0x2A37,
            Decoder::HeartRate,
            "heart_rate",
        ),
        t("C0:FF:EE:00:00:02", 0x180F, 0x2A19, Decoder::Battery, "battery"),
        t(
            "C0:FF:EE:00:00:03",
            0x181A,
            0x2A6E,
            Decoder::Temperature,
            "temperature",
        ),
        t("C0:FF:EE:00:00:03", 0x181A, 0x2A6F, Decoder::Humidity, "humidity"),
    ];
    let commands = vec![BleCommand {
        device: "C0:FF:EE:00:00:01".into(),
        hub_id: None,
        name: "reset_energy_expended".into(),
        service: Uuid::from_u16(0x180D),
        characteristic: Uuid::from_u16(0x2A39),
        with_response: true,
    }];
    (telemetry, commands)
}

/// The feeds the configuration asks for, one per BLE device.
pub(in crate::hub) fn feeds(config: &crate::hub::HubConfig, gateway: &Gateway) -> Vec<Feed> {
    let (telemetry, commands) = if config.ble.is_empty() && config.ble_commands.is_empty() {
        if !(config.sim_feed && gateway.is_simulated()) {
            return Vec::new();
        }
        sim_defaults()
    } else {
        (config.ble.clone(), config.ble_commands.clone())
    };
    let mut by_device: BTreeMap<String, Feed> = BTreeMap::new();
    for t in telemetry {
        let f = by_device.entry(t.device.clone()).or_default();
        f.device = t.device.clone();
        f.hub_id = f.hub_id.take().or(t.hub_id.clone());
        f.telemetry.push(t);
    }
    for c in commands {
        let f = by_device.entry(c.device.clone()).or_default();
        f.device = c.device.clone();
        f.hub_id = f.hub_id.take().or(c.hub_id.clone());
        f.commands.push(c);
    }
    by_device.into_values().collect()
}

pub(in crate::hub) fn spawn(feeds: Vec<Feed>, gateway: Gateway, hub: Weak<Inner>) -> Vec<AbortOnDrop> {
    feeds
        .into_iter()
        .map(|feed| AbortOnDrop(tokio::spawn(run(feed, gateway.clone(), hub.clone()))))
        .collect()
}

/// Commands for a BLE device go to its feed task.
struct FeedSink(mpsc::UnboundedSender<Delivery>);

impl CommandSink for FeedSink {
    fn deliver(&self, d: Delivery) -> bool {
        self.0.send(d).is_ok()
    }
}

/// Connects, feeds until the link ends for good, waits, and tries again.
async fn run(feed: Feed, gateway: Gateway, hub: Weak<Inner>) {
    let mut wait = Duration::from_secs(1);
    loop {
        match gateway.connect(&feed.device, ConnectOptions::default()).await {
            Ok(info) => {
                wait = Duration::from_secs(1);
                let Some(h) = hub.upgrade() else { return };
                let hub = Hub(h);
                let hub_id = feed.hub_id.clone().unwrap_or_else(|| info.id.to_string());
                if let Err(e) = feed_link(&feed, &gateway, &hub, &info.id, &hub_id).await {
                    tracing::warn!(device = %feed.device, error = %e, "BLE feed interrupted");
                }
            }
            Err(e) => tracing::debug!(device = %feed.device, error = %e, "BLE feed cannot connect yet"),
        }
        if hub.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

async fn feed_link(
    feed: &Feed,
    gateway: &Gateway,
    hub: &Hub,
    id: &crate::ble::DeviceId,
    hub_id: &str,
) -> Result<(), String> {
    let device = gateway.device(id);
    let mut streams = SelectAll::new();
    for (i, t) in feed.telemetry.iter().enumerate() {
        let sub = device
            .subscribe(t.service, t.characteristic)
            .await
            .map_err(|e| format!("subscribe {}: {e}", t.characteristic))?;
        streams.push(
            stream::unfold(sub, |mut s| async move { s.recv().await.map(|e| (e, s)) })
                .map(move |e| (i, e))
                .boxed(),
        );
    }
    if !feed.commands.is_empty() {
        hub.ble_written(hub_id);
    }
    let replaced = CancellationToken::new();
    let device_name: Arc<str> = hub_id.into();
    let conn = hub
        .presence()
        .connect(&device_name, "ble", Replaced::Token(replaced.clone()));
    let (tx, mut commands) = mpsc::unbounded_channel();
    hub.commands().online(&device_name, conn, Arc::new(FeedSink(tx)));
    let result = loop {
        tokio::select! {
            next = streams.next(), if !streams.is_empty() => match next {
                Some((i, SubscriptionEvent::Notification(n))) => {
                    let t = &feed.telemetry[i];
                    let Some(value) = t.decoder.value(&n.value) else { continue };
                    let batch = DeviceBatch {
                        device: device_name.clone(),
                        seq: None,
                        points: vec![Point { key: t.key.clone(), value, ts: now_ms() }],
                    };
                    // Stored in order; the ack is not needed, a BLE device has no retries.
                    if hub.writer().submit(batch).await.is_err() {
                        break Err("the telemetry writer stopped".to_string());
                    }
                }
                Some((_, SubscriptionEvent::Lagged(n))) => {
                    tracing::warn!(device = %hub_id, missed = n, "BLE feed fell behind");
                }
                None => break Ok(()),
            },
            Some(delivery) = commands.recv() => {
                if let Delivery::Command(c) = delivery {
                    let (status, result, error) = write(feed, &device, &c.name, &c.params).await;
                    let _ = hub.commands().report(hub_id, c.id, status, result, error).await;
                }
            }
            _ = replaced.cancelled() => break Ok(()),
        }
    };
    hub.commands().offline(hub_id, conn);
    hub.presence().disconnect(hub_id, "ble", conn);
    result
}

/// Carries out one hub command as a BLE write.
async fn write(
    feed: &Feed,
    device: &crate::gateway::DeviceRef<'_>,
    name: &str,
    params: &Value,
) -> (CommandStatus, Option<Value>, Option<String>) {
    let Some(c) = feed.commands.iter().find(|c| c.name == name) else {
        let known: Vec<&str> = feed.commands.iter().map(|c| c.name.as_str()).collect();
        return (
            CommandStatus::Failed,
            None,
            Some(format!("unknown command {name:?}; this device takes {known:?}")),
        );
    };
    let hex_value = params.get("value").and_then(Value::as_str).unwrap_or("");
    let Ok(bytes) = hex::decode(hex_value) else {
        return (
            CommandStatus::Failed,
            None,
            Some("params.value must be hex bytes, like \"01\"".into()),
        );
    };
    let kind = if c.with_response {
        WriteKind::WithResponse
    } else {
        WriteKind::WithoutResponse
    };
    match device
        .write(c.service, c.characteristic, bytes.clone(), kind)
        .await
    {
        Ok(()) => (
            CommandStatus::Succeeded,
            Some(json!({"written": hex::encode(bytes)})),
            None,
        ),
        Err(e) => (CommandStatus::Failed, None, Some(e.to_string())),
    }
}
