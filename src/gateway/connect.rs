//! Connecting: resolving the target, one actor per device under the connection
//! limit (the least recently used unleased link makes room), retries within the
//! caller's budget, and the links' state as [`ConnectionInfo`].

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::oneshot;

use super::device::{self, Command, DeviceHandle};
use super::{lock, ConnectOptions, ConnectionInfo, Gateway, GatewayError, GatewayResult, Operation};
use crate::ble::{BleError, DeviceId};

impl Gateway {
    /// Connects to a device by id or name prefix, with retries; returns at once when
    /// it is connected already.
    pub async fn connect(&self, target: &str, opts: ConnectOptions) -> GatewayResult<ConnectionInfo> {
        self.connect_as(target, opts, None).await
    }

    /// Connects and records the connection metrics.
    pub(super) async fn connect_as(
        &self,
        target: &str,
        opts: ConnectOptions,
        token: Option<&str>,
    ) -> GatewayResult<ConnectionInfo> {
        let started = std::time::Instant::now();
        let result = self.connect_inner(target, opts, token).await;
        let m = &self.inner.metrics;
        match &result {
            Ok(_) => {
                m.connection_success.inc();
                m.connection_time.observe(started.elapsed().as_secs_f64());
            }
            // Refusals that never reached the radio are not connection failures.
            Err(GatewayError::Busy { .. } | GatewayError::ShuttingDown | GatewayError::InvalidInput(_)) => {}
            Err(_) => {
                m.connection_failure.inc();
            }
        }
        result
    }

    pub(super) async fn connect_inner(
        &self,
        target: &str,
        opts: ConnectOptions,
        token: Option<&str>,
    ) -> GatewayResult<ConnectionInfo> {
        self.ensure_running()?;
        let timeout = opts.timeout.unwrap_or(self.inner.config.connect_timeout());
        let started = tokio::time::Instant::now();
        let id = self.resolve(target, &opts.services, timeout).await?;
        self.check_lease(&id, token)?;
        // Budget for the link itself: what resolution left, but at least one
        // attempt's worth, plus the retries' back-off.
        let remaining = timeout
            .saturating_sub(started.elapsed())
            .max(self.inner.config.connect_timeout());
        let limit = remaining + self.retry_budget();
        // An actor that just exited may drop our request; one fresh actor is enough.
        for _ in 0..2 {
            let handle = self.actor_for(&id).await?;
            let (tx, rx) = oneshot::channel();
            if handle.tx.send(Command::Connect(tx)).await.is_err() {
                continue;
            }
            match tokio::time::timeout(limit, rx).await {
                Ok(Ok(result)) => {
                    result?;
                    return Ok(self.connection_info(&handle));
                }
                Ok(Err(_)) => continue,
                Err(_) => {
                    return Err(GatewayError::Timeout {
                        id,
                        operation: Operation::Connect,
                        after: limit,
                    })
                }
            }
        }
        Err(BleError::NotConnected(id).into())
    }

    pub(super) fn retry_budget(&self) -> Duration {
        let c = &self.inner.config;
        (1..=c.connect_retries)
            .map(|a| c.backoff(a).mul_f64(1.34) + c.connect_timeout())
            .sum()
    }

    /// The actor for `id`, spawning one (and making room under the connection
    /// limit) when there is none.
    pub(super) async fn actor_for(&self, id: &DeviceId) -> GatewayResult<DeviceHandle> {
        let evicted = {
            let mut devices = lock(&self.inner.devices);
            if let Some(h) = devices.get(id) {
                return Ok(h.clone());
            }
            let evicted = if devices.len() >= self.inner.config.max_connections {
                let leases = lock(&self.inner.leases);
                let lru = devices
                    .values()
                    .filter(|h| !leases.contains_key(&h.shared.id))
                    .min_by_key(|h| h.shared.use_seq.load(Ordering::Relaxed))
                    .map(|h| h.shared.id.clone());
                match lru {
                    Some(victim) => devices.remove(&victim),
                    None => return Err(GatewayError::ConnectionLimit(self.inner.config.max_connections)),
                }
            } else {
                None
            };
            devices.insert(id.clone(), device::spawn(&self.inner, id.clone()));
            evicted
        };
        if let Some(victim) = evicted {
            tracing::info!(device = %victim.shared.id, for_device = %id, "connection limit reached: closing least recently used link");
            let (tx, rx) = oneshot::channel();
            if victim.tx.send(Command::Disconnect(Some(tx))).await.is_ok() {
                let _ = tokio::time::timeout(self.inner.config.op_timeout(), rx).await;
            }
        }
        lock(&self.inner.devices)
            .get(id)
            .cloned()
            .ok_or_else(|| BleError::NotConnected(id.clone()).into())
    }

    pub(super) fn connection_info(&self, h: &DeviceHandle) -> ConnectionInfo {
        let id = h.shared.id.clone();
        let known = lock(&self.inner.known).get(&id).cloned();
        ConnectionInfo {
            name: known.as_ref().and_then(|k| k.name.clone()),
            rssi: known.map(|k| k.rssi),
            state: h.shared.state(),
            mtu: h.shared.mtu.load(Ordering::Relaxed),
            connected_since: *lock(&h.shared.connected_since),
            lease_holder: lock(&self.inner.leases).get(&id).map(|l| l.holder.clone()),
            radio: self
                .inner
                .radios
                .carrier(&id)
                .map(|i| self.inner.radios.list[i].name.clone()),
            id,
        }
    }

    /// Open and opening links.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let handles: Vec<DeviceHandle> = lock(&self.inner.devices).values().cloned().collect();
        let mut v: Vec<ConnectionInfo> = handles.iter().map(|h| self.connection_info(h)).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}
