//! One ESPHome client's session: the handshake's aftermath (hello, device info, an
//! empty entity list), advertisement subscriptions, connection-slot reports, and
//! the routing of Bluetooth requests to each link's actor (`client_link.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::client_link::{self, Request};
use super::Settings;
use crate::ble::esphome::api::proto::*;
use crate::ble::esphome::api::{
    self, address_of, device_id_of, feature, request, Message, MessageReader, MessageWriter, SUBSCRIBE_RAW,
};
use crate::ble::{ad, ScanFilter};
use crate::gateway::{Gateway, GatewayEvent};
use crate::sync::AbortOnDrop;

/// Messages queued for the client before senders wait (advertisements are dropped
/// instead: a proxy passes on what it can).
const OUT_QUEUE: usize = 256;
/// Raw advertisements per message, and how long one waits for company. ESPHome
/// batches the same way.
const ADVERT_BATCH: usize = 16;
const ADVERT_FLUSH: Duration = Duration::from_millis(100);
/// ESP_GATT_CONN_NONE: a request for a device the client has not connected.
const CONN_NONE: i32 = 0x0101;
/// ESP_GATT_CONN_TERMINATE_PEER_USER: the link dropped.
const CONN_TERMINATED: i32 = 0x13;

/// A client whose handshake is done.
pub(super) struct Client {
    pub reader: MessageReader,
    pub writer: MessageWriter,
    /// Who holds the leases: `esphome:<peer address>`.
    pub holder: String,
    /// The hello must have come by then (`esphome.handshake_timeout_ms` from the
    /// connect).
    pub hello_by: tokio::time::Instant,
}

