//! Scanning: shared radio scans, each caller with its own filter and deadline
//! ([`ScanSession`]), the devices heard so far, and resolving an id or name prefix
//! to a device.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::broadcast;

use super::{lock, DeviceInfo, Gateway, GatewayError, GatewayResult, Heard, Inner};
use crate::ble::{BleError, DeviceId, ScanFilter, Uuid};

impl Gateway {
    /// The advertised name of a device heard so far.
    pub fn name_of(&self, id: &DeviceId) -> Option<String> {
        lock(&self.inner.known).get(id).and_then(|d| d.name.clone())
    }

    /// Devices heard so far, strongest first.
    pub fn known_devices(&self) -> Vec<DeviceInfo> {
        let mut v: Vec<DeviceInfo> = lock(&self.inner.known).values().cloned().collect();
        v.sort_by(|a, b| b.rssi.cmp(&a.rssi).then_with(|| a.id.cmp(&b.id)));
        v
    }

    /// Every advertisement any radio hears while some scan runs, with what the
    /// gateway made of it ([`Heard`]). Bounded: a consumer that falls behind gets
    /// `Lagged`.
    pub fn advertisements(&self) -> broadcast::Receiver<Arc<Heard>> {
        self.inner.adverts.subscribe()
    }

    /// Starts a scan; it ends at `duration` or when the session is dropped.
    pub async fn scan(&self, filter: ScanFilter, duration: Duration) -> GatewayResult<ScanSession> {
        self.ensure_running()?;
        // Subscribe before the radio starts so no early advertisement is missed.
        let rx = self.inner.adverts.subscribe();
        {
            let mut n = self.inner.scanners.lock().await;
            if *n == 0 {
                self.start_radio_scans(&filter).await?;
            }
            *n += 1;
        }
        Ok(ScanSession {
            rx,
            filter,
            started: tokio::time::Instant::now(),
            metrics: self.inner.metrics.clone(),
            deadline: tokio::time::Instant::now() + duration,
            seen: HashMap::new(),
            _guard: ScanGuard(Arc::downgrade(&self.inner)),
        })
    }

    /// Starts every radio's scan; an error only when no radio could start (a radio
    /// that is down is passed over, and the watchdog sees to it).
    async fn start_radio_scans(&self, filter: &ScanFilter) -> GatewayResult<()> {
        let mut first_error = None;
        let mut started = 0;
        for r in &self.inner.radios.list {
            let result = r.backend.start_scan(filter).await;
            r.scanning.store(result.is_ok(), Ordering::Relaxed);
            match result {
                Ok(()) => {
                    let now = self.inner.now_ms();
                    r.scan_started_ms.store(now, Ordering::Relaxed);
                    started += 1;
                }
                Err(e) => {
                    tracing::warn!(radio = %r.name, error = %e, "radio could not start scanning");
                    first_error.get_or_insert(e);
                }
            }
        }
        match (started, first_error) {
            (0, Some(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Finds the device `target` names: an id, or a name prefix that matches one
    /// device (scanning for it when nothing known matches).
    pub async fn resolve(
        &self,
        target: &str,
        services: &[Uuid],
        timeout: Duration,
    ) -> GatewayResult<DeviceId> {
        let target = target.trim();
        if target.is_empty() {
            return Err(GatewayError::InvalidInput("device id or name is empty".into()));
        }
        let as_id = DeviceId::new(target);
        if lock(&self.inner.devices).contains_key(&as_id) || lock(&self.inner.known).contains_key(&as_id) {
            return Ok(as_id);
        }
        let matches = |d: &DeviceInfo| {
            d.name.as_deref().is_some_and(|n| n.starts_with(target))
                && (services.is_empty() || services.iter().any(|s| d.services.contains(s)))
        };
        let mut candidates: Vec<DeviceInfo> = lock(&self.inner.known)
            .values()
            .filter(|d| matches(d))
            .cloned()
            .collect();
        match candidates.len() {
            1 => return Ok(candidates.remove(0).id),
            0 => {}
            _ => {
                candidates.sort_by(|a, b| a.id.cmp(&b.id));
                return Err(GatewayError::Ambiguous {
                    prefix: target.to_string(),
                    candidates: candidates
                        .iter()
                        .map(|d| format!("{} ({})", d.name.as_deref().unwrap_or("?"), d.id))
                        .collect(),
                });
            }
        }
        let mut scan = self.scan(ScanFilter::default(), timeout).await?;
        while let Some(found) = scan.next().await {
            if found.id == as_id || matches(&found) {
                return Ok(found.id);
            }
        }
        Err(BleError::DeviceNotFound(as_id).into())
    }
}

/// A running scan. `next()` yields each matching device once, as first heard;
/// [`ScanSession::results`] gives the latest of each.
pub struct ScanSession {
    rx: broadcast::Receiver<Arc<Heard>>,
    filter: ScanFilter,
    started: tokio::time::Instant,
    metrics: Arc<crate::metrics::Metrics>,
    deadline: tokio::time::Instant,
    seen: HashMap<DeviceId, DeviceInfo>,
    _guard: ScanGuard,
}

impl ScanSession {
    /// The next newly found device, or `None` when the scan's time is up.
    pub async fn next(&mut self) -> Option<DeviceInfo> {
        loop {
            let heard = match tokio::time::timeout_at(self.deadline, self.rx.recv()).await {
                Err(_) => return None,
                Ok(Ok(heard)) => heard,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            };
            if !self.filter.matches(&heard.advert) {
                continue;
            }
            let info = heard.device.clone();
            if self.seen.insert(info.id.clone(), info.clone()).is_none() {
                self.metrics.devices_found.inc();
                self.metrics
                    .discovery_time
                    .observe(self.started.elapsed().as_secs_f64());
                return Some(info);
            }
        }
    }

    /// Runs the scan to its end and returns every device found, strongest first.
    pub async fn collect(mut self) -> Vec<DeviceInfo> {
        while self.next().await.is_some() {}
        self.results()
    }

    /// Devices found so far (latest advertisement of each), strongest first.
    pub fn results(&self) -> Vec<DeviceInfo> {
        let mut v: Vec<DeviceInfo> = self.seen.values().cloned().collect();
        v.sort_by(|a, b| b.rssi.cmp(&a.rssi).then_with(|| a.id.cmp(&b.id)));
        v
    }
}

/// Stops the radio scan when the last scanner goes.
struct ScanGuard(Weak<Inner>);

impl Drop for ScanGuard {
    fn drop(&mut self) {
        let Some(inner) = self.0.upgrade() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let mut n = inner.scanners.lock().await;
            *n = n.saturating_sub(1);
            if *n == 0 {
                for r in &inner.radios.list {
                    r.scanning.store(false, Ordering::Relaxed);
                    if let Err(e) = r.backend.stop_scan().await {
                        tracing::warn!(radio = %r.name, error = %e, "stopping the scan failed");
                    }
                }
            }
        });
    }
}
