//! A client's connection: `subscribe` (optionally replaying stored points first),
//! `unsubscribe`, `command` and `cancel`, `history`, `presence`. Live telemetry,
//! presence and command statuses arrive through the connection's bounded queue; a
//! client that falls behind loses messages and is sent `lagged` with how many.

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::fanout::{Filter, Registration};
use super::protocol::{self, Code, Failure, Frame, Incoming};
use super::socket::{may_use, Link, Read};
use super::Hub;
use crate::auth::Principal;
use crate::outbox::Outbox;
use crate::store::{now_ms, CommandRecord, CommandStatus, PointQuery};

/// Points per replay page and most points one `history` answer holds.
const PAGE: u32 = 1000;
const MAX_HISTORY: u32 = 10_000;

struct State {
    principal: Option<Principal>,
    /// Live messages queued together go out as one `batch` frame.
    batch: bool,
    out: Outbox<Frame>,
    subscriptions: Vec<u64>,
}

impl State {
    fn check_device(&self, device: &str) -> Result<(), Failure> {
        if may_use(self.principal.as_ref(), device) {
            Ok(())
        } else {
            Err(crate::auth::AuthError::DeviceNotAllowed(device.to_string()).into())
        }
    }
}

/// Runs a client connection; returns why it ended.
pub(super) async fn run(
    hub: &Hub,
    link: &mut Link,
    principal: Option<Principal>,
    batch: bool,
    shutdown: &CancellationToken,
) -> &'static str {
    let mut state = State {
        principal,
        batch,
        out: Outbox::new(hub.config().client_queue),
        subscriptions: Vec::new(),
    };
    let reason = serve(hub, link, &mut state, shutdown).await;
    hub.fanout().unsubscribe(&state.subscriptions);
    reason
}

async fn serve(hub: &Hub, link: &mut Link, state: &mut State, shutdown: &CancellationToken) -> &'static str {
    if link
        .send(protocol::frame(&json!({"type": "welcome", "role": "client"})))
        .await
        .is_err()
    {
        return "closed";
    }
    let out = state.out.clone();
    loop {
        tokio::select! {
            biased;
            frame = out.next() => {
                // Boxed, like every step below: its state exists only while it runs,
                // not in every idle connection's task.
                if drain(link, &out, frame, state.batch).await.is_err() { return "closed"; }
            }
            frame = link.ws.recv() => match Box::pin(link.read(frame)).await {
                Read::Closed => return "closed",
                Read::Refused => {}
                Read::Message(m) => {
                    let id = m.id.clone();
                    if let Err(f) = Box::pin(handle(hub, link, state, *m)).await {
                        if link.fail(&id, &f).await.is_err() { return "closed"; }
                    }
                }
            },
            _ = shutdown.cancelled() => {
                link.close(1001, "server shutting down").await;
                return "shutdown";
            }
        }
    }
}

/// Most frames written together: a client that fell behind catches up in large
/// writes (one system call for many frames), and a burst still yields to the read side.
const DRAIN: usize = 64;

/// Sends `first` and whatever else is queued (up to [`DRAIN`]) with one flush, then
/// `lagged` if the queue overflowed. With `batch`, the frames go as one
/// `{"type":"batch","messages":[…]}` frame.
async fn drain(link: &mut Link, out: &Outbox<Frame>, first: Frame, batch: bool) -> Result<(), axum::Error> {
    if batch {
        let mut frames = vec![first];
        while frames.len() < DRAIN {
            match out.try_next() {
                Some(frame) => frames.push(frame),
                None => break,
            }
        }
        link.feed(match frames.len() {
            1 => frames.remove(0),
            _ => protocol::batch(&frames),
        })
        .await?;
    } else {
        link.feed(first).await?;
        for _ in 1..DRAIN {
            match out.try_next() {
                Some(frame) => link.feed(frame).await?,
                None => break,
            }
        }
    }
    let missed = out.take_lost();
    if missed > 0 {
        link.feed(protocol::lagged(missed)).await?;
    }
    link.flush().await
}

