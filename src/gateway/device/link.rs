//! A device's link through its life: connect with retries and back-off through the
//! radio that routing picks, discovery and re-enabled subscriptions on each link,
//! the forwarder of its notifications, recovery after a drop (through another radio
//! when its own is gone), and the final close.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use futures::StreamExt;

use super::{Actor, CharKey, LinkState};
use crate::ble::{BleError, DisconnectReason};
use crate::gateway::error::{GatewayError, GatewayResult, Operation};
use crate::gateway::packet_log::Direction;
use crate::gateway::{lock, AbortOnDrop, GatewayEvent, LiveCount};

impl Actor {
    /// Connects with retries and exponential backoff; no-op when connected.
    pub(super) async fn connect(&mut self) -> GatewayResult<u16> {
        if self.shared.state() == LinkState::Connected {
            return Ok(self.shared.mtu.load(Ordering::Relaxed));
        }
        self.shared.set_state(LinkState::Connecting);
        self.failed.clear();
        let attempts = self.config.connect_retries + 1;
        let mut last = None;
        for attempt in 1..=attempts {
            if attempt > 1 {
                let delay = self.config.backoff(attempt - 1);
                tracing::debug!(device = %self.id, attempt, ?delay, "retrying connect");
                tokio::time::sleep(delay).await;
            }
            match self.link_up().await {
                Ok(mtu) => {
                    if let Some(inner) = self.inner.upgrade() {
                        inner.emit(GatewayEvent::Connected {
                            id: self.id.clone(),
                            mtu,
                        });
                    }
                    return Ok(mtu);
                }
                // Retrying cannot help: no such device, or no radio left to try.
                Err(GatewayError::Ble(e @ BleError::DeviceNotFound(_))) => {
                    self.shared.set_state(LinkState::Disconnected);
                    return Err(e.into());
                }
                Err(GatewayError::Ble(e @ BleError::AdapterUnavailable(_))) if self.every_radio_failed() => {
                    self.shared.set_state(LinkState::Disconnected);
                    return Err(e.into());
                }
                Err(e) => {
                    tracing::warn!(device = %self.id, attempt, error = %e, "connect attempt failed");
                    last = Some(e);
                }
            }
        }
        self.shared.set_state(LinkState::Disconnected);
        let last = match last {
            // Said as it is: every radio was full through all the back-off.
            Some(e @ GatewayError::NoFreeSlot { .. }) => return Err(e),
            Some(GatewayError::Ble(e)) => e,
            Some(other) => BleError::Other(other.to_string()),
            None => BleError::Other("no attempt made".into()),
        };
        Err(GatewayError::ConnectFailed {
            id: self.id.clone(),
            attempts,
            last,
        })
    }

    pub(super) fn every_radio_failed(&self) -> bool {
        let radios = self.inner.upgrade().map_or(0, |i| i.radios.list.len());
        self.failed.len() >= radios
    }

    /// Picks the radio for the next link (see `radios.rs`).
    pub(super) fn route(&mut self) -> GatewayResult<usize> {
        let inner = self.inner.upgrade().ok_or(GatewayError::ShuttingDown)?;
        let radio = inner
            .radios
            .route(&self.id, self.radio, &self.failed, inner.now_ms())?;
        self.backend = inner.radios.list[radio].backend.clone();
        Ok(radio)
    }

    /// The link is up through `radio` (`Some`), or gone (`None`): its slot is taken or freed.
    pub(super) fn carried_by(&mut self, radio: Option<usize>) {
        if let Some(inner) = self.inner.upgrade() {
            inner.radios.carry(&self.id, radio);
        }
        if radio.is_some() {
            self.radio = radio;
            self.failed.clear();
        }
    }

    /// One attempt, through the radio routing picks: link, discovery, notification
    /// stream, re-enabled subscriptions.
    pub(super) async fn link_up(&mut self) -> GatewayResult<u16> {
        let radio = self.route()?;
        let up = self.link_up_through().await;
        match up {
            Ok(_) => self.carried_by(Some(radio)),
            Err(_) if !self.failed.contains(&radio) => self.failed.push(radio),
            Err(_) => {}
        }
        up
    }

