//! One link a client made through the proxy, to one device: its requests run in
//! order (a write then a read stays a write then a read), links run side by side.
//! The device is leased to the client's session, so other front ends get `busy`
//! while Home Assistant holds it, as they would for any client. A device the client
//! leaves unused (no request, no notification) for `esphome.lease_idle_timeout_ms`
//! is disconnected and its lease released: a client cannot hold it for ever.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::gatt::{att_error, Handles, CCCD};
use crate::ble::esphome::api::proto::{
    BluetoothDeviceConnectionResponse, BluetoothGattErrorResponse, BluetoothGattGetServicesDoneResponse,
    BluetoothGattGetServicesResponse, BluetoothGattNotifyDataResponse, BluetoothGattNotifyResponse,
    BluetoothGattReadResponse, BluetoothGattWriteResponse,
};
use crate::ble::esphome::api::Message;
use crate::ble::{Uuid, WriteKind};
use crate::gateway::{GatewayError, Lease, SubscriptionEvent};
use crate::sync::AbortOnDrop;

/// ESP_GATT_CONN_FAIL_ESTABLISH: a connect that did not succeed.
const CONN_FAIL_ESTABLISH: i32 = 0x3e;
/// ESP_GATT_CONN_TIMEOUT: the link was let go for want of use.
const CONN_TIMEOUT: i32 = 0x08;
/// Requests queued for one device before the session waits.
const QUEUE: usize = 64;

pub(super) enum Request {
    Connect,
    Disconnect,
    Services,
    Read(u32),
    Write {
        handle: u32,
        data: Vec<u8>,
        response: bool,
    },
    ReadDescriptor(u32),
    WriteDescriptor {
        handle: u32,
        data: Vec<u8>,
    },
    Notify {
        handle: u32,
        enable: bool,
    },
}

/// The link's actor; `idle`: how long it may go unused before it is let go.
pub(super) fn spawn(
    lease: Lease,
    address: u64,
    out: mpsc::Sender<Message>,
    idle: Option<Duration>,
) -> mpsc::Sender<Request> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let link = ClientLink {
        lease,
        address,
        out,
        handles: Handles::default(),
        notifying: HashMap::new(),
        used: Arc::new(LastUse::new()),
    };
    tokio::spawn(link.run(rx, idle));
    tx
}

/// When a device was last used, written by its actor and its notification
/// forwarders alike.
struct LastUse {
    start: Instant,
    /// Milliseconds from `start`.
    at: AtomicU64,
}

impl LastUse {
    fn new() -> LastUse {
        LastUse {
            start: Instant::now(),
            at: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.at.store(ms, Ordering::Relaxed);
    }

    fn at(&self) -> Instant {
        self.start + Duration::from_millis(self.at.load(Ordering::Relaxed))
    }
}

struct ClientLink {
    lease: Lease,
    address: u64,
    out: mpsc::Sender<Message>,
    handles: Handles,
    /// Characteristic value handle → the task forwarding its notifications.
    notifying: HashMap<u32, AbortOnDrop>,
    used: Arc<LastUse>,
}

impl ClientLink {
    async fn run(mut self, mut rx: mpsc::Receiver<Request>, idle: Option<Duration>) {
        loop {
            let request = match idle {
                None => rx.recv().await,
                Some(idle) => tokio::select! {
                    request = rx.recv() => request,
                    _ = tokio::time::sleep_until(self.used.at() + idle) => {
                        if self.used.at() + idle > Instant::now() {
                            continue; // a notification came meanwhile
                        }
                        tracing::info!(device = %self.lease.id(), ?idle, "ESPHome client's device unused: letting it go");
                        self.notifying.clear();
                        let _ = self.lease.device().disconnect().await;
                        self.connection(false, 0, CONN_TIMEOUT).await;
                        return;
                    }
                },
            };
            let Some(request) = request else { break };
            self.used.touch();
            if !self.handle(request).await {
                return;
            }
        }
        // The session ended: the client's links end with it, as on an ESP32.
        self.notifying.clear();
        let _ = self.lease.device().disconnect().await;
    }

