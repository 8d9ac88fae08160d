//! A client's connection: `subscribe` (optionally replaying stored points first),
//! `unsubscribe`, `command` and `cancel`, `history`, `presence`. Live telemetry,
//! presence and command statuses arrive through the connection's bounded queue; a
//! client that falls behind loses messages and is sent `lagged` with how many.

use serde_json::{json, Value};

use super::failure::{Code, Failure};
use super::frame::{self, Frame};
use super::framed::{Framed, Read};
use super::message::{self, ClientMessage};
use crate::auth::Principal;
use crate::http::ws::{Closed, End, Ends, Inbound};
use crate::hub::fanout::{Filter, Registration};
use crate::hub::{CommandRequest, Event, HistoryRequest, Hub};
use crate::outbox::Outbox;
use crate::store::{now_ms, PointQuery};

/// Points per replay page.
const PAGE: u32 = 1000;

struct State<'a> {
    /// Borrowed from the connection: a copy would be held twice by every idle task.
    principal: Option<&'a Principal>,
    /// Live messages queued together go out as one `batch` frame.
    batch: bool,
    out: Outbox<Event>,
    subscriptions: Vec<u64>,
}

impl State<'_> {
    fn check_device(&self, device: &str) -> Result<(), Failure> {
        Ok(crate::auth::check_device(self.principal, device, None)?)
    }
}

/// Runs a client connection; returns why it ended.
pub(super) async fn run(
    hub: &Hub,
    link: &mut Framed,
    principal: Option<&Principal>,
    batch: bool,
    ends: &mut Ends,
) -> &'static str {
    let mut state = State {
        principal,
        batch,
        // Weighed by the frame it becomes: encoded as it is queued, once for
        // every subscriber that gets it.
        out: Outbox::with_byte_budget(
            hub.config().client_queue,
            hub.config().client_queue_bytes,
            |event| frame::of_event(event).weight(),
        ),
        subscriptions: Vec::new(),
    };
    let reason = serve(hub, link, &mut state, ends).await;
    hub.fanout().unsubscribe(&state.subscriptions);
    reason
}

async fn serve(hub: &Hub, link: &mut Framed, state: &mut State<'_>, ends: &mut Ends) -> &'static str {
    if link
        .send(frame::frame(&json!({"type": "welcome", "role": "client"})))
        .await
        .is_err()
    {
        return "closed";
    }
    let out = state.out.clone();
    loop {
        // Wait here; handle in a boxed step, so an idle connection holds only the wait.
        let event = tokio::select! {
            biased;
            event = out.next() => Waited::Queued(event),
            inbound = link.conn.recv() => Waited::Read(inbound),
            end = ends.wait() => Waited::End(end),
        };
        if let Some(reason) = Box::pin(on_event(hub, link, state, &out, event)).await {
            return reason;
        }
    }
}

/// What a client connection waits for.
enum Waited {
    /// A live message for the client (telemetry, presence, a command status).
    Queued(Event),
    Read(Inbound),
    End(End),
}

/// Handles one event; why the connection ends, if it does.
async fn on_event(
    hub: &Hub,
    link: &mut Framed,
    state: &mut State<'_>,
    out: &Outbox<Event>,
    waited: Waited,
) -> Option<&'static str> {
    match waited {
        Waited::Queued(event) => drain(link, out, event, state.batch).await.err().map(|_| "closed"),
        Waited::Read(inbound) => match link.read(inbound).await {
            Read::Closed => Some("closed"),
            Read::Refused => None,
            Read::Message(envelope) => {
                let message = ClientMessage::read(&envelope);
                let Err(f) = handle(hub, link, state, &envelope.id, message).await else {
                    return None;
                };
                link.fail(&envelope.id, &f).await.err().map(|_| "closed")
            }
        },
        Waited::End(end) => Some(link.end(end).await),
    }
}

/// Most frames written together: a client that fell behind catches up in large
/// writes (one system call for many frames), and a burst still yields to the read side.
const DRAIN: usize = 64;

/// Sends `first` and whatever else is queued (up to [`DRAIN`]) with one flush, then
/// `lagged` if the queue overflowed. With `batch`, the frames go as one
/// `{"type":"batch","messages":[…]}` frame.
async fn drain(link: &mut Framed, out: &Outbox<Event>, first: Event, batch: bool) -> Result<(), Closed> {
    if batch {
        let mut frames = vec![frame::of_event(&first)];
        while frames.len() < DRAIN {
            match out.try_next() {
                Some(event) => frames.push(frame::of_event(&event)),
                None => break,
            }
        }
        link.feed(match frames.len() {
            1 => frames.remove(0),
            _ => frame::batch(&frames),
        })
        .await?;
    } else {
        link.feed(frame::of_event(&first)).await?;
        for _ in 1..DRAIN {
            match out.try_next() {
                Some(event) => link.feed(frame::of_event(&event)).await?,
                None => break,
            }
        }
    }
    let missed = out.take_lost();
    if missed > 0 {
        link.feed(frame::lagged(missed)).await?;
    }
    link.flush().await
}

