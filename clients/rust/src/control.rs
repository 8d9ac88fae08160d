//! A client of the control WebSocket (`/ws`, docs/control-protocol.md): scan,
//! connect, read, write and subscribe, answered by id, with the same reconnect
//! rules as the hub clients. After a reconnect it connects the devices it had
//! connected and subscribes again to what it had subscribed to, so notifications
//! carry on.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};

use crate::link::{self, Greeting, Options, Socket, State, Task};
use crate::ClientError;

/// What the server said without being asked.
#[derive(Debug)]
pub enum ControlEvent {
    /// `DEVICE_FOUND` during a scan.
    Found(Value),
    /// `NOTIFICATION` from a subscribed characteristic.
    Notification(Value),
    /// `CONNECTED` / `DISCONNECTED` of a device this connection may see.
    Connected(Value),
    Disconnected(Value),
    /// After a reconnect, what this client had is back: devices connected and
    /// characteristics subscribed again.
    Restored {
        devices: usize,
        subscriptions: usize,
    },
    /// Restoring failed, or the server sent an `ERROR` no request waits for.
    Error(Value),
    /// Anything else, as the server sent it.
    Other(Value),
}

enum Op {
    Request(Value, oneshot::Sender<Result<Value, ClientError>>),
}

/// The handle; the connection's task ends when it is dropped.
pub struct ControlClient {
    task: Task<Op>,
}

impl ControlClient {
    /// Connects to `/ws` on `base` (`http://HOST:PORT`), and again whenever the
    /// connection drops.
    pub fn connect(base: &str, options: Options) -> (ControlClient, mpsc::UnboundedReceiver<ControlEvent>) {
        let url = link::ws_url(base, "/ws");
        let (task, events) = Task::spawn(|ops, events, state| run(url, options, ops, events, state));
        (ControlClient { task }, events)
    }

    /// Sends `{"type": kind, "id": n, …fields}` and waits for the answer with that
    /// id; an `ERROR` is [`ClientError::Hub`]. Fails if the connection drops first.
    pub async fn request(&self, kind: &str, mut fields: Value) -> Result<Value, ClientError> {
        fields["type"] = json!(kind);
        self.task.ask(|answer| Op::Request(fields, answer)).await
    }

    /// Scans for `duration_ms`; devices arrive as [`ControlEvent::Found`].
    pub async fn scan(&self, duration_ms: u64, filters: Value) -> Result<Value, ClientError> {
        self.request("START_SCAN", json!({"duration": duration_ms, "filters": filters}))
            .await
    }

    /// Connects a device, and again after every reconnect until [`Self::disconnect`].
    pub async fn connect_device(&self, device: &str) -> Result<Value, ClientError> {
        self.request("CONNECT", json!({"deviceId": device})).await
    }

    pub async fn disconnect(&self, device: &str) -> Result<Value, ClientError> {
        self.request("DISCONNECT", json!({"deviceId": device})).await
    }

    pub async fn services(&self, device: &str) -> Result<Value, ClientError> {
        self.request("GET_SERVICES", json!({"deviceId": device})).await
    }

    pub async fn read(&self, at: Characteristic<'_>) -> Result<Value, ClientError> {
        self.request("CHARACTERISTIC_READ", at.fields()).await
    }

    pub async fn write(
        &self,
        at: Characteristic<'_>,
        value: &[u8],
        with_response: bool,
    ) -> Result<Value, ClientError> {
        let mut fields = at.fields();
        fields["value"] = json!(base64::engine::general_purpose::STANDARD.encode(value));
        fields["withResponse"] = json!(with_response);
        self.request("CHARACTERISTIC_WRITE", fields).await
    }

    /// Subscribes now and after every reconnect; notifications arrive as
    /// [`ControlEvent::Notification`].
    pub async fn subscribe(&self, at: Characteristic<'_>) -> Result<Value, ClientError> {
        self.request("SUBSCRIBE", at.fields()).await
    }

    pub async fn unsubscribe(&self, at: Characteristic<'_>) -> Result<Value, ClientError> {
        self.request("UNSUBSCRIBE", at.fields()).await
    }

    pub fn state(&self) -> watch::Receiver<State> {
        self.task.state()
    }
}

/// One characteristic of one device, by UUID (short or full).
#[derive(Clone, Copy, Debug)]
pub struct Characteristic<'a> {
    pub device: &'a str,
    pub service: &'a str,
    pub characteristic: &'a str,
}

impl<'a> Characteristic<'a> {
    pub fn new(device: &'a str, service: &'a str, characteristic: &'a str) -> Self {
        Characteristic {
            device,
            service,
            characteristic,
        }
    }

    fn fields(self) -> Value {
        json!({"deviceId": self.device, "serviceUuid": self.service, "characteristicUuid": self.characteristic})
    }
}

/// What this client holds on the server, to have again after a reconnect.
#[derive(Default)]
struct Held {
    /// Device id → its CONNECT request.
    devices: BTreeMap<String, Value>,
    /// "device|service|characteristic" → its SUBSCRIBE request.
    subscriptions: BTreeMap<String, Value>,
}