    /// Serves one request; false when the device is done with.
    async fn handle(&mut self, request: Request) -> bool {
        let address = self.address;
        match request {
            Request::Connect => match self.lease.connect(None).await {
                Ok(info) => self.connection(true, u32::from(info.mtu), 0).await,
                Err(e) => {
                    tracing::info!(device = %self.lease.id(), error = %e, "ESPHome client's connect failed");
                    self.connection(false, 0, CONN_FAIL_ESTABLISH).await;
                    return false;
                }
            },
            Request::Disconnect => {
                self.notifying.clear();
                let _ = self.lease.device().disconnect().await;
                self.connection(false, 0, 0).await;
                return false;
            }
            Request::Services => match self.lease.device().services().await {
                Ok(services) => {
                    let (handles, listed) = Handles::number(&services);
                    self.handles = handles;
                    // One service per message, as ESPHome sends them (a frame holds 64 KiB).
                    for service in listed {
                        self.send(Message::BluetoothGattGetServicesResponse(
                            BluetoothGattGetServicesResponse {
                                address,
                                services: vec![service],
                            },
                        ))
                        .await;
                    }
                    self.send(Message::BluetoothGattGetServicesDoneResponse(
                        BluetoothGattGetServicesDoneResponse { address },
                    ))
                    .await;
                }
                Err(e) => self.error(0, &e).await,
            },
            Request::Read(handle) => {
                let Some((service, characteristic)) = self.handles.characteristic(handle) else {
                    return self.invalid(handle).await;
                };
                let result = self.lease.device().read(service, characteristic).await;
                self.read_result(handle, result).await;
            }
            Request::ReadDescriptor(handle) => {
                let Some((service, characteristic, descriptor)) = self.handles.descriptor(handle) else {
                    return self.invalid(handle).await;
                };
                let result = self
                    .lease
                    .device()
                    .read_descriptor(service, characteristic, descriptor)
                    .await;
                self.read_result(handle, result).await;
            }
            Request::Write {
                handle,
                data,
                response,
            } => {
                let Some((service, characteristic)) = self.handles.characteristic(handle) else {
                    return self.invalid(handle).await;
                };
                let kind = if response {
                    WriteKind::WithResponse
                } else {
                    WriteKind::WithoutResponse
                };
                let result = self
                    .lease
                    .device()
                    .write(service, characteristic, data, kind)
                    .await;
                self.write_result(handle, result, response).await;
            }
            Request::WriteDescriptor { handle, data } => {
                let Some((service, characteristic, descriptor)) = self.handles.descriptor(handle) else {
                    return self.invalid(handle).await;
                };
                // The gateway owns the CCCD (it is shared by every subscriber), so a
                // client's write of it is a subscription.
                let result = if descriptor == CCCD {
                    let enable = data.first().is_some_and(|b| b & 0x03 != 0);
                    self.set_notify(service, characteristic, enable).await
                } else {
                    self.lease
                        .device()
                        .write_descriptor(service, characteristic, descriptor, data)
                        .await
                };
                self.write_result(handle, result, true).await;
            }
            Request::Notify { handle, enable } => {
                let Some((service, characteristic)) = self.handles.characteristic(handle) else {
                    return self.invalid(handle).await;
                };
                match self.set_notify(service, characteristic, enable).await {
                    Ok(()) => {
                        self.send(Message::BluetoothGattNotifyResponse(
                            BluetoothGattNotifyResponse { address, handle },
                        ))
                        .await
                    }
                    Err(e) => self.error(handle, &e).await,
                }
            }
        }
        true
    }

    /// Turns a characteristic's notifications on (once) or off for this client.
    async fn set_notify(
        &mut self,
        service: Uuid,
        characteristic: Uuid,
        enable: bool,
    ) -> Result<(), GatewayError> {
        let handle = self.handles.handle_of(service, characteristic).unwrap_or(0);
        if !enable {
            self.notifying.remove(&handle);
            return Ok(());
        }
        if self.notifying.contains_key(&handle) {
            return Ok(());
        }
        let mut subscription = self.lease.device().subscribe(service, characteristic).await?;
        let (out, address, used) = (self.out.clone(), self.address, self.used.clone());
        let task = tokio::spawn(async move {
            while let Some(event) = subscription.recv().await {
                let SubscriptionEvent::Notification(n) = event else {
                    continue;
                };
                used.touch();
                let data = Message::BluetoothGattNotifyDataResponse(BluetoothGattNotifyDataResponse {
                    address,
                    handle,
                    data: n.value.to_vec(),
                });
                if out.send(data).await.is_err() {
                    return;
                }
            }
        });
        self.notifying.insert(handle, AbortOnDrop(task));
        Ok(())
    }

    async fn read_result(&self, handle: u32, result: Result<bytes::Bytes, GatewayError>) {
        match result {
            Ok(value) => {
                self.send(Message::BluetoothGattReadResponse(BluetoothGattReadResponse {
                    address: self.address,
                    handle,
                    data: value.to_vec(),
                }))
                .await
            }
            Err(e) => self.error(handle, &e).await,
        }
    }

    async fn write_result(&self, handle: u32, result: Result<(), GatewayError>, response: bool) {
        match result {
            Ok(()) if response => {
                self.send(Message::BluetoothGattWriteResponse(BluetoothGattWriteResponse {
                    address: self.address,
                    handle,
                }))
                .await
            }
            Ok(()) => {}
            Err(e) => self.error(handle, &e).await,
        }
    }

    /// A handle this device's numbering does not have (or not of that kind).
    async fn invalid(&self, handle: u32) -> bool {
        self.send(Message::BluetoothGattErrorResponse(BluetoothGattErrorResponse {
            address: self.address,
            handle,
            error: 0x01,
        }))
        .await;
        true
    }

    async fn error(&self, handle: u32, e: &GatewayError) {
        tracing::debug!(device = %self.lease.id(), handle, error = %e, "ESPHome client's GATT operation failed");
        self.send(Message::BluetoothGattErrorResponse(BluetoothGattErrorResponse {
            address: self.address,
            handle,
            error: att_error(e),
        }))
        .await;
    }

    async fn connection(&self, connected: bool, mtu: u32, error: i32) {
        self.send(Message::BluetoothDeviceConnectionResponse(
            BluetoothDeviceConnectionResponse {
                address: self.address,
                connected,
                mtu,
                error,
            },
        ))
        .await;
    }

    async fn send(&self, message: Message) {
        // The session is gone when this fails; the device's requests end with it.
        let _ = self.out.send(message).await;
    }
}
