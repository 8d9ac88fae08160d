//! Operations on one connected device ([`DeviceRef`]): GATT discovery, reads,
//! writes, descriptors, subscriptions ([`Subscription`]) and disconnect, each sent
//! to the device's actor with the lease checked and a time limit.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use tokio::sync::{broadcast, oneshot};

use super::device::{Command, DeviceShared};
use super::{lock, Gateway, GatewayError, GatewayResult, LiveCount, Operation};
use crate::ble::{BleError, DeviceId, Notification, Service, Uuid, WriteKind};

impl Gateway {
    /// Operations on one device, as an unleased caller.
    pub fn device(&self, id: &DeviceId) -> DeviceRef<'_> {
        DeviceRef {
            gateway: self,
            id: id.clone(),
            token: None,
        }
    }

    /// Sends a command to a connected device's actor and waits for the answer.
    pub(super) async fn call<T>(
        &self,
        id: &DeviceId,
        token: Option<&str>,
        operation: Operation,
        make: impl FnOnce(oneshot::Sender<GatewayResult<T>>) -> Command,
    ) -> GatewayResult<T> {
        self.ensure_running()?;
        self.check_lease(id, token)?;
        let handle = lock(&self.inner.devices)
            .get(id)
            .cloned()
            .ok_or_else(|| GatewayError::Ble(BleError::NotConnected(id.clone())))?;
        let (tx, rx) = oneshot::channel();
        // The actor applies the operation timeout to the radio; this one also
        // covers the wait in its queue.
        let limit = self.inner.config.op_timeout() * 2;
        let work = async {
            handle
                .tx
                .send(make(tx))
                .await
                .map_err(|_| GatewayError::Ble(BleError::NotConnected(id.clone())))?;
            rx.await
                .map_err(|_| GatewayError::Ble(BleError::NotConnected(id.clone())))?
        };
        tokio::time::timeout(limit, work)
            .await
            .map_err(|_| GatewayError::Timeout {
                id: id.clone(),
                operation,
                after: limit,
            })?
    }
}

/// Operations on one connected device, with or without a lease.
pub struct DeviceRef<'a> {
    pub(super) gateway: &'a Gateway,
    pub(super) id: DeviceId,
    /// The lease's token, when used through a [`super::Lease`].
    pub(super) token: Option<&'a str>,
}

impl DeviceRef<'_> {
    pub fn id(&self) -> &DeviceId {
        &self.id
    }

    /// The GATT tree, discovered once per connection.
    pub async fn services(&self) -> GatewayResult<Arc<Vec<Service>>> {
        self.gateway
            .call(&self.id, self.token, Operation::Discover, Command::Services)
            .await
    }

    pub async fn read(&self, service: Uuid, characteristic: Uuid) -> GatewayResult<Bytes> {
        self.gateway
            .call(&self.id, self.token, Operation::Read, |reply| Command::Read {
                key: (service, characteristic),
                reply,
            })
            .await
    }

    /// Writes a value; without response, values longer than the MTU allows go as
    /// several writes.
    pub async fn write(
        &self,
        service: Uuid,
        characteristic: Uuid,
        value: impl Into<Bytes>,
        kind: WriteKind,
    ) -> GatewayResult<()> {
        let value = value.into();
        self.gateway
            .call(&self.id, self.token, Operation::Write, |reply| Command::Write {
                key: (service, characteristic),
                value,
                kind,
                reply,
            })
            .await
    }

    pub async fn read_descriptor(
        &self,
        service: Uuid,
        characteristic: Uuid,
        descriptor: Uuid,
    ) -> GatewayResult<Bytes> {
        self.gateway
            .call(&self.id, self.token, Operation::ReadDescriptor, |reply| {
                Command::ReadDescriptor {
                    key: (service, characteristic),
                    descriptor,
                    reply,
                }
            })
            .await
    }

    pub async fn write_descriptor(
        &self,
        service: Uuid,
        characteristic: Uuid,
        descriptor: Uuid,
        value: impl Into<Bytes>,
    ) -> GatewayResult<()> {
        let value = value.into();
        self.gateway
            .call(&self.id, self.token, Operation::WriteDescriptor, |reply| {
                Command::WriteDescriptor {
                    key: (service, characteristic),
                    descriptor,
                    value,
                    reply,
                }
            })
            .await
    }

    /// Subscribes to notifications; the radio subscription is shared by every
    /// subscriber of the characteristic and turned off after the last one goes.
    pub async fn subscribe(&self, service: Uuid, characteristic: Uuid) -> GatewayResult<Subscription> {
        let rx = self
            .gateway
            .call(&self.id, self.token, Operation::Subscribe, |reply| {
                Command::Subscribe {
                    key: (service, characteristic),
                    reply,
                }
            })
            .await?;
        let shared = lock(&self.gateway.inner.devices)
            .get(&self.id)
            .map(|h| h.shared.clone());
        Ok(Subscription {
            rx,
            shared: shared.as_ref().map(Arc::downgrade).unwrap_or_default(),
            _count: LiveCount::new(&self.gateway.inner.stats.subscribers),
        })
    }

    /// Closes the link; the device's subscriptions end.
    pub async fn disconnect(&self) -> GatewayResult<()> {
        self.gateway.check_lease(&self.id, self.token)?;
        let handle = lock(&self.gateway.inner.devices).remove(&self.id);
        let Some(handle) = handle else {
            return Err(BleError::NotConnected(self.id.clone()).into());
        };
        let (tx, rx) = oneshot::channel();
        if handle.tx.send(Command::Disconnect(Some(tx))).await.is_ok() {
            let _ = tokio::time::timeout(self.gateway.inner.config.op_timeout(), rx).await;
        }
        Ok(())
    }
}

/// What a subscriber receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscriptionEvent {
    Notification(Notification),
    /// The subscriber fell behind and this many notifications were dropped for it.
    Lagged(u64),
}

/// Notifications of one characteristic for one subscriber. Ends (`None`) when the
/// device is disconnected for good; dropping it unsubscribes.
pub struct Subscription {
    rx: broadcast::Receiver<Notification>,
    shared: Weak<DeviceShared>,
    _count: LiveCount,
}

impl Subscription {
    pub async fn recv(&mut self) -> Option<SubscriptionEvent> {
        match self.rx.recv().await {
            Ok(n) => Some(SubscriptionEvent::Notification(n)),
            Err(broadcast::error::RecvError::Lagged(k)) => Some(SubscriptionEvent::Lagged(k)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            // Let the receiver go first so the sweep sees the lower count.
            let (_, closed) = broadcast::channel::<Notification>(1);
            drop(std::mem::replace(&mut self.rx, closed));
            shared.housekeeping.notify_one();
        }
    }
}
