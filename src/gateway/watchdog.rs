//! The radio watchdog. The commonest failure of BLE gateways in the field is an
//! adapter whose scanner gets stuck (BlueZ's `org.bluez.Error.InProgress`): it
//! reports scanning and hears nothing for hours, until someone restarts
//! bluetoothd. Here, while a scan runs and devices are known, a radio deaf for
//! `gateway.watchdog_stall_ms` has its scan restarted; deaf for as long again, it
//! is power-cycled ([`crate::ble::Backend::reset`]). Each recovery is logged and
//! counted (`gattway_radio_recoveries_total`). The same task forgets devices not
//! heard for `gateway.device_expiry_ms` (`gateway.proxy_device_expiry_ms` for those
//! heard best through a remote proxy).

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, SystemTime};

use super::{lock, AbortOnDrop, GatewayConfig, Inner};
use crate::ble::ScanFilter;

/// Starts the watchdog, when either of its jobs is configured.
pub(super) fn spawn(inner: Weak<Inner>, config: &GatewayConfig) -> Option<AbortOnDrop> {
    let (stall, expiry) = (config.watchdog_stall(), config.device_expiry());
    let proxy_expiry = config.proxy_device_expiry();
    // A few looks per period, at least every 5 s.
    let every = [stall, expiry, proxy_expiry].into_iter().flatten().min()? / 4;
    let every = every.clamp(Duration::from_millis(10), Duration::from_secs(5));
    Some(AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut watches: Vec<Watch> = Vec::new();
        loop {
            tick.tick().await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            forget_unheard(&inner, expiry, proxy_expiry);
            if let Some(stall) = stall {
                watches.resize_with(inner.radios.list.len(), Watch::default);
                for (i, watch) in watches.iter_mut().enumerate() {
                    watch.check(&inner, i, stall).await;
                }
            }
        }
    })))
}

/// What the watchdog remembers of one radio between looks.
#[derive(Default)]
struct Watch {
    /// When it last began to act ([`Inner::now_ms`]); deafness is counted from
    /// then too.
    acted_ms: u64,
    /// The scan restart did not help: the next step is a power cycle.
    escalate: bool,
}

impl Watch {
    async fn check(&mut self, inner: &Inner, index: usize, stall: Duration) {
        let r = &inner.radios.list[index];
        // Held throughout: no scan starts or stops while the radio is recovered.
        let scanners = inner.scanners.lock().await;
        if *scanners == 0 || lock(&inner.known).is_empty() {
            self.escalate = false;
            return;
        }
        let heard = r.last_advert_ms.load(Ordering::Relaxed).saturating_sub(1);
        if heard >= self.acted_ms {
            // It heard something since the last recovery began (a deaf radio hears
            // nothing before that): that one worked.
            self.escalate = false;
        }
        let started = r.scan_started_ms.load(Ordering::Relaxed);
        let now = inner.now_ms();
        if now.saturating_sub(heard.max(started).max(self.acted_ms)) < stall.as_millis() as u64 {
            return;
        }
        let radio = r.name.clone();
        let deaf_s = now.saturating_sub(heard.max(started)) as f64 / 1000.0;
        self.acted_ms = now;
        r.recovering.store(true, Ordering::Release);
        let (action, result) = if self.escalate {
            tracing::warn!(
                radio,
                deaf_s,
                "radio still deaf after a scan restart: power-cycling it"
            );
            let cycled = r.backend.reset().await;
            let restarted = match cycled {
                Ok(()) => r.backend.start_scan(&ScanFilter::default()).await,
                Err(e) => Err(e),
            };
            ("power_cycle", restarted)
        } else {
            tracing::warn!(radio, deaf_s, "radio deaf while scanning: restarting its scan");
            // Stopping may fail on a wedged adapter; the start is what matters.
            let _ = r.backend.stop_scan().await;
            ("restart_scan", r.backend.start_scan(&ScanFilter::default()).await)
        };
        r.scanning.store(result.is_ok(), Ordering::Relaxed);
        r.recovering.store(false, Ordering::Release);
        match &result {
            Ok(()) => tracing::info!(radio, action, "radio recovery done"),
            Err(e) => tracing::error!(radio, action, error = %e, "radio recovery failed"),
        }
        inner.metrics.radio_recovery(&radio, action, result.is_ok());
        self.escalate = true;
        drop(scanners);
    }
}

/// Forgets devices not heard for their expiry (`None`: never), except those with a
/// link. A device's expiry is that of the kind of radio that hears it best.
fn forget_unheard(inner: &Inner, expiry: Option<Duration>, proxy_expiry: Option<Duration>) {
    let now = SystemTime::now();
    let cutoff = |e: Option<Duration>| e.map(|e| now.checked_sub(e).unwrap_or(SystemTime::UNIX_EPOCH));
    let (cutoff, proxy_cutoff) = (cutoff(expiry), cutoff(proxy_expiry));
    if cutoff.is_none() && proxy_cutoff.is_none() {
        return;
    }
    let remote: Vec<&str> = inner
        .radios
        .list
        .iter()
        .filter(|r| r.backend.kind() == "esphome")
        .map(|r| r.name.as_str())
        .collect();
    let linked = lock(&inner.devices);
    lock(&inner.known).retain(|id, d| {
        let through_proxy = d.radio.as_deref().is_some_and(|r| remote.contains(&r));
        let cutoff = if through_proxy { proxy_cutoff } else { cutoff };
        let keep = cutoff.is_none_or(|c| d.last_seen >= c) || linked.contains_key(id);
        if !keep {
            inner.radios.forget(id);
        }
        keep
    });
}
