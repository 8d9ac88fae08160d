//! Figures from samples, for the load generator and the brokers alike.

/// Latency percentile (ms) of sorted microsecond samples.
pub fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q) as usize] as f64 / 1000.0
}
