//! The API session with the proxy, kept up for as long as the radio lives: connect,
//! handshake, hello, device info, subscriptions, then every message the proxy sends
//! dispatched to whoever waits for it. When the session drops, every device link
//! through it is lost (and said so), and it is made again with back-off.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::api::proto::*;
use super::api::{self, device_id_of, feature, ApiError, Message, MessageReader, SUBSCRIBE_RAW};
use super::state::{Key, Shared};
use crate::ble::{ad, BackendEvent, BleError, DisconnectReason, Notification};
use crate::sync::{lock, AbortOnDrop};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A proxy pings every 20 s or so, and answers ours; silence this long is a dead link.
const PING_EVERY: Duration = Duration::from_secs(20);
const SILENCE: Duration = Duration::from_secs(60);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Keeps a session with the proxy until `stop`.
pub(super) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let started = tokio::time::Instant::now();
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = session(&shared) => r,
            _ = shared.reset.notified() => Err(ApiError::Protocol("reset by the watchdog".into())),
        };
        let reason = match result {
            Ok(()) => "the proxy closed the session".to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(radio = %shared.name, proxy = %shared.address, error = %reason, "ESPHome proxy session down");
        lost(&shared, &reason);
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(250);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// The session is gone: every link through it is lost, every waiter told.
fn lost(shared: &Shared, reason: &str) {
    let (links, waiters) = {
        let mut st = lock(&shared.state);
        st.out = None;
        st.down_reason = Some(reason.to_string());
        (std::mem::take(&mut st.links), std::mem::take(&mut st.pending))
    };
    for (address, _) in links {
        let _ = shared.events.send(BackendEvent::Disconnected {
            id: device_id_of(address),
            reason: DisconnectReason::LinkLost,
        });
    }
    for (key, waiter) in waiters {
        let _ = waiter.send(Err(BleError::LinkLost(device_id_of(key.address()))));
    }
}

async fn session(shared: &Arc<Shared>) -> Result<(), ApiError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&shared.address))
        .await
        .map_err(|_| {
            ApiError::Protocol(format!(
                "no answer from {} in {CONNECT_TIMEOUT:?}",
                shared.address
            ))
        })??;
    let (mut reader, mut writer) = api::connect(stream, shared.psk.as_ref()).await?;
    let (major, minor) = api::API_VERSION;
    writer
        .send(&Message::HelloRequest(HelloRequest {
            client_info: format!("gattway {}", env!("CARGO_PKG_VERSION")),
            api_version_major: major,
            api_version_minor: minor,
        }))
        .await?;
    let hello = expect(&mut reader, |m| matches!(m, Message::HelloResponse(_))).await?;
    writer
        .send(&Message::DeviceInfoRequest(DeviceInfoRequest {}))
        .await?;
    let Message::DeviceInfoResponse(info) =
        expect(&mut reader, |m| matches!(m, Message::DeviceInfoResponse(_))).await?
    else {
        unreachable!("expect returns what it was asked for")
    };
    if info.bluetooth_proxy_feature_flags & feature::PASSIVE_SCAN == 0 {
        return Err(ApiError::Protocol(format!(
            "{} ({}) is not a Bluetooth proxy: enable bluetooth_proxy in its ESPHome config",
            info.name, shared.address
        )));
    }
    shared
        .features
        .store(info.bluetooth_proxy_feature_flags, Ordering::Relaxed);
    if let Message::HelloResponse(h) = hello {
        tracing::info!(radio = %shared.name, proxy = %info.name, version = %info.esphome_version,
            api = %format!("{}.{}", h.api_version_major, h.api_version_minor), "ESPHome proxy session up");
    }
    if shared.scanning.load(Ordering::Relaxed) {
        writer.queue(&subscribe_adverts())?;
    }
    writer.flush().await?;
    let (out, rx) = mpsc::channel(256);
    let _writer = AbortOnDrop(tokio::spawn(writer.pump(rx)));
    let pinger = out.clone();
    let _pings = AbortOnDrop(tokio::spawn(async move {
        let mut every = tokio::time::interval(PING_EVERY);
        every.tick().await;
        loop {
            every.tick().await;
            if pinger.send(Message::PingRequest(PingRequest {})).await.is_err() {
                return;
            }
        }
    }));
    {
        let mut st = lock(&shared.state);
        st.out = Some(out.clone());
        st.down_reason = None;
    }
    loop {
        let message = match tokio::time::timeout(SILENCE, reader.read()).await {
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(ApiError::Protocol(format!(
                    "the proxy was silent for {SILENCE:?}"
                )))
            }
        };
        if !dispatch(shared, &out, message).await {
            return Ok(());
        }
    }
}