impl Held {
    /// Notes what a request that succeeded changed.
    fn succeeded(&mut self, request: &Value) {
        let device = request["deviceId"].as_str().unwrap_or_default().to_string();
        let key = format!(
            "{device}|{}|{}",
            request["serviceUuid"].as_str().unwrap_or_default(),
            request["characteristicUuid"].as_str().unwrap_or_default()
        );
        match request["type"].as_str() {
            Some("CONNECT") => {
                self.devices.insert(device, request.clone());
            }
            Some("DISCONNECT") => {
                self.devices.remove(&device);
                self.subscriptions
                    .retain(|k, _| !k.starts_with(&format!("{device}|")));
            }
            Some("SUBSCRIBE") => {
                self.subscriptions.insert(key, request.clone());
            }
            Some("UNSUBSCRIBE") => {
                self.subscriptions.remove(&key);
            }
            _ => {}
        }
    }
}

/// A request on the wire: who waits for it, and what it asked.
struct Pending {
    request: Value,
    /// `None`: one of the restoring requests sent after a reconnect.
    answer: Option<oneshot::Sender<Result<Value, ClientError>>>,
}

async fn run(
    url: String,
    options: Options,
    mut ops: mpsc::UnboundedReceiver<Op>,
    events: mpsc::UnboundedSender<ControlEvent>,
    state: watch::Sender<State>,
) {
    let mut held = Held::default();
    let mut attempt = 0;
    let mut next_id = 1u64;
    let mut first = true;
    loop {
        let (mut ws, _) = link::open(&url, &options, Greeting::Handshake, &mut attempt, &state).await;
        let mut pending: HashMap<u64, Pending> = HashMap::new();
        let mut ok = true;
        // The server answers one request at a time, in order: devices are
        // connected before their characteristics are subscribed again.
        let restoring: Vec<Value> = held
            .devices
            .values()
            .chain(held.subscriptions.values())
            .cloned()
            .collect();
        let mut to_restore = if first { 0 } else { restoring.len() };
        if !first && to_restore == 0 {
            let _ = events.send(ControlEvent::Restored {
                devices: 0,
                subscriptions: 0,
            });
        }
        for request in restoring.into_iter().filter(|_| !first) {
            ok &= send(&mut ws, &mut pending, &mut next_id, request, None).await;
        }
        first = false;
        while ok {
            tokio::select! {
                op = ops.recv() => match op {
                    None => {
                        state.send_replace(State::Closed);
                        return;
                    }
                    Some(Op::Request(request, answer)) => {
                        ok = send(&mut ws, &mut pending, &mut next_id, request, Some(answer)).await;
                    }
                },
                message = ws.next() => match message {
                    Some(frame) => {
                        let Some(m) = link::text(&frame).and_then(|t| serde_json::from_str::<Value>(t).ok()) else {
                            continue;
                        };
                        let Some(p) = m["id"].as_u64().and_then(|id| pending.remove(&id)) else {
                            let _ = events.send(event(m));
                            continue;
                        };
                        let refused = m["type"] == "ERROR";
                        if !refused {
                            held.succeeded(&p.request);
                        }
                        match p.answer {
                            Some(answer) => {
                                let _ = answer.send(if refused { Err(ClientError::Hub(m)) } else { Ok(m) });
                            }
                            None => {
                                // A device still connected from before is no failure.
                                if refused && m["code"] != "ALREADY_CONNECTED" {
                                    let _ = events.send(ControlEvent::Error(m));
                                }
                                to_restore -= 1;
                                if to_restore == 0 {
                                    let (devices, subscriptions) = (held.devices.len(), held.subscriptions.len());
                                    let _ = events.send(ControlEvent::Restored { devices, subscriptions });
                                }
                            }
                        }
                    }
                    None => ok = false,
                },
            }
        }
        for (_, p) in pending.drain() {
            if let Some(answer) = p.answer {
                let _ = answer.send(Err(ClientError::Closed));
            }
        }
        attempt = 1;
    }
}

async fn send(
    ws: &mut Socket,
    pending: &mut HashMap<u64, Pending>,
    next_id: &mut u64,
    mut request: Value,
    answer: Option<oneshot::Sender<Result<Value, ClientError>>>,
) -> bool {
    let id = *next_id;
    *next_id += 1;
    request["id"] = json!(id);
    let sent = ws.send(link::message(request.to_string())).await.is_ok();
    pending.insert(id, Pending { request, answer });
    sent
}

fn event(m: Value) -> ControlEvent {
    match m["type"].as_str() {
        Some("DEVICE_FOUND") => ControlEvent::Found(m),
        Some("NOTIFICATION") => ControlEvent::Notification(m),
        Some("CONNECTED") => ControlEvent::Connected(m),
        Some("DISCONNECTED") => ControlEvent::Disconnected(m),
        Some("ERROR") => ControlEvent::Error(m),
        _ => ControlEvent::Other(m),
    }
}