pub(super) async fn run(
    gateway: Gateway,
    settings: Arc<Settings>,
    client: Client,
    shutdown: CancellationToken,
) {
    let Client {
        mut reader,
        writer,
        holder,
        hello_by,
    } = client;
    let (out, out_rx) = mpsc::channel(OUT_QUEUE);
    let writer = tokio::spawn(writer.pump(out_rx));
    let mut events = gateway.events();
    let mut session = Session {
        gateway,
        settings,
        out,
        holder,
        links: HashMap::new(),
        adverts: None,
        report_slots: false,
        greeted: false,
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(hello_by), if !session.greeted => {
                tracing::warn!(client = %session.holder, "ESPHome client sent no hello in time (esphome.handshake_timeout_ms)");
                break;
            }
            _ = shutdown.cancelled() => {
                session.send(Message::DisconnectRequest(DisconnectRequest {})).await;
                break;
            }
            message = reader.read() => match message {
                Ok(Some(m)) => {
                    if !session.handle(m).await {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(client = %session.holder, error = %e, "ESPHome client's session ended");
                    break;
                }
            },
            event = events.recv() => match event {
                Ok(event) => session.on_gateway_event(event).await,
                Err(broadcast::error::RecvError::Lagged(_)) => session.report_slots().await,
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    tracing::info!(client = %session.holder, "ESPHome client left");
    // Link actors hold senders too: they disconnect their links and finish, and
    // the writer flushes what they said.
    drop(session);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

struct Session {
    gateway: Gateway,
    settings: Arc<Settings>,
    out: mpsc::Sender<Message>,
    /// Who holds the leases: `esphome:<peer address>`.
    holder: String,
    /// Each link's actor, by device address.
    links: HashMap<u64, mpsc::Sender<Request>>,
    /// The advertisement subscription's forwarder.
    adverts: Option<AbortOnDrop>,
    report_slots: bool,
    /// The client said hello (within its handshake deadline).
    greeted: bool,
}

impl Session {
    /// Answers one message; false when the client is done.
    async fn handle(&mut self, message: Message) -> bool {
        match message {
            Message::HelloRequest(hello) => {
                self.greeted = true;
                tracing::info!(client = %self.holder, info = %hello.client_info, "ESPHome client connected");
                let (major, minor) = api::API_VERSION;
                self.send(Message::HelloResponse(HelloResponse {
                    api_version_major: major,
                    api_version_minor: minor,
                    server_info: format!("gattway {}", env!("CARGO_PKG_VERSION")),
                    name: self.settings.name.clone(),
                }))
                .await;
            }
            Message::DeviceInfoRequest(_) => {
                let info = self.device_info();
                self.send(Message::DeviceInfoResponse(info)).await;
            }
            Message::ListEntitiesRequest(_) => {
                self.send(Message::ListEntitiesDoneResponse(ListEntitiesDoneResponse {}))
                    .await;
            }
            Message::PingRequest(_) => self.send(Message::PingResponse(PingResponse {})).await,
            Message::DisconnectRequest(_) => {
                self.send(Message::DisconnectResponse(DisconnectResponse {}))
                    .await;
                return false;
            }
            Message::DisconnectResponse(_) => return false,
            Message::SubscribeBluetoothLeAdvertisementsRequest(r) => {
                let raw = r.flags & SUBSCRIBE_RAW != 0;
                self.adverts = Some(AbortOnDrop(tokio::spawn(forward_adverts(
                    self.gateway.clone(),
                    self.out.clone(),
                    raw,
                ))));
            }
            Message::UnsubscribeBluetoothLeAdvertisementsRequest(_) => self.adverts = None,
            Message::SubscribeBluetoothConnectionsFreeRequest(_) => {
                self.report_slots = true;
                self.report_slots().await;
            }
            Message::BluetoothDeviceRequest(r) => self.device_request(r).await,
            Message::BluetoothGattGetServicesRequest(r) => self.route(r.address, Request::Services).await,
            Message::BluetoothGattReadRequest(r) => self.route(r.address, Request::Read(r.handle)).await,
            Message::BluetoothGattReadDescriptorRequest(r) => {
                self.route(r.address, Request::ReadDescriptor(r.handle)).await
            }
            Message::BluetoothGattWriteRequest(r) => {
                let request = Request::Write {
                    handle: r.handle,
                    data: r.data,
                    response: r.response,
                };
                self.route(r.address, request).await
            }
            Message::BluetoothGattWriteDescriptorRequest(r) => {
                let request = Request::WriteDescriptor {
                    handle: r.handle,
                    data: r.data,
                };
                self.route(r.address, request).await
            }
            Message::BluetoothGattNotifyRequest(r) => {
                let request = Request::Notify {
                    handle: r.handle,
                    enable: r.enable,
                };
                self.route(r.address, request).await
            }
            // Entity states, Home Assistant services, logs, time: a proxy has none.
            other => tracing::trace!(message = ?std::mem::discriminant(&other), "ESPHome message ignored"),
        }
        true
    }

    fn device_info(&self) -> DeviceInfoResponse {
        let s = &self.settings;
        DeviceInfoResponse {
            name: s.name.clone(),
            friendly_name: s.name.clone(),
            mac_address: s.mac.clone(),
            bluetooth_mac_address: s.mac.clone(),
            esphome_version: api::ESPHOME_VERSION.into(),
            model: "gattway".into(),
            manufacturer: "gattway".into(),
            project_name: "gattway.bluetooth_proxy".into(),
            project_version: env!("CARGO_PKG_VERSION").into(),
            bluetooth_proxy_feature_flags: feature::PASSIVE_SCAN
                | feature::ACTIVE_CONNECTIONS
                | feature::REMOTE_CACHING
                | feature::RAW_ADVERTISEMENTS,
            api_encryption_supported: s.psk.is_some(),
            ..Default::default()
        }
    }

    async fn device_request(&mut self, r: BluetoothDeviceRequest) {
        match r.request_type {
            request::CONNECT | request::CONNECT_V3_WITH_CACHE | request::CONNECT_V3_WITHOUT_CACHE => {
                if let Some(tx) = self.links.get(&r.address).filter(|tx| !tx.is_closed()) {
                    let _ = tx.send(Request::Connect).await;
                    return;
                }
                let id = device_id_of(r.address);
                match self.gateway.lease(&id, &self.holder, false) {
                    Ok(lease) => {
                        let tx =
                            client_link::spawn(lease, r.address, self.out.clone(), self.settings.lease_idle);
                        let _ = tx.send(Request::Connect).await;
                        self.links.insert(r.address, tx);
                    }
                    Err(e) => {
                        tracing::info!(device = %id, error = %e, "ESPHome client cannot have the device");
                        self.connection_closed(r.address, 0x3e).await;
                    }
                }
            }
            request::DISCONNECT => match self.links.remove(&r.address) {
                Some(tx) => {
                    let _ = tx.send(Request::Disconnect).await;
                }
                None => self.connection_closed(r.address, 0).await,
            },
            // Pairing is not offered (the feature flag is clear); a clear-cache
            // succeeds at once because the proxy keeps no cache.
            request::CLEAR_CACHE => {
                self.send(Message::BluetoothDeviceClearCacheResponse(
                    BluetoothDeviceClearCacheResponse {
                        address: r.address,
                        success: true,
                        error: 0,
                    },
                ))
                .await
            }
            request::PAIR => {
                self.send(Message::BluetoothDevicePairingResponse(
                    BluetoothDevicePairingResponse {
                        address: r.address,
                        paired: false,
                        error: 0x85,
                    },
                ))
                .await
            }
            other => tracing::debug!(request_type = other, "ESPHome device request not supported"),
        }
    }

    /// Hands a GATT request to the link's actor; a device the client has not
    /// connected answers "disconnected", as an ESP32 does.
    async fn route(&mut self, address: u64, request: Request) {
        let delivered = match self.links.get(&address) {
            Some(tx) => tx.send(request).await.is_ok(),
            None => false,
        };
        if !delivered {
            self.links.remove(&address);
            self.connection_closed(address, CONN_NONE).await;
        }
    }

    async fn on_gateway_event(&mut self, event: GatewayEvent) {
        match event {
            GatewayEvent::Disconnected {
                id,
                will_reconnect: false,
                ..
            } => {
                if let Some(address) = address_of(&id) {
                    if self.links.remove(&address).is_some() {
                        self.connection_closed(address, CONN_TERMINATED).await;
                    }
                }
                self.report_slots().await;
            }
            GatewayEvent::Connected { .. } => self.report_slots().await,
            _ => {}
        }
    }

    async fn report_slots(&self) {
        if !self.report_slots {
            return;
        }
        let links = self.gateway.connections();
        let limit = self.gateway.config().max_connections as u32;
        let allocated: Vec<u64> = links.iter().filter_map(|c| address_of(&c.id)).collect();
        self.send(Message::BluetoothConnectionsFreeResponse(
            BluetoothConnectionsFreeResponse {
                free: limit.saturating_sub(links.len() as u32),
                limit,
                allocated,
            },
        ))
        .await;
    }

    async fn connection_closed(&self, address: u64, error: i32) {
        self.send(Message::BluetoothDeviceConnectionResponse(
            BluetoothDeviceConnectionResponse {
                address,
                connected: false,
                mtu: 0,
                error,
            },
        ))
        .await;
    }

    async fn send(&self, message: Message) {
        let _ = self.out.send(message).await;
    }
}

/// Keeps the radios scanning and passes every advertisement on, batched (raw) or
/// one by one (the legacy parsed form). A client that does not keep up loses
/// advertisements, not the session.
async fn forward_adverts(gateway: Gateway, out: mpsc::Sender<Message>, raw: bool) {
    let mut heard = gateway.advertisements();
    let _scan = match gateway
        .scan(ScanFilter::default(), Duration::from_secs(365 * 86_400))
        .await
    {
        Ok(scan) => scan,
        Err(e) => {
            tracing::warn!(error = %e, "the proxy cannot scan");
            return;
        }
    };
    let mut batch = Vec::with_capacity(ADVERT_BATCH);
    let mut flush = tokio::time::interval(ADVERT_FLUSH);
    let send_batch = |batch: &mut Vec<BluetoothLeRawAdvertisement>| {
        if !batch.is_empty() {
            let advertisements = std::mem::take(batch);
            let _ = out.try_send(Message::BluetoothLeRawAdvertisementsResponse(
                BluetoothLeRawAdvertisementsResponse { advertisements },
            ));
        }
    };
    loop {
        tokio::select! {
            h = heard.recv() => {
                let h = match h {
                    Ok(h) => h,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let Some(address) = address_of(&h.advert.id) else { continue };
                if raw {
                    batch.push(BluetoothLeRawAdvertisement {
                        address,
                        rssi: i32::from(h.advert.rssi),
                        address_type: 0,
                        data: ad::encode(&h.advert),
                    });
                    if batch.len() >= ADVERT_BATCH {
                        send_batch(&mut batch);
                    }
                } else {
                    let _ = out.try_send(Message::BluetoothLeAdvertisementResponse(legacy(address, &h.advert)));
                }
            }
            _ = flush.tick() => send_batch(&mut batch),
        }
    }
}

#[allow(deprecated)] // legacy_data: the field older clients read, left empty
fn legacy(address: u64, adv: &crate::ble::Advertisement) -> BluetoothLeAdvertisementResponse {
    let data = |uuid: String, data: &Vec<u8>| BluetoothServiceData {
        uuid,
        legacy_data: Vec::new(),
        data: data.clone(),
    };
    BluetoothLeAdvertisementResponse {
        address,
        name: adv.name.clone().unwrap_or_default().into_bytes(),
        rssi: i32::from(adv.rssi),
        service_uuids: adv.services.iter().map(|u| u.to_string()).collect(),
        service_data: adv
            .service_data
            .iter()
            .map(|(u, d)| data(u.to_string(), d))
            .collect(),
        manufacturer_data: adv
            .manufacturer_data
            .iter()
            .map(|(c, d)| data(format!("0x{c:04X}"), d))
            .collect(),
        address_type: 0,
    }
}
