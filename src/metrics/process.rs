//! The process and its async runtime: memory, CPU, workers, tasks, how busy the
//! workers were and how late a timer wakes. Sampled when scraped (and the lag by
//! a probe task), with the rates over the time since the previous scrape.

use std::time::{Duration, Instant};

use super::Metrics;
use crate::sync::lock;

/// What changes between scrapes, for rates.
pub(super) struct Sampler {
    at: Instant,
    cpu_ticks: Option<u64>,
    bytes: u64,
    busy: Duration,
}

impl Sampler {
    pub(super) fn new() -> Sampler {
        Sampler {
            at: Instant::now(),
            cpu_ticks: process_cpu_ticks(),
            bytes: 0,
            busy: Duration::ZERO,
        }
    }
}

impl Metrics {
    pub(super) fn register_process(&mut self) {
        let r = &mut self.registry;
        r.register(
            "ble_memory_usage_bytes",
            "Resident memory of the gattway process",
            self.memory_usage.clone(),
        );
        r.register(
            "ble_cpu_usage_percent",
            "CPU used by the gattway process since the previous scrape (100 = one core)",
            self.cpu_usage.clone(),
        );
        r.register(
            "gattway_runtime_workers",
            "Async runtime worker threads",
            self.runtime_workers.clone(),
        );
        r.register(
            "gattway_runtime_alive_tasks",
            "Async tasks alive",
            self.runtime_alive_tasks.clone(),
        );
        r.register(
            "gattway_runtime_worker_busy_ratio",
            "Share of worker time spent busy since the previous scrape (0..1)",
            self.runtime_busy_ratio.clone(),
        );
        r.register(
            "gattway_runtime_scheduling_delay_seconds",
            "How late a timer task last woke (the event-loop lag)",
            self.runtime_scheduling_delay.clone(),
        );
    }

    /// Samples the process and the runtime, and the transfer rate from
    /// `bytes_transferred` (the running total of bytes written and notified).
    pub(super) fn sample(&self, bytes_transferred: u64) {
        if let Some(rss) = resident_memory_bytes() {
            self.memory_usage.set(rss as i64);
        }
        let busy = self.sample_runtime();
        let mut s = lock(&self.sampler);
        let now = Instant::now();
        let secs = now.duration_since(s.at).as_secs_f64();
        if secs > 0.0 {
            self.transfer_rate
                .set(bytes_transferred.saturating_sub(s.bytes) as f64 / secs);
            let ticks = process_cpu_ticks();
            if let (Some(before), Some(after)) = (s.cpu_ticks, ticks) {
                // Linux reports CPU time in clock ticks of 1/100 s.
                let cpu_secs = after.saturating_sub(before) as f64 / 100.0;
                self.cpu_usage.set(100.0 * cpu_secs / secs);
            }
            if let Some(total_busy) = busy {
                let workers = self.runtime_workers.get().max(1) as f64;
                let delta = total_busy.saturating_sub(s.busy).as_secs_f64();
                self.runtime_busy_ratio
                    .set((delta / (secs * workers)).clamp(0.0, 1.0));
                s.busy = total_busy;
            }
            s.cpu_ticks = ticks;
        }
        s.at = now;
        s.bytes = bytes_transferred;
    }

    /// Runtime figures; the workers' total busy time.
    fn sample_runtime(&self) -> Option<Duration> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let m = handle.metrics();
        self.runtime_workers.set(m.num_workers() as i64);
        self.runtime_alive_tasks.set(m.num_alive_tasks() as i64);
        #[cfg(target_has_atomic = "64")]
        {
            Some(
                (0..m.num_workers())
                    .map(|w| m.worker_total_busy_duration(w))
                    .sum(),
            )
        }
        #[cfg(not(target_has_atomic = "64"))]
        {
            None
        }
    }

    /// Measures event-loop lag until dropped: a task that asks to sleep a fixed time
    /// and records how much later than asked it woke.
    pub fn spawn_lag_probe(metrics: std::sync::Arc<Metrics>) -> crate::sync::AbortOnDrop {
        const PERIOD: Duration = Duration::from_millis(250);
        crate::sync::AbortOnDrop(tokio::spawn(async move {
            loop {
                let asked = Instant::now();
                tokio::time::sleep(PERIOD).await;
                let late = asked.elapsed().saturating_sub(PERIOD);
                metrics.runtime_scheduling_delay.set(late.as_secs_f64());
            }
        }))
    }
}

/// Resident memory of this process.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// User + system CPU time of this process, in clock ticks.
fn process_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