async fn handle(hub: &Hub, link: &mut Link, state: &mut State, m: Incoming) -> Result<(), Failure> {
    match m.kind.as_str() {
        "subscribe" => subscribe(hub, link, state, &m).await,
        "unsubscribe" => {
            let ids: Vec<u64> = match m.subscription {
                Some(s) => vec![s],
                None => state.subscriptions.clone(),
            };
            let n = hub.fanout().unsubscribe(&ids);
            state.subscriptions.retain(|s| !ids.contains(s));
            send(link, protocol::reply("unsubscribed", &m.id, json!({"count": n}))).await
        }
        "command" => command(hub, link, state, m).await,
        "cancel" => {
            let command_id = m.required(&m.command_id, "command_id")?.clone();
            let principal = state.principal.clone();
            hub.commands()
                .cancel(command_id.clone(), move |device| may_use(principal.as_ref(), device))
                .await?;
            send(link, protocol::reply("cancelled", &m.id, json!({"command_id": command_id}))).await
        }
        "history" => history(hub, link, state, &m).await,
        "presence" => {
            let wanted = m.devices.clone().unwrap_or_default();
            let mut list = hub
                .presence()
                .snapshot(&wanted)
                .await
                .map_err(|e| Failure::new(Code::StoreError, e.to_string()))?;
            list.retain(|d| may_use(state.principal.as_ref(), &d.device));
            send(link, protocol::reply("presence", &m.id, json!({"devices": list}))).await
        }
        "ping" => send(link, protocol::reply("pong", &m.id, json!({"ts": now_ms()}))).await,
        other => Err(Failure::new(
            Code::UnknownType,
            format!(
                "a client sends subscribe, unsubscribe, command, cancel, history, presence or ping, not {other:?}"
            ),
        )),
    }
}

async fn send(link: &mut Link, frame: Frame) -> Result<(), Failure> {
    // A failed send ends the connection at the next read; nothing to answer.
    let _ = link.send(frame).await;
    Ok(())
}

/// The devices a subscription may take: what it asks for, within the credential's list.
fn device_filter(state: &State, asked: Option<&[String]>) -> Result<Filter, Failure> {
    let filter = Filter::from_list(asked);
    let list = state.principal.as_ref().and_then(|p| p.devices.clone());
    match (&filter, list) {
        (_, None) => Ok(filter),
        (Filter::All, Some(list)) if list.iter().all(|d| !d.ends_with('*')) => {
            Ok(Filter::Only(list.into_iter().collect()))
        }
        (Filter::All, Some(_)) => Err(Failure::params(
            "this credential's device list has prefixes: subscribe to device ids, not \"*\"",
        )),
        (Filter::Only(set), Some(_)) => {
            for d in set {
                state.check_device(d)?;
            }
            Ok(filter)
        }
    }
}

async fn subscribe(hub: &Hub, link: &mut Link, state: &mut State, m: &Incoming) -> Result<(), Failure> {
    let devices = device_filter(state, m.devices.as_deref())?;
    let keys = Filter::from_list(m.keys.as_deref());
    let query_devices = devices.to_list();
    let query_keys = keys.to_list();
    let Registration { id, watermark } = hub.fanout().subscribe(devices, keys, state.out.clone());
    state.subscriptions.push(id);
    send(
        link,
        protocol::reply("subscribed", &m.id, json!({"subscription": id})),
    )
    .await?;
    let Some(since) = m.since else { return Ok(()) };
    // Stored points up to the watermark; live delivery (queued meanwhile) brings
    // everything after it.
    let mut query = PointQuery {
        devices: query_devices,
        keys: query_keys,
        from: Some(since),
        up_to_id: Some(watermark),
        limit: PAGE,
        ..Default::default()
    };
    let mut replayed = 0usize;
    loop {
        let page = hub
            .store()
            .points(&query)
            .await
            .map_err(|e| Failure::new(Code::StoreError, e.to_string()))?;
        replayed += page.len();
        for frame in protocol::replay_frames(&page) {
            send(link, frame).await?;
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => query.after_id = Some(last.id),
            _ => break,
        }
    }
    send(
        link,
        protocol::reply("replayed", &m.id, json!({"subscription": id, "points": replayed})),
    )
    .await
}