pub(super) fn subscribe_adverts() -> Message {
    Message::SubscribeBluetoothLeAdvertisementsRequest(SubscribeBluetoothLeAdvertisementsRequest {
        flags: SUBSCRIBE_RAW,
    })
}

/// Reads until a message `wanted` accepts (answering pings meanwhile is not needed:
/// nothing else is sent before the hello).
async fn expect(reader: &mut MessageReader, wanted: impl Fn(&Message) -> bool) -> Result<Message, ApiError> {
    let read = async {
        loop {
            match reader.read().await? {
                Some(m) if wanted(&m) => return Ok(m),
                Some(_) => continue,
                None => return Err(ApiError::Closed),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| ApiError::Protocol("the proxy did not answer the hello".into()))?
}

/// Hands one message from the proxy to whoever waits for it; false to end the session.
async fn dispatch(shared: &Shared, out: &mpsc::Sender<Message>, message: Message) -> bool {
    match message {
        Message::BluetoothLeRawAdvertisementsResponse(batch) => {
            for raw in batch.advertisements {
                let rssi = raw.rssi.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
                let heard = ad::decode(device_id_of(raw.address), rssi, &raw.data);
                lock(&shared.state)
                    .address_types
                    .insert(raw.address, raw.address_type);
                let merged = shared.merge_advert(raw.address, heard);
                let _ = shared.events.send(BackendEvent::Advertisement(merged));
            }
        }
        Message::BluetoothDeviceConnectionResponse(r) => {
            let waiter = lock(&shared.state).pending.remove(&Key::Connect(r.address));
            match waiter {
                Some(w) => {
                    let _ = w.send(Ok(Message::BluetoothDeviceConnectionResponse(r)));
                }
                None if !r.connected => shared.link_lost(r.address),
                None => {}
            }
        }
        Message::BluetoothGattGetServicesResponse(r) => {
            if let Some(link) = lock(&shared.state).links.get_mut(&r.address) {
                link.listing.extend(r.services);
            }
        }
        Message::BluetoothGattGetServicesDoneResponse(r) => shared.answer(
            Key::Services(r.address),
            Message::BluetoothGattGetServicesDoneResponse(r),
        ),
        Message::BluetoothGattReadResponse(r) => shared.answer(
            Key::Read(r.address, r.handle),
            Message::BluetoothGattReadResponse(r),
        ),
        Message::BluetoothGattWriteResponse(r) => shared.answer(
            Key::Write(r.address, r.handle),
            Message::BluetoothGattWriteResponse(r),
        ),
        Message::BluetoothGattNotifyResponse(r) => shared.answer(
            Key::Notify(r.address, r.handle),
            Message::BluetoothGattNotifyResponse(r),
        ),
        Message::BluetoothGattErrorResponse(r) => {
            // The error answers whatever waits on that handle (or on the services).
            let mut st = lock(&shared.state);
            let keys = [
                Key::Read(r.address, r.handle),
                Key::Write(r.address, r.handle),
                Key::Notify(r.address, r.handle),
                Key::Services(r.address),
            ];
            if let Some(w) = keys.iter().find_map(|k| st.pending.remove(k)) {
                let _ = w.send(Ok(Message::BluetoothGattErrorResponse(r)));
            }
        }
        Message::BluetoothGattNotifyDataResponse(r) => {
            let st = lock(&shared.state);
            if let Some(link) = st.links.get(&r.address) {
                if let Some((service, characteristic)) = link.gatt.as_ref().and_then(|g| g.value(r.handle)) {
                    let _ = link.notify.send(Notification {
                        device: device_id_of(r.address),
                        service,
                        characteristic,
                        value: r.data.into(),
                        at: std::time::SystemTime::now(),
                    });
                }
            }
        }
        Message::PingRequest(_) => {
            let _ = out.send(Message::PingResponse(PingResponse {})).await;
        }
        Message::DisconnectRequest(_) => {
            let _ = out.send(Message::DisconnectResponse(DisconnectResponse {})).await;
            return false;
        }
        _ => {}
    }
    true
}
