//! A network device's connection: `telemetry` in (acknowledged once stored, in
//! order, retries recognised by `seq`), `command_result` and `heartbeat` in,
//! commands out. A device silent for too many heartbeat intervals is dropped and
//! goes offline: presence's sweep closes its queue (no timer in every connection).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{json, Value};

use super::failure::{Code, Failure};
use super::frame::{self, Frame};
use super::framed::{Framed, Read};
use super::message::{DeviceMessage, Telemetry};
use crate::http::ws::{End, Ends, Inbound};
use crate::hub::commands::Delivery;
use crate::hub::{Hub, Replaced};
use crate::outbox::Outbox;
use crate::store::{now_ms, DeviceBatch};

/// An acknowledgement to come: the seq it answers and whether the points were stored.
type PendingAck = Pin<Box<dyn Future<Output = (Option<u64>, Result<(), String>)> + Send>>;

struct State<'a> {
    device: &'a str,
    /// This connection's id in presence.
    conn: u64,
    /// Highest seq accepted (stored, or on its way to the store).
    last_seq: u64,
    /// In the order the batches came; answered front first. A `VecDeque`, not a
    /// `FuturesOrdered`: that allocates up front, in every idle connection.
    acks: VecDeque<PendingAck>,
}

/// Runs a device connection; returns why it ended (for the connection log). The
/// greeting and each event's handling are boxed steps: an idle connection holds
/// only the wait for the next event (rustc would otherwise lay every step's state
/// out beside the `select!`'s futures).
pub(super) async fn run(hub: &Hub, link: &mut Framed, device: &Arc<str>, ends: &mut Ends) -> &'static str {
    let out: Outbox<Delivery> = Outbox::new(1);
    // A newer connection of this device closes the queue; the loop ends.
    let conn = hub
        .presence()
        .connect(device, "network", Replaced::Outbox(out.clone()));
    // Commands for the device wait in its connection's queue.
    hub.commands().online(device, conn, Arc::new(out.clone()));
    let reason = match Box::pin(greet(hub, link, device)).await {
        Err(reason) => reason,
        Ok(last_seq) => {
            let state = &mut State {
                device,
                conn,
                last_seq,
                acks: VecDeque::new(),
            };
            loop {
                let event = tokio::select! {
                    biased;
                    delivery = out.next_or_closed() => Event::Queued(delivery),
                    (seq, stored) = next_ack(&mut state.acks), if !state.acks.is_empty() => {
                        Event::Stored(seq, stored)
                    }
                    inbound = link.conn.recv() => {
                        hub.presence().seen(device);
                        Event::Read(inbound)
                    }
                    end = ends.wait() => Event::End(end),
                };
                if let Some(reason) = Box::pin(on_event(hub, link, state, event)).await {
                    break reason;
                }
            }
        }
    };
    hub.commands().offline(device, conn);
    hub.presence().disconnect(device, "network", conn);
    reason
}

/// Settles what an earlier connection left, then welcomes the device with the last
/// seq stored; `Err` holds why the connection ends instead.
async fn greet(hub: &Hub, link: &mut Framed, device: &str) -> Result<u64, &'static str> {
    // Whatever an earlier connection of this device left in the writer is stored
    // or refused first; its batches are taken again from here on.
    let stored = match hub.writer().resume(device.into()).await {
        Ok(()) => hub.store().device(device).await,
        Err(e) => Err(e),
    };
    let last_seq = match stored {
        Ok(d) => d.map_or(0, |d| d.last_seq),
        Err(e) => {
            let _ = link.fail(&Value::Null, &Failure::from(e)).await;
            return Err("store error");
        }
    };
    let welcome = json!({
        "type": "welcome",
        "role": "device",
        "device": device,
        "last_seq": last_seq,
        "heartbeat_interval": hub.config().heartbeat_secs,
    });
    match link.send(frame::frame(&welcome)).await {
        Ok(()) => Ok(last_seq),
        Err(_) => Err("closed"),
    }
}

/// What a device connection waits for.
enum Event {
    /// A command (or its cancel) from the device's queue, or `None`: a newer
    /// connection of this device took over, or presence's sweep found it silent.
    Queued(Option<Delivery>),
    /// The store answered for a batch: its seq, and whether the points were stored.
    Stored(Option<u64>, Result<(), String>),
    Read(Inbound),
    End(End),
}