async fn handle(
    hub: &Hub,
    link: &mut Framed,
    state: &mut State<'_>,
    id: &Value,
    message: Result<ClientMessage, Failure>,
) -> Result<(), Failure> {
    match message? {
        ClientMessage::Subscribe(m) => subscribe(hub, link, state, id, m).await,
        ClientMessage::Unsubscribe(m) => {
            let ids: Vec<u64> = match m.subscription {
                Some(s) => vec![s],
                None => state.subscriptions.clone(),
            };
            let n = hub.fanout().unsubscribe(&ids);
            state.subscriptions.retain(|s| !ids.contains(s));
            send(link, frame::reply("unsubscribed", id, json!({"count": n}))).await
        }
        ClientMessage::Command(m) => command(hub, link, state, id, m).await,
        ClientMessage::Cancel(m) => {
            let principal = state.principal.cloned();
            hub.commands()
                .cancel(m.command_id.clone(), move |device| {
                    crate::auth::admits(principal.as_ref(), device, None)
                })
                .await?;
            send(
                link,
                frame::reply("cancelled", id, json!({"command_id": m.command_id})),
            )
            .await
        }
        ClientMessage::History(m) => history(hub, link, state, id, m).await,
        ClientMessage::Presence(m) => {
            let wanted = m.devices.unwrap_or_default();
            let mut list = hub.presence().snapshot(&wanted).await?;
            list.retain(|d| crate::auth::admits(state.principal, &d.device, None));
            send(link, frame::reply("presence", id, json!({"devices": list}))).await
        }
        ClientMessage::Ping => send(link, frame::reply("pong", id, json!({"ts": now_ms()}))).await,
    }
}

async fn send(link: &mut Framed, frame: Frame) -> Result<(), Failure> {
    // A failed send ends the connection at the next read; nothing to answer.
    let _ = link.send(frame).await;
    Ok(())
}

/// The devices a subscription may take: what it asks for, within the credential's list.
fn device_filter(state: &State<'_>, asked: Option<&[String]>) -> Result<Filter, Failure> {
    let filter = Filter::from_list(asked);
    let Some(allowed) = state.principal.map(|p| &p.devices).filter(|l| !l.is_any()) else {
        return Ok(filter);
    };
    match &filter {
        Filter::All => match allowed.exact_entries() {
            Some(ids) => Ok(Filter::Only(ids.into_iter().collect())),
            None => Err(Failure::params(
                "this credential's device list has prefixes: subscribe to device ids, not \"*\"",
            )),
        },
        Filter::Only(set) => {
            for d in set {
                state.check_device(d)?;
            }
            Ok(filter)
        }
    }
}

async fn subscribe(
    hub: &Hub,
    link: &mut Framed,
    state: &mut State<'_>,
    id: &Value,
    m: message::Subscribe,
) -> Result<(), Failure> {
    let most = hub.config().max_subscriptions;
    if state.subscriptions.len() >= most {
        return Err(Failure::new(
            Code::TooManySubscriptions,
            format!("a connection holds at most {most} subscriptions: unsubscribe one first"),
        ));
    }
    let devices = device_filter(state, m.devices.as_deref())?;
    let keys = Filter::from_list(m.keys.as_deref());
    let query_devices = devices.to_list();
    let query_keys = keys.to_list();
    let Registration {
        id: subscription,
        watermark,
    } = hub.fanout().subscribe(devices, keys, state.out.clone());
    state.subscriptions.push(subscription);
    send(
        link,
        frame::reply("subscribed", id, json!({"subscription": subscription})),
    )
    .await?;
    if m.since.is_none() && m.after_id.is_none() {
        return Ok(());
    }
    // Stored points up to the watermark (from a time, or after the last id a
    // resuming client saw); live delivery (queued meanwhile) brings everything
    // after it.
    let mut query = PointQuery {
        devices: query_devices,
        keys: query_keys,
        from: m.since,
        after_id: m.after_id,
        up_to_id: Some(watermark),
        limit: PAGE,
        ..Default::default()
    };
    let mut replayed = 0usize;
    loop {
        let page = hub.store().points(&query).await?;
        replayed += page.len();
        for replay in frame::replay_frames(&page) {
            send(link, replay).await?;
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => query.after_id = Some(last.id),
            _ => break,
        }
    }
    send(
        link,
        frame::reply(
            "replayed",
            id,
            json!({"subscription": subscription, "points": replayed}),
        ),
    )
    .await
}

async fn command(
    hub: &Hub,
    link: &mut Framed,
    state: &mut State<'_>,
    id: &Value,
    m: message::Command,
) -> Result<(), Failure> {
    hub.may_command(state.principal, &m.device)?;
    let record =
        CommandRequest::from(m).into_record(hub.config(), state.principal.map(|p| p.subject.clone()))?;
    let command_id = record.id.clone();
    hub.commands().submit(record, Some(state.out.clone())).await?;
    send(
        link,
        frame::reply(
            "command_accepted",
            id,
            json!({"command_id": command_id, "status": "queued"}),
        ),
    )
    .await
}

async fn history(
    hub: &Hub,
    link: &mut Framed,
    state: &mut State<'_>,
    id: &Value,
    m: message::History,
) -> Result<(), Failure> {
    state.check_device(&m.device)?;
    let answer = hub
        .history(HistoryRequest {
            device: m.device,
            key: m.key,
            from: m.from,
            to: m.to,
            limit: m.limit,
            bucket: m.bucket,
        })
        .await?;
    send(link, frame::reply("history", id, json!(answer))).await
}
