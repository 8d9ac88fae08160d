//! Token buckets for rate limits: `rate` tokens a second, up to `burst` saved up.
//! One per connection and one per principal, so neither one noisy socket nor one
//! credential spread over many sockets can starve the radio.

use std::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// Whether the bucket has refilled to its burst (its caller has been idle).
    pub fn is_full(&self) -> bool {
        let refilled = self.tokens + self.at.elapsed().as_secs_f64() * self.rate;
        refilled >= self.burst
    }

    /// Takes one token; false when the bucket is empty.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let mut b = TokenBucket::new(0.0001, 3.0);
        assert!(b.take() && b.take() && b.take());
        assert!(!b.take(), "burst spent, refill is negligible");
        let mut fast = TokenBucket::new(1e9, 1.0);
        assert!(fast.take());
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert!(fast.take(), "refilled");
    }
}
