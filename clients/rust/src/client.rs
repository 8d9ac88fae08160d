//! A client of the hub: subscriptions that resume after a reconnect from the last
//! point id each has seen (`after_id`: no gap, no duplicate), and requests
//! (commands, history, presence) answered by id.

use std::collections::HashMap;

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};

use crate::link::{self, Options, Socket, State, Task};
use crate::ClientError;

/// What a subscription takes; `None` lists are everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub devices: Option<Vec<String>>,
    pub keys: Option<Vec<String>>,
    /// Replay stored points from this time (ms) on the first subscribe.
    pub since: Option<i64>,
}

impl Filter {
    fn admits(&self, device: &str, key: &str) -> bool {
        let ok = |list: &Option<Vec<String>>, v: &str| {
            list.as_ref().is_none_or(|l| l.iter().any(|x| x == "*" || x == v))
        };
        ok(&self.devices, device) && ok(&self.keys, key)
    }
}

/// A stored point as the hub sends it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Point {
    pub id: i64,
    pub key: String,
    pub value: Value,
    pub ts: i64,
}

#[derive(Debug)]
pub enum ClientEvent {
    /// Points not seen before by the subscriptions they match.
    Telemetry { device: String, points: Vec<Point> },
    /// Presence, command status, `lagged` and the rest, as the hub sent them.
    Other(Value),
}

enum Op {
    Subscribe(Filter),
    Request(Value, oneshot::Sender<Result<Value, ClientError>>),
}

struct Subscription {
    filter: Filter,
    last_id: Option<i64>,
}

/// The handle; the connection's task ends when it is dropped.
pub struct HubClient {
    task: Task<Op>,
}

impl HubClient {
    pub fn connect(base: &str, options: Options) -> (HubClient, mpsc::UnboundedReceiver<ClientEvent>) {
        let url = link::hub_url(base, "role=client");
        let (task, events) = Task::spawn(|ops, events, state| run(url, options, ops, events, state));
        (HubClient { task }, events)
    }

    /// Subscribes now and after every reconnect.
    pub fn subscribe(&self, filter: Filter) {
        let _ = self.task.ops.send(Op::Subscribe(filter));
    }

    /// Sends `{"type": …, "id": n, …}` and waits for the answer with that id (a
    /// hub `error` is [`ClientError::Hub`]). Fails if the connection drops first.
    pub async fn request(&self, message: Value) -> Result<Value, ClientError> {
        self.task.ask(|answer| Op::Request(message, answer)).await
    }

    pub fn state(&self) -> watch::Receiver<State> {
        self.task.state()
    }
}

async fn run(
    url: String,
    options: Options,
    mut ops: mpsc::UnboundedReceiver<Op>,
    events: mpsc::UnboundedSender<ClientEvent>,
    state: watch::Sender<State>,
) {
    let mut subscriptions: Vec<Subscription> = Vec::new();
    let mut attempt = 0;
    let mut next_id = 1u64;
    loop {
        let (mut ws, _) = link::open(&url, &options, link::Greeting::Welcome, &mut attempt, &state).await;
        let mut pending: HashMap<u64, oneshot::Sender<Result<Value, ClientError>>> = HashMap::new();
        let mut ok = true;
        for s in &subscriptions {
            ok &= subscribe(&mut ws, s, &mut next_id).await;
        }
        while ok {
            tokio::select! {
                op = ops.recv() => match op {
                    None => {
                        state.send_replace(State::Closed);
                        return;
                    }
                    Some(Op::Subscribe(filter)) => {
                        subscriptions.push(Subscription { filter, last_id: None });
                        if let Some(s) = subscriptions.last() {
                            ok = subscribe(&mut ws, s, &mut next_id).await;
                        }
                    }
                    Some(Op::Request(mut message, answer)) => {
                        let id = next_id;
                        next_id += 1;
                        message["id"] = json!(id);
                        ok = ws.send(link::message(message.to_string())).await.is_ok();
                        pending.insert(id, answer);
                    }
                },
                message = ws.next() => match message {
                    Some(frame) => {
                        if let Some(m) = link::text(&frame).and_then(|t| serde_json::from_str::<Value>(t).ok()) {
                            heard(m, &mut subscriptions, &mut pending, &events);
                        }
                    }
                    None => ok = false,
                },
            }
        }
        for (_, answer) in pending.drain() {
            let _ = answer.send(Err(ClientError::Closed));
        }
        attempt = 1;
    }
}

async fn subscribe(ws: &mut Socket, s: &Subscription, next_id: &mut u64) -> bool {
    let mut message =
        json!({"type": "subscribe", "id": *next_id, "devices": s.filter.devices, "keys": s.filter.keys});
    *next_id += 1;
    match (s.last_id, s.filter.since) {
        (Some(after), _) => message["after_id"] = json!(after),
        (None, Some(since)) => message["since"] = json!(since),
        (None, None) => {}
    }
    ws.send(link::message(message.to_string())).await.is_ok()
}

fn heard(
    m: Value,
    subscriptions: &mut [Subscription],
    pending: &mut HashMap<u64, oneshot::Sender<Result<Value, ClientError>>>,
    events: &mpsc::UnboundedSender<ClientEvent>,
) {
    if m["type"] == "batch" {
        if let Some(inner) = m["messages"].as_array() {
            for one in inner.clone() {
                heard(one, subscriptions, pending, events);
            }
        }
        return;
    }
    if let Some(answer) = m["id"].as_u64().and_then(|id| pending.remove(&id)) {
        let _ = answer.send(if m["type"] == "error" {
            Err(ClientError::Hub(m))
        } else {
            Ok(m)
        });
        return;
    }
    if m["type"] != "telemetry" {
        let _ = events.send(ClientEvent::Other(m));
        return;
    }
    let device = m["device"].as_str().unwrap_or_default().to_string();
    let points: Vec<Point> = serde_json::from_value(m["points"].clone()).unwrap_or_default();
    // Only what a subscription has not seen yet: each point once.
    let fresh: Vec<Point> = points
        .into_iter()
        .filter(|p| {
            let mut new = false;
            for s in subscriptions.iter_mut() {
                if s.filter.admits(&device, &p.key) && s.last_id.is_none_or(|last| p.id > last) {
                    s.last_id = Some(p.id);
                    new = true;
                }
            }
            new
        })
        .collect();
    if !fresh.is_empty() {
        let _ = events.send(ClientEvent::Telemetry {
            device,
            points: fresh,
        });
    }
}
