//! One WebSocket to the hub, opened again whenever it drops: exponential back-off
//! with jitter between attempts, and an attempt that gets no welcome in time is
//! given up.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::ClientError;
use yawc::{Frame, OpCode};

pub(crate) type Socket = yawc::TcpWebSocket;

/// Where a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Connecting,
    Open,
    Reconnecting,
    Closed,
}

/// The wait before each reconnect attempt.
#[derive(Clone, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub factor: f64,
    /// Share of each delay drawn at random, so clients do not return in step.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(10),
            factor: 2.0,
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The delay before attempt `n` (0-based) after a failure.
    pub fn delay(&self, n: u32) -> Duration {
        let base = self
            .initial
            .mul_f64(self.factor.powi(n.min(30) as i32))
            .min(self.max);
        base.mul_f64(1.0 - self.jitter + fastrand::f64() * self.jitter)
    }
}

/// How to reach the hub.
#[derive(Clone, Debug)]
pub struct Options {
    /// An API key or JWT, sent as `Authorization: Bearer`.
    pub token: Option<String>,
    pub backoff: Backoff,
    /// An attempt without a welcome by then is given up (10 s).
    pub connect_timeout: Duration,
    /// Offer permessage-deflate (on by default): the hub's telemetry, which
    /// repeats its keys, then crosses the network at a third to a half of its size,
    /// for some CPU on both sides.
    pub compress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            token: None,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(10),
            compress: true,
        }
    }
}

/// A connection's task as its handle holds it: the channel of what to do, the
/// connection's state, and the task itself, ended when the handle is dropped.
pub(crate) struct Task<Op> {
    pub ops: mpsc::UnboundedSender<Op>,
    state: watch::Receiver<State>,
    task: tokio::task::JoinHandle<()>,
}

impl<Op> Task<Op> {
    /// Spawns `run(ops, events, state)`; returns the handle and the events.
    pub fn spawn<E, F, R>(run: R) -> (Task<Op>, mpsc::UnboundedReceiver<E>)
    where
        R: FnOnce(mpsc::UnboundedReceiver<Op>, mpsc::UnboundedSender<E>, watch::Sender<State>) -> F,
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (ops, ops_rx) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(State::Connecting);
        let task = tokio::spawn(run(ops_rx, events, state_tx));
        (Task { ops, state, task }, events_rx)
    }

    /// Sends the op `make` builds around an answer channel and waits for the
    /// answer; fails if the task is gone or drops the op unanswered.
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, ClientError>>) -> Op,
    ) -> Result<T, ClientError> {
        let (answer, answered) = oneshot::channel();
        self.ops.send(make(answer)).map_err(|_| ClientError::Closed)?;
        answered.await.map_err(|_| ClientError::Closed)?
    }

    pub fn state(&self) -> watch::Receiver<State> {
        self.state.clone()
    }
}

impl<Op> Drop for Task<Op> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What makes a connection open: the hub's `welcome`, or (the control socket,
/// which has none) the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Greeting {
    Welcome,
    Handshake,
}

/// Connects until the connection is open; returns the socket and the welcome
/// (`null` without one). `attempt` counts failures since the last success (the
/// back-off's step).
pub(crate) async fn open(
    url: &str,
    options: &Options,
    greeting: Greeting,
    attempt: &mut u32,
    state: &watch::Sender<State>,
) -> (Socket, Value) {
    loop {
        if *attempt > 0 {
            state.send_replace(State::Reconnecting);
            tokio::time::sleep(options.backoff.delay(*attempt - 1)).await;
        }
        match tokio::time::timeout(options.connect_timeout, try_open(url, options, greeting)).await {
            Ok(Some(opened)) => {
                *attempt = 0;
                state.send_replace(State::Open);
                return opened;
            }
            _ => *attempt += 1,
        }
    }
}

async fn try_open(url: &str, options: &Options, greeting: Greeting) -> Option<(Socket, Value)> {
    let url = url::Url::parse(url).ok()?;
    let mut request = yawc::HttpRequestBuilder::new();
    if let Some(token) = &options.token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let mut socket_options = yawc::Options::default();
    if options.compress {
        socket_options = socket_options.with_low_latency_compression();
    }
    let mut ws = yawc::WebSocket::connect(url)
        .with_options(socket_options)
        .with_request(request)
        .await
        .ok()?;
    if greeting == Greeting::Handshake {
        return Some((ws, Value::Null));
    }
    let welcome: Value = serde_json::from_str(text(&ws.next().await?)?).ok()?;
    (welcome["type"] == "welcome").then_some((ws, welcome))
}

/// A text message's text; `None` for any other frame.
pub(crate) fn text(frame: &Frame) -> Option<&str> {
    match frame.opcode() {
        OpCode::Text => std::str::from_utf8(frame.payload()).ok(),
        _ => None,
    }
}

/// A JSON message as a text frame.
pub(crate) fn message(text: impl Into<String>) -> Frame {
    Frame::text(text.into())
}

/// `/hub` on `base` (`http://HOST:PORT` or `ws://…`) with `query`.
pub(crate) fn hub_url(base: &str, query: &str) -> String {
    ws_url(base, &format!("/hub?{query}"))
}

/// `path` on `base`, in the WebSocket scheme that goes with the base's.
pub(crate) fn ws_url(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    let base = base
        .strip_prefix("http://")
        .map(|rest| format!("ws://{rest}"))
        .or_else(|| base.strip_prefix("https://").map(|rest| format!("wss://{rest}")))
        .unwrap_or_else(|| base.to_string());
    format!("{base}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_grows_to_its_cap_with_jitter_below_it() {
        let b = Backoff::default();
        for n in 0..12 {
            let base = b.initial.mul_f64(b.factor.powi(n)).min(b.max);
            let d = b.delay(n as u32);
            assert!(
                d <= base && d >= base.mul_f64(1.0 - b.jitter),
                "attempt {n}: {d:?} of {base:?}"
            );
        }
        assert!(b.delay(40) <= b.max, "no overflow far out");
    }

    #[test]
    fn the_hub_url_follows_the_base_scheme() {
        assert_eq!(hub_url("http://h:1/", "role=client"), "ws://h:1/hub?role=client");
        assert_eq!(hub_url("https://h", "device=d"), "wss://h/hub?device=d");
        assert_eq!(hub_url("ws://h:2", "device=d"), "ws://h:2/hub?device=d");
        assert_eq!(ws_url("http://h:1", "/ws"), "ws://h:1/ws");
    }
}
