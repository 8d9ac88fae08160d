//! The exporter: one broker session at a time (made again with back-off), the
//! hub's commits followed by point id, every publish QoS 1 and tracked until the
//! broker acknowledges it (a QoS 1 broker acknowledges in order), so the last
//! acknowledged point is where a new session starts.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::discovery::{self, Names};
use super::{topic, MqttConfig, MqttError};
use crate::auth::Principal;
use crate::gateway::Gateway;
use crate::hub::{CommandRequest, Event as HubEvent, Happened, Hub, StatusReport};
use crate::outbox::Outbox;
use crate::store::{CommandRecord, PointQuery, StoredPoint};
use crate::sync::AbortOnDrop;

/// Points published and not yet acknowledged, at most. The store is read again
/// when half of them are acknowledged, so one query serves many publishes.
const WINDOW: usize = 512;
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Room in a packet besides its payload: the fixed header, the topic (at most
/// [`topic::MAX_TOPIC`] bytes and its length) and the packet id.
const PACKET_OVERHEAD: usize = topic::MAX_TOPIC + 16;

/// Starts the export when `mqtt.url` is set. Refuses commands from MQTT with
/// authentication on and no principal to run them as.
pub fn spawn(hub: &Hub, gateway: &Gateway, config: &MqttConfig) -> Result<Option<AbortOnDrop>, MqttError> {
    let Some(broker) = config.broker()? else {
        return Ok(None);
    };
    let tls = broker
        .tls
        .then(|| crate::tls::client_config(&config.ca_file, "mqtt.ca_file").map_err(MqttError::Tls))
        .transpose()?;
    let principal = config.command_principal(hub.auth())?;
    let exporter = Exporter {
        hub: hub.clone(),
        gateway: gateway.clone(),
        availability: format!("{}/status", config.base_topic),
        config: config.clone(),
        acked: 0,
        sent: 0,
        inflight: VecDeque::new(),
        announced: HashSet::new(),
        units: HashMap::new(),
        theengs_packets: Default::default(),
        tls,
        principal,
    };
    tracing::info!(broker = %format!("{}:{}", broker.host, broker.port), tls = broker.tls,
        base = %config.base_topic, "exporting telemetry to MQTT");
    Ok(Some(AbortOnDrop(tokio::spawn(
        exporter.run(broker.host, broker.port),
    ))))
}

struct Exporter {
    hub: Hub,
    gateway: Gateway,
    config: MqttConfig,
    availability: String,
    /// The last point the broker acknowledged (or skipped past the backlog bound).
    acked: i64,
    /// The last point handed to the client.
    sent: i64,
    /// Publishes awaiting their acknowledgement, in order: the point each carries.
    inflight: VecDeque<Option<i64>>,
    /// (device, key) whose discovery config this session has published.
    announced: HashSet<(String, String)>,
    /// (device, key) → the unit its decoder gave, for discovery.
    units: HashMap<(String, String), &'static str>,
    /// Each device's last packet sent as Theengs JSON.
    theengs_packets: crate::adverts::NewPackets,
    /// `mqtts://`: the TLS settings.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Whom commands from MQTT run as (`mqtt.command_principal`); `None` with
    /// authentication off.
    principal: Option<Principal>,
}

impl Exporter {
    async fn run(mut self, host: String, port: u16) {
        let mut committed = self.hub.committed();
        // What was committed before gattway started is history, not news.
        self.acked = *committed.borrow();
        let metrics = self.gateway.metrics().clone();
        let statuses: Outbox<HubEvent> = Outbox::new(1024);
        let mut adverts = self.gateway.advertisements();
        let mut backoff = Duration::from_millis(250);
        loop {
            let (client, mut events) = AsyncClient::new(self.options(&host, port), 2 * WINDOW + 256);
            self.inflight.clear();
            self.announced.clear();
            self.sent = self.acked;
            let mut connected = false;
            loop {
                let last = *committed.borrow();
                metrics.mqtt_backlog.set(last.saturating_sub(self.acked));
                if connected && self.inflight.len() <= WINDOW / 2 {
                    if let Err(e) = self.fill(&client, last).await {
                        tracing::warn!(error = %e, "MQTT export: the session ends");
                        break;
                    }
                }
                let caught_up = self.sent >= last;
                tokio::select! {
                    event = events.poll() => match event {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            tracing::info!(broker = %format!("{host}:{port}"), "MQTT connected");
                            connected = true;
                            backoff = Duration::from_millis(250);
                            metrics.mqtt_connected.set(1);
                            if self.session_start(&client).is_err() {
                                break;
                            }
                        }
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            if let Some(Some(id)) = self.inflight.pop_front() {
                                self.acked = self.acked.max(id);
                                metrics.mqtt_published.inc();
                            }
                        }
                        // A retained command would run again at every reconnect
                        // (each session subscribes anew): commands are events.
                        Ok(Event::Incoming(Packet::Publish(p))) if p.retain => {
                            tracing::warn!(topic = %p.topic, "a retained MQTT command was ignored: publish commands without retain");
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            if self.command(&client, &p.topic, &p.payload, &statuses).await.is_err() {
                                break;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, retry_in = ?backoff, "MQTT broker unreachable");
                            break;
                        }
                    },
                    _ = committed.changed(), if caught_up && connected => {}
                    event = statuses.next(), if connected => {
                        if let Happened::CommandStatus(record) = event.happened() {
                            if self.status(&client, record).is_err() {
                                break;
                            }
                        }
                    }
                    heard = adverts.recv() => match heard {
                        Ok(h) => {
                            for r in &h.device.readings {
                                if let Some(unit) = r.unit {
                                    self.units.insert((h.advert.id.to_string(), r.key.clone()), unit);
                                }
                            }
                            if connected && self.theengs(&client, &h).is_err() {
                                break;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => adverts = broadcast::channel(1).1,
                    },
                }
            }
            metrics.mqtt_connected.set(0);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn options(&self, host: &str, port: u16) -> MqttOptions {
        let mut o = MqttOptions::new(&self.config.client_id, host, port);
        o.set_keep_alive(Duration::from_secs(15));
        // The window, and room for discovery configs and command statuses.
        o.set_inflight((WINDOW + 128) as u16);
        o.set_clean_session(true);
        // rumqttc's default is 10 KiB each way: a longer value would fail the
        // session every time it is sent again. Longer ones are skipped instead.
        let packet = self.config.max_payload_bytes + PACKET_OVERHEAD;
        o.set_max_packet_size(packet, packet);
        o.set_last_will(LastWill::new(
            &self.availability,
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(tls) = &self.tls {
            o.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls.clone()),
            ));
        }
        if !self.config.username.is_empty() {
            o.set_credentials(&self.config.username, &self.config.password);
        }
        o
    }

    fn names(&self) -> Names {
        Names {
            prefix: self.config.discovery_prefix.clone(),
            gateway_id: format!("gattway_{}", discovery::slug(&self.config.client_id)),
            availability: self.availability.clone(),
        }
    }

    /// Publishes `payload` at QoS 1 and remembers what it carries. A payload over
    /// `mqtt.max_payload_bytes` is not sent (the broker would end the session, and
    /// the next one would send it again), and `false` says so.
    fn publish(
        &mut self,
        client: &AsyncClient,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
        point: Option<i64>,
    ) -> Result<bool, rumqttc::ClientError> {
        if payload.len() > self.config.max_payload_bytes {
            tracing::warn!(%topic, bytes = payload.len(), limit = self.config.max_payload_bytes,
                "MQTT export: a payload over mqtt.max_payload_bytes is not published");
            return Ok(false);
        }
        client.try_publish(topic, QoS::AtLeastOnce, retain, payload)?;
        self.inflight.push_back(point);
        Ok(true)
    }

    /// A point that cannot be published is passed over, counted: it is done once
    /// the publish before it is acknowledged (QoS 1 acknowledges in order), or at
    /// once when none is waiting.
    fn skip(&mut self, p: &StoredPoint, why: &str) {
        tracing::warn!(device = %p.device.escape_debug(), key = %p.key.escape_debug(), id = p.id,
            "MQTT export: a point is skipped: {why}");
        self.gateway.metrics().mqtt_skipped.inc();
        match self.inflight.back_mut() {
            Some(last) => *last = Some(p.id),
            None => self.acked = self.acked.max(p.id),
        }
    }

    /// A new session: gattway is online, and listens for commands.
    fn session_start(&mut self, client: &AsyncClient) -> Result<(), rumqttc::ClientError> {
        let topic = self.availability.clone();
        self.publish(client, topic, b"online".to_vec(), true, None)?;
        if !self.config.discovery_prefix.is_empty() {
            // The gateway is a device too (each sensor's `via_device`), with its
            // connectivity as an entity.
            let a = discovery::gateway(&self.names(), &self.config.client_id);
            self.publish(client, a.topic, a.config.to_string().into_bytes(), true, None)?;
        }
        // Telemetry topics are two levels under the base and statuses four (see
        // `topic.rs`): nothing the export publishes matches this filter, so it
        // never hears itself as a command.
        if self.config.commands {
            client.try_subscribe(
                format!("{}/+/command/+", self.config.base_topic),
                QoS::AtLeastOnce,
            )?;
        }
        Ok(())
    }

    /// Sends committed points the broker has not had, up to the window.
    async fn fill(&mut self, client: &AsyncClient, last: i64) -> Result<(), String> {
        let behind = last.saturating_sub(self.acked);
        let bound = self.config.max_backlog as i64;
        if behind > bound {
            let skipped = behind - bound;
            tracing::warn!(
                skipped,
                "MQTT export backlog over mqtt.max_backlog: the oldest points are skipped"
            );
            self.gateway.metrics().mqtt_dropped.inc_by(skipped as u64);
            self.acked = last - bound;
            self.sent = self.sent.max(self.acked);
        }
        while self.inflight.len() < WINDOW && self.sent < last {
            let query = PointQuery {
                after_id: Some(self.sent),
                up_to_id: Some(last),
                limit: (WINDOW - self.inflight.len()) as u32,
                ..Default::default()
            };
            let points = self.hub.store().points(&query).await.map_err(|e| e.to_string())?;
            if points.is_empty() {
                // Gone (retention) or never there: nothing up to `last` to send.
                self.sent = last;
                break;
            }
            for p in points {
                self.point(client, &p).map_err(|e| e.to_string())?;
                self.sent = p.id;
            }
        }
        Ok(())
    }

    /// One point: its discovery config the first time its key is seen this
    /// session, then its value. A point with no valid topic, or too long a value,
    /// is skipped: one bad point never stalls the export.
    fn point(&mut self, client: &AsyncClient, p: &StoredPoint) -> Result<(), rumqttc::ClientError> {
        let Some(state_topic) = topic::join(&self.config.base_topic, &[&p.device, &p.key]) else {
            self.skip(p, "no valid MQTT topic (an empty name, or over 65,535 bytes)");
            return Ok(());
        };
        let payload = match &p.value {
            Value::String(s) => s.clone().into_bytes(),
            v => v.to_string().into_bytes(),
        };
        if payload.len() > self.config.max_payload_bytes {
            self.skip(p, "its value is longer than mqtt.max_payload_bytes");
            return Ok(());
        }
        if !self.config.discovery_prefix.is_empty()
            && !self.announced.contains(&(p.device.clone(), p.key.clone()))
        {
            let unit = self.units.get(&(p.device.clone(), p.key.clone())).copied();
            if let Some(entity) = discovery::entity(&p.key, &p.value, unit) {
                let name = self
                    .gateway
                    .name_of(&crate::ble::DeviceId::new(&p.device))
                    .unwrap_or_else(|| p.device.clone());
                let a = discovery::announce(&self.names(), &p.device, &name, &p.key, &state_topic, &entity);
                self.publish(client, a.topic, a.config.to_string().into_bytes(), true, None)?;
            }
            self.announced.insert((p.device.clone(), p.key.clone()));
        }
        self.publish(client, state_topic, payload, false, Some(p.id))?;
        Ok(())
    }

    /// The advertisement as Theengs-style JSON, when enabled and when its payload
    /// is new (a sensor repeats each packet).
    fn theengs(
        &mut self,
        client: &AsyncClient,
        heard: &crate::gateway::Heard,
    ) -> Result<(), rumqttc::ClientError> {
        if self.config.theengs_gateway.is_empty() {
            return Ok(());
        }
        let Some((mac, message)) = super::theengs::message(heard) else {
            return Ok(());
        };
        if !self.theengs_packets.is_new(&heard.advert) {
            return Ok(());
        }
        let topic = format!("home/{}/BTtoMQTT/{mac}", self.config.theengs_gateway);
        self.publish(client, topic, message.to_string().into_bytes(), false, None)?;
        Ok(())
    }

    /// A command from `<base>/<device>/command/<name>` (each name one escaped
    /// level), routed as a hub command under the configured principal, which must
    /// be allowed to command the device as on `/hub`. Its statuses come back
    /// through `statuses`; a refusal is published at once.
    async fn command(
        &mut self,
        client: &AsyncClient,
        topic: &str,
        payload: &[u8],
        statuses: &Outbox<HubEvent>,
    ) -> Result<(), rumqttc::ClientError> {
        let Some(rest) = topic.strip_prefix(&format!("{}/", self.config.base_topic)) else {
            return Ok(());
        };
        let levels: Vec<&str> = rest.split('/').collect();
        let [device, "command", name] = levels[..] else {
            return Ok(());
        };
        let (Some(device), Some(name)) = (topic::name(device), topic::name(name)) else {
            return Ok(());
        };
        let params = match payload {
            [] => Ok(None),
            bytes => serde_json::from_slice::<Value>(bytes).map(Some),
        };
        let issuer = match &self.principal {
            Some(p) => format!("mqtt:{}", p.subject),
            None => format!("mqtt:{}", self.config.client_id),
        };
        let record = self
            .hub
            .may_command(self.principal.as_ref(), &device)
            .map_err(|e| e.to_string())
            .and_then(|()| params.map_err(|e| format!("params are not JSON: {e}")))
            .and_then(|params| {
                CommandRequest {
                    device: device.clone(),
                    name: name.clone(),
                    params,
                    timeout: None,
                    priority: None,
                    ttl: None,
                }
                .into_record(self.hub.config(), Some(issuer))
                .map_err(|e| e.to_string())
            });
        let result = match record {
            Ok(record) => self
                .hub
                .commands()
                .submit(record, Some(statuses.clone()))
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => Ok(()),
            Err(message) => {
                let refused = json!({"type": "command_status", "device": device, "name": name, "status": "rejected", "error": message});
                self.publish_status(client, &device, &name, &refused)
            }
        }
    }

    /// A command's status, to `<base>/<device>/command/<name>/status`: what
    /// `/hub` sends as `command_status` too.
    fn status(&mut self, client: &AsyncClient, c: &CommandRecord) -> Result<(), rumqttc::ClientError> {
        let mut status = json!(StatusReport::from(c));
        status["type"] = json!("command_status");
        self.publish_status(client, &c.device, &c.name, &status)
    }

    fn publish_status(
        &mut self,
        client: &AsyncClient,
        device: &str,
        name: &str,
        status: &Value,
    ) -> Result<(), rumqttc::ClientError> {
        let (Some(device), Some(name)) = (topic::level(device), topic::level(name)) else {
            return Ok(());
        };
        let topic = format!("{}/{device}/command/{name}/status", self.config.base_topic);
        self.publish(client, topic, status.to_string().into_bytes(), false, None)?;
        Ok(())
    }
}
