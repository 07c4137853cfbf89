//! A per-client limit on the rate of *rejected* attempts, so that spam
//! cannot grow the ledger without bound.
//!
//! Each client (by peer IP address) has a token bucket: `burst` tokens,
//! refilled at `rate` per second. Recording a rejection takes a token; with
//! none left the attempt is answered `429 rate_limited` and not recorded.
//! Executed, failed and replayed attempts are never limited here: they are
//! bounded by nonces and approvals. Memory is bounded: past
//! [`MAX_TRACKED_CLIENTS`] buckets, full (idle) ones are dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Most client buckets kept before idle ones are swept.
pub const MAX_TRACKED_CLIENTS: usize = 65_536;

/// Token buckets per client.
pub struct RejectLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RejectLimiter {
    /// `rate` rejections per second per client, bursts of up to `burst`.
    /// A `rate` of 0 disables the limit.
    #[must_use]
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the limit is on.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.rate > 0.0
    }

    /// Takes a token for `client` at `now`; `false` means over the limit.
    /// Attempts with no known client address are not limited.
    pub fn try_take(&self, client: Option<IpAddr>, now: Instant) -> bool {
        let (Some(client), true) = (client, self.enabled()) else {
            return true;
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&client) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| refill(*b, now, rate, burst).tokens < burst);
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        *bucket = refill(*bucket, now, self.rate, self.burst);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn refill(b: Bucket, now: Instant, rate: f64, burst: f64) -> Bucket {
    let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
    Bucket {
        tokens: (b.tokens + elapsed * rate).min(burst),
        last: now,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_refill_per_client() {
        let l = RejectLimiter::new(2.0, 3);
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        let t0 = Instant::now();
        assert!((0..3).all(|_| l.try_take(a, t0)));
        assert!(!l.try_take(a, t0));
        assert!(l.try_take(b, t0), "clients have their own buckets");
        assert!(
            l.try_take(a, t0 + Duration::from_millis(500)),
            "one token back after 0.5 s at 2/s"
        );
        assert!(!l.try_take(a, t0 + Duration::from_millis(500)));
    }

    #[test]
    fn zero_rate_disables_and_unknown_clients_are_let_through() {
        let l = RejectLimiter::new(0.0, 1);
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        assert!((0..100).all(|_| l.try_take(a, Instant::now())));
        let l = RejectLimiter::new(1.0, 1);
        assert!((0..100).all(|_| l.try_take(None, Instant::now())));
    }
}