/// Handles one event; why the connection ends, if it does.
async fn on_event(hub: &Hub, link: &mut Framed, state: &mut State<'_>, event: Event) -> Option<&'static str> {
    match event {
        Event::Queued(None) if hub.presence().ended_silent(state.device, state.conn) => {
            let silence = hub.config().heartbeat_timeout();
            let f = Failure::new(
                Code::HeartbeatTimeout,
                format!("nothing heard for {} s", silence.as_secs_f64()),
            );
            link.turn_away(&f, 4008, "heartbeat timeout").await;
            Some("heartbeat timeout")
        }
        Event::Queued(None) => {
            let f = Failure::new(Code::Replaced, "a newer connection of this device took over");
            link.turn_away(&f, 4009, "replaced").await;
            Some("replaced")
        }
        Event::Queued(Some(delivery)) => link
            .send(frame::of_delivery(&delivery))
            .await
            .err()
            .map(|_| "closed"),
        Event::Stored(seq, Ok(())) => link.send(ack(seq)).await.err().map(|_| "closed"),
        Event::Stored(seq, Err(e)) => {
            let f = Failure::new(Code::StoreError, format!("telemetry not stored: {e}"));
            let body = json!({"code": f.code.as_str(), "message": f.message, "seq": seq});
            let _ = link.send(frame::reply("error", &Value::Null, body)).await;
            link.close(1011, "store error").await;
            Some("store error")
        }
        Event::Read(inbound) => match link.read(inbound).await {
            Read::Closed => Some("closed"),
            Read::Refused => None,
            Read::Message(envelope) => {
                let message = DeviceMessage::read(&envelope);
                // Telemetry the writer would not take ends the connection (the device
                // resends from last_seq); a command result that was not stored is
                // answered, and the device may send it again.
                let telemetry = matches!(message, Ok(DeviceMessage::Telemetry(_)));
                let Err(f) = handle(hub, link, state, &envelope.id, message).await else {
                    return None;
                };
                if link.fail(&envelope.id, &f).await.is_err() {
                    return Some("closed");
                }
                if telemetry && f.code == Code::StoreError {
                    link.close(1011, "store error").await;
                    return Some("store error");
                }
                None
            }
        },
        Event::End(end) => Some(link.end(end).await),
    }
}

/// The oldest acknowledgement, once it is known; cancel-safe (it stays queued).
async fn next_ack(acks: &mut VecDeque<PendingAck>) -> (Option<u64>, Result<(), String>) {
    let Some(front) = acks.front_mut() else {
        return std::future::pending().await;
    };
    let done = front.await;
    acks.pop_front();
    done
}

fn ack(seq: Option<u64>) -> Frame {
    match seq {
        Some(s) => frame::frame(&json!({"type": "telemetry_ack", "seq": s})),
        None => frame::frame(&json!({"type": "telemetry_ack"})),
    }
}

/// Handles one device message; an error goes back with the message's id.
async fn handle(
    hub: &Hub,
    link: &mut Framed,
    state: &mut State<'_>,
    id: &Value,
    message: Result<DeviceMessage, Failure>,
) -> Result<(), Failure> {
    match message? {
        DeviceMessage::Telemetry(t) => telemetry(hub, state, t).await,
        DeviceMessage::CommandResult(r) => {
            let status = r.reported()?;
            Ok(hub
                .commands()
                .report(state.device, r.command_id, status, r.result, r.error)
                .await?)
        }
        DeviceMessage::Heartbeat => {
            let _ = link
                .send(frame::reply("heartbeat_ack", id, json!({"ts": now_ms()})))
                .await;
            Ok(())
        }
        DeviceMessage::Ping => {
            let _ = link.send(frame::reply("pong", id, json!({"ts": now_ms()}))).await;
            Ok(())
        }
    }
}

/// Validates the points and hands them to the writer; the ack follows in order.
async fn telemetry(hub: &Hub, state: &mut State<'_>, t: Telemetry) -> Result<(), Failure> {
    let batch = crate::hub::accept::points(t.points, now_ms())?;
    if let Some(seq) = t.seq {
        if seq <= state.last_seq {
            // A retry of something already accepted: acknowledged (in order)
            // without storing it twice.
            state.acks.push_back(Box::pin(async move { (Some(seq), Ok(())) }));
            return Ok(());
        }
        state.last_seq = seq;
    }
    let ack = hub
        .writer()
        .submit(DeviceBatch {
            device: state.device.into(),
            seq: t.seq,
            points: batch,
        })
        .await?;
    let seq = t.seq;
    state.acks.push_back(Box::pin(async move {
        (
            seq,
            ack.await.unwrap_or_else(|_| Err("the writer stopped".into())),
        )
    }));
    Ok(())
}