/// Seconds from a message field, within bounds, or the default.
fn seconds(v: Option<f64>, default: f64, max: f64, name: &str) -> Result<i64, Failure> {
    let s = v.unwrap_or(default);
    if !(s.is_finite() && s > 0.0 && s <= max) {
        return Err(Failure::params(format!(
            "{name} is seconds, more than 0 and at most {max}"
        )));
    }
    Ok((s * 1000.0) as i64)
}

async fn command(hub: &Hub, link: &mut Link, state: &mut State, m: Incoming) -> Result<(), Failure> {
    let device = m.required(&m.device, "device")?.clone();
    state.check_device(&device)?;
    let name = m.required(&m.name, "name")?.clone();
    if name.is_empty() || name.len() > 100 {
        return Err(Failure::params("a command name is 1 to 100 characters"));
    }
    let c = hub.config();
    let timeout_ms = seconds(m.timeout, c.command_timeout_secs, 86_400.0, "timeout")?;
    let ttl_ms = seconds(m.ttl, c.command_ttl_secs, 30.0 * 86_400.0, "ttl")?;
    let now = now_ms();
    let record = CommandRecord {
        id: uuid::Uuid::new_v4().to_string(),
        device,
        name,
        params: m.params.clone().unwrap_or_else(|| json!({})),
        priority: m.priority.unwrap_or(0),
        status: CommandStatus::Queued,
        result: None,
        error: None,
        issued_by: state.principal.as_ref().map(|p| p.subject.clone()),
        timeout_ms,
        created_at: now,
        updated_at: now,
        expires_at: now + ttl_ms,
        deadline: None,
    };
    let command_id = record.id.clone();
    hub.commands().submit(record, Some(state.out.clone())).await?;
    send(
        link,
        protocol::reply(
            "command_accepted",
            &m.id,
            json!({"command_id": command_id, "status": "queued"}),
        ),
    )
    .await
}

/// A bucket width: milliseconds, or a duration like "1m".
fn bucket_ms(v: &Value) -> Result<i64, Failure> {
    let ms = match v {
        Value::Number(n) => n.as_f64().map(|f| f as i64),
        Value::String(s) => humantime::parse_duration(s).ok().map(|d| d.as_millis() as i64),
        _ => None,
    };
    ms.filter(|ms| *ms > 0)
        .ok_or_else(|| Failure::params("bucket is milliseconds or a duration like \"1m\""))
}

async fn history(hub: &Hub, link: &mut Link, state: &mut State, m: &Incoming) -> Result<(), Failure> {
    let device = m.required(&m.device, "device")?.clone();
    state.check_device(&device)?;
    let limit = m.limit.unwrap_or(1000).clamp(1, MAX_HISTORY);
    let query = PointQuery {
        devices: vec![device.clone()],
        keys: m.key.iter().cloned().collect(),
        from: m.from,
        to: m.to,
        limit,
        newest_first: true,
        ..Default::default()
    };
    let store_error = |e: crate::store::StoreError| Failure::new(Code::StoreError, e.to_string());
    let mut answer = json!({"device": device, "key": m.key});
    if let Some(bucket) = &m.bucket {
        let width = bucket_ms(bucket)?;
        if m.key.is_none() {
            return Err(Failure::params("an aggregated history needs \"key\""));
        }
        let mut buckets = hub.store().buckets(&query, width).await.map_err(store_error)?;
        buckets.reverse();
        answer["bucket"] = json!(width);
        answer["buckets"] = json!(buckets);
    } else {
        let mut points = hub.store().points(&query).await.map_err(store_error)?;
        points.reverse();
        let points: Vec<Value> = points
            .iter()
            .map(|p| json!({"id": p.id, "key": p.key, "value": p.value, "ts": p.ts}))
            .collect();
        answer["points"] = json!(points);
    }
    send(link, protocol::reply("history", &m.id, answer)).await
}