    pub(super) async fn link_up_through(&mut self) -> GatewayResult<u16> {
        let limit = self.config.connect_timeout();
        let backend = self.backend.clone();
        let mtu = self
            .timed(Operation::Connect, limit, backend.connect(&self.id))
            .await?;
        self.shared.mtu.store(mtu, Ordering::Relaxed);
        let setup = async {
            let services = self
                .timed(
                    Operation::Discover,
                    self.config.op_timeout(),
                    backend.discover(&self.id),
                )
                .await?;
            self.services = Some(Arc::new(services));
            let stream = self
                .timed(
                    Operation::Notifications,
                    self.config.op_timeout(),
                    backend.notifications(&self.id),
                )
                .await?;
            self.start_forwarder(stream);
            let keys: Vec<CharKey> = lock(&self.shared.subs).keys().copied().collect();
            for (service, characteristic) in keys {
                self.timed(
                    Operation::Subscribe,
                    self.config.op_timeout(),
                    backend.subscribe(&self.id, service, characteristic),
                )
                .await?;
            }
            Ok::<(), GatewayError>(())
        };
        if let Err(e) = setup.await {
            self.forwarder = None;
            self.services = None;
            let _ = backend.disconnect(&self.id).await;
            return Err(e);
        }
        *lock(&self.shared.connected_since) = Some(SystemTime::now());
        self.shared.set_state(LinkState::Connected);
        Ok(mtu)
    }

    pub(super) fn start_forwarder(&mut self, mut stream: crate::ble::NotificationStream) {
        let shared = self.shared.clone();
        let global = self.global.clone();
        let packets = self.packets.clone();
        let guard = LiveCount::new(&self.stats.forwarders);
        self.forwarder = Some(AbortOnDrop(tokio::spawn(async move {
            let _guard = guard;
            while let Some(n) = stream.next().await {
                packets.record(
                    Direction::Rx,
                    &n.device,
                    n.service,
                    n.characteristic,
                    n.value.clone(),
                );
                if let Some(tx) = lock(&shared.subs).get(&(n.service, n.characteristic)) {
                    // No receiver: the last subscriber just left; the sweep follows.
                    let _ = tx.send(n.clone());
                }
                if global.receiver_count() > 0 {
                    let _ = global.send(n);
                }
            }
            // The backend ends the stream when the link goes.
            shared.link_lost.notify_one();
        })));
    }

    /// After a drop: reconnect if configured; false when the device is given up.
    pub(super) async fn recover(&mut self) -> bool {
        if self.shared.state() != LinkState::Connected || self.backend.is_connected(&self.id).await {
            return true;
        }
        self.forwarder = None;
        self.services = None;
        self.carried_by(None);
        self.failed.clear();
        let will_reconnect = self.config.auto_reconnect && self.config.reconnect_attempts > 0;
        tracing::warn!(device = %self.id, will_reconnect, "link lost");
        self.shared.set_state(LinkState::Reconnecting);
        if let Some(inner) = self.inner.upgrade() {
            inner.emit(GatewayEvent::Disconnected {
                id: self.id.clone(),
                reason: DisconnectReason::LinkLost,
                will_reconnect,
            });
        }
        if will_reconnect {
            for attempt in 1..=self.config.reconnect_attempts {
                tokio::time::sleep(self.config.backoff(attempt)).await;
                if self.inner.strong_count() == 0 {
                    break;
                }
                match self.link_up().await {
                    Ok(mtu) => {
                        tracing::info!(device = %self.id, attempt, "reconnected");
                        if let Some(inner) = self.inner.upgrade() {
                            inner.emit(GatewayEvent::Reconnected {
                                id: self.id.clone(),
                                mtu,
                            });
                        }
                        return true;
                    }
                    Err(e) => tracing::warn!(device = %self.id, attempt, error = %e, "reconnect failed"),
                }
            }
        }
        self.shared.set_state(LinkState::Disconnected);
        // Subscribers' streams end here: their channels close with the map entries.
        lock(&self.shared.subs).clear();
        if will_reconnect {
            if let Some(inner) = self.inner.upgrade() {
                inner.emit(GatewayEvent::Disconnected {
                    id: self.id.clone(),
                    reason: DisconnectReason::LinkLost,
                    will_reconnect: false,
                });
            }
        }
        false
    }

    /// Closes the link for good.
    pub(super) async fn close(&mut self, reason: DisconnectReason) {
        let was_up = matches!(
            self.shared.state(),
            LinkState::Connected | LinkState::Reconnecting
        );
        self.forwarder = None;
        self.services = None;
        lock(&self.shared.subs).clear();
        let _ = tokio::time::timeout(self.config.op_timeout(), self.backend.disconnect(&self.id)).await;
        self.carried_by(None);
        self.shared.set_state(LinkState::Disconnected);
        if was_up {
            if let Some(inner) = self.inner.upgrade() {
                inner.emit(GatewayEvent::Disconnected {
                    id: self.id.clone(),
                    reason,
                    will_reconnect: false,
                });
            }
        }
    }
}
