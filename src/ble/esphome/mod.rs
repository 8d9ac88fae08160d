//! A remote radio: an ESPHome Bluetooth proxy (an ESP32, or another gattway serving
//! `esphome.listen`), reached over the ESPHome native API. It scans through the
//! proxy's raw advertisements and opens links through its connection slots.
//!
//! - `api/`: the protocol itself, which the proxy server (`esphome_proxy/`) speaks too.
//! - `session.rs`: the API session with the proxy, kept up with back-off.
//! - `gatt.rs`: a device's tree as the proxy lists it, and its handles.
//! - `state.rs`: what the radio and its session share.

pub mod api;
mod gatt;
mod session;
mod state;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot, Notify};
use tokio_stream::wrappers::BroadcastStream;
use tokio_util::sync::CancellationToken;

use self::api::proto::*;
use self::api::{address_of, device_id_of, request, Message};
use self::gatt::{gatt_error, RemoteGatt};
use self::state::{Key, ProxiedLink, Shared, State};
use super::{
    Backend, BackendEvent, BleError, BleResult, DeviceId, DisconnectReason, NotificationStream, ScanFilter,
    Service, Uuid, WriteKind,
};
use crate::sync::lock;

/// How long a request waits for the proxy's answer (the gateway's own deadlines are
/// shorter; this only keeps waiters from piling up).
const ANSWER: Duration = Duration::from_secs(30);
const CCCD: Uuid = Uuid::from_u16(0x2902);

/// One ESPHome proxy as a radio of the gateway.
pub struct EsphomeRadio {
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Drop for EsphomeRadio {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl EsphomeRadio {
    /// A radio named `name` through the proxy at `address` (`host:port`), with its
    /// Noise key when it encrypts. The session is made in the background and made
    /// again whenever it drops; until it is up the radio reports itself unavailable.
    pub fn open(name: &str, address: &str, noise_psk: Option<&str>) -> BleResult<Arc<EsphomeRadio>> {
        let psk = noise_psk
            .filter(|k| !k.trim().is_empty())
            .map(api::decode_psk)
            .transpose()
            .map_err(|e| BleError::AdapterUnavailable(format!("ESPHome proxy {name}: {e}")))?;
        let (events, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            name: name.to_string(),
            address: address.to_string(),
            psk,
            events,
            scanning: AtomicBool::new(false),
            features: AtomicU32::new(0),
            reset: Notify::new(),
            state: Mutex::new(State {
                down_reason: Some("connecting".into()),
                ..State::default()
            }),
        });
        let stop = CancellationToken::new();
        tokio::spawn(session::run(shared.clone(), stop.clone()));
        Ok(Arc::new(EsphomeRadio { shared, stop }))
    }

    fn out(&self) -> BleResult<mpsc::Sender<Message>> {
        let st = lock(&self.shared.state);
        st.out.clone().ok_or_else(|| self.unavailable(&st))
    }

    fn unavailable(&self, st: &State) -> BleError {
        BleError::AdapterUnavailable(format!(
            "ESPHome proxy {} at {}: {}",
            self.shared.name,
            self.shared.address,
            st.down_reason.as_deref().unwrap_or("not connected")
        ))
    }

    async fn send(&self, message: Message) -> BleResult<()> {
        self.out()?.send(message).await.map_err(|_| {
            BleError::AdapterUnavailable(format!("ESPHome proxy {}: session closed", self.shared.name))
        })
    }

    /// Sends `message` and waits for the answer `key` names.
    async fn request(&self, key: Key, message: Message) -> BleResult<Message> {
        let (tx, rx) = oneshot::channel();
        let out = {
            let mut st = lock(&self.shared.state);
            let out = st.out.clone().ok_or_else(|| self.unavailable(&st))?;
            st.pending.insert(key, tx);
            out
        };
        if out.send(message).await.is_err() {
            lock(&self.shared.state).pending.remove(&key);
            return Err(BleError::AdapterUnavailable(format!(
                "ESPHome proxy {}: session closed",
                self.shared.name
            )));
        }
        match tokio::time::timeout(ANSWER, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(BleError::LinkLost(device_id_of(key.address()))),
            Err(_) => {
                lock(&self.shared.state).pending.remove(&key);
                Err(BleError::Timeout {
                    operation: "an ESPHome proxy request",
                    after: ANSWER,
                })
            }
        }
    }

    fn address(id: &DeviceId) -> BleResult<u64> {
        address_of(id).ok_or_else(|| BleError::DeviceNotFound(id.clone()))
    }

    /// The device's tree and handles, listing it first when not yet known.
    async fn gatt(&self, id: &DeviceId) -> BleResult<Arc<RemoteGatt>> {
        let address = Self::address(id)?;
        {
            let st = lock(&self.shared.state);
            match st.links.get(&address) {
                None => return Err(BleError::NotConnected(id.clone())),
                Some(ProxiedLink { gatt: Some(g), .. }) => return Ok(g.clone()),
                Some(_) => {}
            }
        }
        let answer = self
            .request(
                Key::Services(address),
                Message::BluetoothGattGetServicesRequest(BluetoothGattGetServicesRequest { address }),
            )
            .await?;
        if let Message::BluetoothGattErrorResponse(e) = answer {
            return Err(BleError::Other(format!(
                "listing the services of {id} failed: GATT error {:#04x}",
                e.error
            )));
        }
        let mut st = lock(&self.shared.state);
        let link = st
            .links
            .get_mut(&address)
            .ok_or_else(|| BleError::NotConnected(id.clone()))?;
        let gatt = Arc::new(RemoteGatt::from_listing(&std::mem::take(&mut link.listing)));
        link.gatt = Some(gatt.clone());
        Ok(gatt)
    }

    /// Sends a GATT request and turns the proxy's error answer into the gateway's.
    async fn gatt_request(
        &self,
        id: &DeviceId,
        (service, characteristic): (Uuid, Uuid),
        operation: &'static str,
        key: Key,
        message: Message,
    ) -> BleResult<Message> {
        match self.request(key, message).await? {
            Message::BluetoothGattErrorResponse(e) => {
                Err(gatt_error(id, service, characteristic, operation, e.error))
            }
            other => Ok(other),
        }
    }

    async fn read_handle(
        &self,
        id: &DeviceId,
        at: (Uuid, Uuid),
        handle: u32,
        descriptor: bool,
    ) -> BleResult<Bytes> {
        let address = Self::address(id)?;
        let message = if descriptor {
            Message::BluetoothGattReadDescriptorRequest(BluetoothGattReadDescriptorRequest {
                address,
                handle,
            })
        } else {
            Message::BluetoothGattReadRequest(BluetoothGattReadRequest { address, handle })
        };
        match self
            .gatt_request(id, at, "read", Key::Read(address, handle), message)
            .await?
        {
            Message::BluetoothGattReadResponse(r) => Ok(r.data.into()),
            _ => Err(BleError::Other(
                "the proxy answered a read with something else".into(),
            )),
        }
    }

    async fn write_descriptor_handle(
        &self,
        id: &DeviceId,
        at: (Uuid, Uuid),
        handle: u32,
        value: &[u8],
    ) -> BleResult<()> {
        let address = Self::address(id)?;
        let message = Message::BluetoothGattWriteDescriptorRequest(BluetoothGattWriteDescriptorRequest {
            address,
            handle,
            data: value.to_vec(),
        });
        self.gatt_request(id, at, "write", Key::Write(address, handle), message)
            .await
            .map(|_| ())
    }

    /// Turns notifications on or off: the proxy's notify request, then the CCCD, as
    /// an ESP32 needs it written by the client.
    async fn set_notify(
        &self,
        id: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        enable: bool,
    ) -> BleResult<()> {
        let address = Self::address(id)?;
        let gatt = self.gatt(id).await?;
        let handle = gatt.characteristic(service, characteristic)?;
        let message = Message::BluetoothGattNotifyRequest(BluetoothGattNotifyRequest {
            address,
            handle,
            enable,
        });
        if enable {
            self.gatt_request(
                id,
                (service, characteristic),
                "notify",
                Key::Notify(address, handle),
                message,
            )
            .await?;
        } else {
            self.send(message).await?;
        }
        if let Ok(cccd) = gatt.descriptor(service, characteristic, CCCD) {
            let value: &[u8] = if enable { &[0x01, 0x00] } else { &[0x00, 0x00] };
            self.write_descriptor_handle(id, (service, characteristic), cccd, value)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Backend for EsphomeRadio {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn kind(&self) -> &'static str {
        "esphome"
    }

    async fn adapter_status(&self) -> BleResult<()> {
        self.out().map(|_| ())
    }

    fn events(&self) -> broadcast::Receiver<BackendEvent> {
        self.shared.events.subscribe()
    }

    /// A proxy cannot be power-cycled from here: the session is dropped and made
    /// again, which makes the proxy drop this client's links and re-subscribe.
    async fn reset(&self) -> BleResult<()> {
        self.shared.reset.notify_one();
        Ok(())
    }

    async fn start_scan(&self, _filter: &ScanFilter) -> BleResult<()> {
        self.shared.scanning.store(true, Ordering::Relaxed);
        self.send(session::subscribe_adverts()).await
    }

    async fn stop_scan(&self) -> BleResult<()> {
        self.shared.scanning.store(false, Ordering::Relaxed);
        self.send(Message::UnsubscribeBluetoothLeAdvertisementsRequest(
            UnsubscribeBluetoothLeAdvertisementsRequest {},
        ))
        .await
    }

    async fn connect(&self, id: &DeviceId) -> BleResult<u16> {
        let address = Self::address(id)?;
        if self.shared.features.load(Ordering::Relaxed) & api::feature::ACTIVE_CONNECTIONS == 0 {
            return Err(BleError::ConnectFailed {
                id: id.clone(),
                reason: format!(
                    "ESPHome proxy {} is passive: it makes no connections",
                    self.shared.name
                ),
            });
        }
        let address_type = {
            let (notify, _) = broadcast::channel(1024);
            let mut st = lock(&self.shared.state);
            st.links.insert(
                address,
                ProxiedLink {
                    gatt: None,
                    listing: Vec::new(),
                    notify,
                },
            );
            st.address_types.get(&address).copied().unwrap_or(0)
        };
        let answer = self
            .request(
                Key::Connect(address),
                Message::BluetoothDeviceRequest(BluetoothDeviceRequest {
                    address,
                    request_type: request::CONNECT_V3_WITHOUT_CACHE,
                    has_address_type: true,
                    address_type,
                }),
            )
            .await;
        match answer {
            Ok(Message::BluetoothDeviceConnectionResponse(r)) if r.connected => {
                let _ = self.shared.events.send(BackendEvent::Connected(id.clone()));
                Ok(r.mtu.clamp(23, 517) as u16)
            }
            Ok(Message::BluetoothDeviceConnectionResponse(r)) => {
                lock(&self.shared.state).links.remove(&address);
                Err(BleError::ConnectFailed {
                    id: id.clone(),
                    reason: format!(
                        "the proxy {} could not connect (error {:#x})",
                        self.shared.name, r.error
                    ),
                })
            }
            Ok(_) => Err(BleError::Other(
                "the proxy answered a connect with something else".into(),
            )),
            Err(e) => {
                lock(&self.shared.state).links.remove(&address);
                Err(e)
            }
        }
    }

    async fn disconnect(&self, id: &DeviceId) -> BleResult<()> {
        let address = Self::address(id)?;
        if lock(&self.shared.state).links.remove(&address).is_none() {
            return Ok(());
        }
        let answer = self
            .request(
                Key::Connect(address),
                Message::BluetoothDeviceRequest(BluetoothDeviceRequest {
                    address,
                    request_type: request::DISCONNECT,
                    has_address_type: true,
                    address_type: 0,
                }),
            )
            .await;
        let _ = self.shared.events.send(BackendEvent::Disconnected {
            id: id.clone(),
            reason: DisconnectReason::Requested,
        });
        answer.map(|_| ())
    }

    async fn is_connected(&self, id: &DeviceId) -> bool {
        address_of(id).is_some_and(|a| lock(&self.shared.state).links.contains_key(&a))
    }

    async fn discover(&self, id: &DeviceId) -> BleResult<Vec<Service>> {
        Ok(self.gatt(id).await?.services.clone())
    }

    async fn read(&self, id: &DeviceId, service: Uuid, characteristic: Uuid) -> BleResult<Bytes> {
        let handle = self.gatt(id).await?.characteristic(service, characteristic)?;
        self.read_handle(id, (service, characteristic), handle, false)
            .await
    }

    async fn write(
        &self,
        id: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        value: &[u8],
        kind: WriteKind,
    ) -> BleResult<()> {
        let address = Self::address(id)?;
        let handle = self.gatt(id).await?.characteristic(service, characteristic)?;
        let response = kind == WriteKind::WithResponse;
        let message = Message::BluetoothGattWriteRequest(BluetoothGattWriteRequest {
            address,
            handle,
            response,
            data: value.to_vec(),
        });
        if !response {
            return self.send(message).await;
        }
        self.gatt_request(
            id,
            (service, characteristic),
            "write",
            Key::Write(address, handle),
            message,
        )
        .await
        .map(|_| ())
    }

    async fn read_descriptor(
        &self,
        id: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        descriptor: Uuid,
    ) -> BleResult<Bytes> {
        let handle = self
            .gatt(id)
            .await?
            .descriptor(service, characteristic, descriptor)?;
        self.read_handle(id, (service, characteristic), handle, true)
            .await
    }

    async fn write_descriptor(
        &self,
        id: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        descriptor: Uuid,
        value: &[u8],
    ) -> BleResult<()> {
        let handle = self
            .gatt(id)
            .await?
            .descriptor(service, characteristic, descriptor)?;
        self.write_descriptor_handle(id, (service, characteristic), handle, value)
            .await
    }

    async fn subscribe(&self, id: &DeviceId, service: Uuid, characteristic: Uuid) -> BleResult<()> {
        self.set_notify(id, service, characteristic, true).await
    }

    async fn unsubscribe(&self, id: &DeviceId, service: Uuid, characteristic: Uuid) -> BleResult<()> {
        self.set_notify(id, service, characteristic, false).await
    }

    async fn notifications(&self, id: &DeviceId) -> BleResult<NotificationStream> {
        let address = Self::address(id)?;
        let rx = lock(&self.shared.state)
            .links
            .get(&address)
            .map(|l| l.notify.subscribe())
            .ok_or_else(|| BleError::NotConnected(id.clone()))?;
        // Ends when the link does (its sender goes with it).
        Ok(BroadcastStream::new(rx)
            .filter_map(|n| async move { n.ok() })
            .boxed())
    }

    async fn rssi(&self, id: &DeviceId) -> Option<i16> {
        let address = address_of(id)?;
        lock(&self.shared.state).adverts.get(&address).map(|a| a.rssi)
    }
}
