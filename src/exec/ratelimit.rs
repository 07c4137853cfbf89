//! Limits on the rate at which attempts that ran nothing — rejections and
//! replays — are recorded, so that neither one client nor any number of
//! them can grow the ledger faster than a fixed rate without approvals.
//!
//! Recording such an attempt takes a token from two token buckets: the
//! client's and one shared by every client. Each holds up to `burst`
//! tokens and refills at `rate` per second. With either empty the attempt
//! is answered `429 rate_limited` with `Retry-After` and is not recorded,
//! and neither bucket is charged. A client is its principal when the
//! attempt was authenticated (every address a principal calls from shares
//! its one bucket), else its peer address: an IPv4 address, or the /64
//! prefix of an IPv6 one (one host commonly holds a whole /64); an
//! IPv4-mapped IPv6 address is its IPv4 address. The shared bucket bounds
//! what all clients together can record. Executed and
//! failed attempts are never limited here: they are bounded by nonces and
//! approvals.
//!
//! Memory is bounded: past [`MAX_TRACKED_CLIENTS`] buckets, full (idle)
//! ones are dropped, and a client's bucket is only created when the
//! shared bucket has a token for it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::auth::PrincipalId;

/// Most client buckets kept before idle ones are swept.
pub const MAX_TRACKED_CLIENTS: usize = 65_536;

/// The configured rates; a rate of 0 turns that bucket off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Attempts recorded per client per second.
    pub client_rate: f64,
    /// Burst per client.
    pub client_burst: u32,
    /// Attempts recorded per second from all clients together.
    pub global_rate: f64,
    /// Burst of all clients together.
    pub global_burst: u32,
}

/// Which bucket refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The client's own bucket.
    Client,
    /// The bucket shared by every client.
    Global,
}

/// An attempt over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// The bucket that refused it (the shared one when both did).
    pub scope: Scope,
    /// Whole seconds until every bucket that refused it has a token again
    /// (at least 1): the `Retry-After` value.
    pub retry_after_secs: u64,
}

/// The per-client and shared token buckets.
pub struct RejectLimiter {
    client: Rate,
    global: Rate,
    state: Mutex<State>,
}

struct State {
    clients: HashMap<ClientKey, Bucket>,
    global: Bucket,
}

#[derive(Clone, Copy)]
struct Rate {
    per_sec: f64,
    burst: f64,
}

impl Rate {
    fn new(per_sec: f64, burst: u32) -> Self {
        Self {
            per_sec: if per_sec.is_finite() {
                per_sec.max(0.0)
            } else {
                0.0
            },
            burst: f64::from(burst.max(1)),
        }
    }

    fn enabled(self) -> bool {
        self.per_sec > 0.0
    }

    fn full(self, now: Instant) -> Bucket {
        Bucket {
            tokens: self.burst,
            last: now,
        }
    }

    fn refill(self, b: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        Bucket {
            tokens: (b.tokens + elapsed * self.per_sec).min(self.burst),
            last: now,
        }
    }

    /// Whole seconds until `b` holds a token, at least 1.
    fn wait(self, b: Bucket) -> u64 {
        let secs = ((1.0 - b.tokens) / self.per_sec).ceil();
        // A float-to-int `as` saturates; the rate is positive and finite.
        (secs as u64).max(1)
    }
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn has_token(self) -> bool {
        self.tokens >= 1.0
    }

    fn taken(self) -> Self {
        Self {
            tokens: self.tokens - 1.0,
            ..self
        }
    }
}

/// Who made an attempt, as far as the limits are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// An authenticated principal, from whatever address, and its tenant
    /// (a [`tenant_key`]): both buckets must have a token.
    Principal(PrincipalId, u64),
    /// An unauthenticated peer address.
    Address(IpAddr),
}

impl From<IpAddr> for Client {
    fn from(ip: IpAddr) -> Self {
        Self::Address(ip)
    }
}

/// The key of a tenant's bucket: a hash of its name (two tenants whose
/// names collide share a budget; nothing else follows from it).
#[must_use]
pub fn tenant_key(tenant: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tenant.hash(&mut h);
    h.finish()
}

/// Whom a bucket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    Principal(PrincipalId),
    Tenant(u64),
    V4(Ipv4Addr),
    /// The upper 64 bits of an IPv6 address.
    V6Prefix(u64),
}

/// The buckets an attempt of `client` draws from: a principal's and its
/// tenant's, or an address's.
fn client_keys(client: Client) -> [Option<ClientKey>; 2] {
    match client {
        Client::Principal(id, tenant) => [
            Some(ClientKey::Principal(id)),
            Some(ClientKey::Tenant(tenant)),
        ],
        Client::Address(IpAddr::V4(v4)) => [Some(ClientKey::V4(v4)), None],
        Client::Address(IpAddr::V6(v6)) => [
            Some(v6.to_ipv4_mapped().map_or_else(
                || ClientKey::V6Prefix((u128::from(v6) >> 64) as u64),
                ClientKey::V4,
            )),
            None,
        ],
    }
}

impl RejectLimiter {
    /// Buckets at these rates, full.
    #[must_use]
    pub fn new(limits: RateLimits) -> Self {
        let global = Rate::new(limits.global_rate, limits.global_burst);
        Self {
            client: Rate::new(limits.client_rate, limits.client_burst),
            global,
            state: Mutex::new(State {
                clients: HashMap::new(),
                global: global.full(Instant::now()),
            }),
        }
    }

    /// Takes a token for `client` at `now` from its buckets (a principal's
    /// and its tenant's, or an address's) and from the shared one, or from
    /// none. An attempt with no known client (no principal, no address) is
    /// held to the shared bucket alone.
    pub fn try_take(&self, client: Option<Client>, now: Instant) -> Result<(), Limited> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let global = self
            .global
            .enabled()
            .then(|| self.global.refill(state.global, now));
        let keys = client
            .filter(|_| self.client.enabled())
            .map_or([None, None], client_keys);
        let own = keys.map(|key| {
            key.map(|k| {
                let bucket = state
                    .clients
                    .get(&k)
                    .map_or_else(|| self.client.full(now), |b| self.client.refill(*b, now));
                (k, bucket)
            })
        });
        let refused_globally = global.filter(|b| !b.has_token());
        let refused_by_own = own
            .iter()
            .flatten()
            .map(|(_, b)| *b)
            .filter(|b| !b.has_token())
            .min_by(|a, b| a.tokens.total_cmp(&b.tokens));
        if refused_globally.is_some() || refused_by_own.is_some() {
            let retry_after_secs = refused_globally
                .map(|b| self.global.wait(b))
                .max(refused_by_own.map(|b| self.client.wait(b)))
                .unwrap_or(1);
            let scope = if refused_globally.is_some() {
                Scope::Global
            } else {
                Scope::Client
            };
            return Err(Limited {
                scope,
                retry_after_secs,
            });
        }
        if let Some(g) = global {
            state.global = g.taken();
        }
        for (k, b) in own.into_iter().flatten() {
            self.sweep_for(&mut state.clients, k, now);
            state.clients.insert(k, b.taken());
        }
        Ok(())
    }

    /// Makes room for `key`'s bucket by dropping full ones, once the table
    /// holds [`MAX_TRACKED_CLIENTS`].
    fn sweep_for(&self, clients: &mut HashMap<ClientKey, Bucket>, key: ClientKey, now: Instant) {
        if clients.len() >= MAX_TRACKED_CLIENTS && !clients.contains_key(&key) {
            let rate = self.client;
            clients.retain(|_, b| rate.refill(*b, now).tokens < rate.burst);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits(client: (f64, u32), global: (f64, u32)) -> RateLimits {
        RateLimits {
            client_rate: client.0,
            client_burst: client.1,
            global_rate: global.0,
            global_burst: global.1,
        }
    }

    fn v4(last: u8) -> Option<Client> {
        Some(Client::Address(IpAddr::from([10, 0, 0, last])))
    }

    /// One principal calling from many addresses has one bucket; two
    /// principals on one address have two, apart from the address's.
    #[test]
    fn a_principal_is_one_client_whatever_its_addresses() {
        let l = RejectLimiter::new(limits((1.0, 3), (0.0, 1)));
        let t0 = Instant::now();
        let (p, q) = (PrincipalId::random(), PrincipalId::random());
        let (a, b) = (tenant_key("a"), tenant_key("b"));
        assert!((0..3).all(|_| l.try_take(Some(Client::Principal(p, a)), t0).is_ok()));
        assert_eq!(
            l.try_take(Some(Client::Principal(p, a)), t0)
                .map_err(|e| e.scope),
            Err(Scope::Client)
        );
        assert!(l.try_take(Some(Client::Principal(q, b)), t0).is_ok());
        assert!(l.try_take(v4(1), t0).is_ok());
    }

    /// A tenant's principals share the tenant's bucket too: a tenant that
    /// mints more tokens gets no more budget.
    #[test]
    fn a_tenants_principals_share_its_bucket() {
        let l = RejectLimiter::new(limits((1.0, 3), (0.0, 1)));
        let t0 = Instant::now();
        let acme = tenant_key("acme");
        let principals: Vec<_> = (0..3).map(|_| PrincipalId::random()).collect();
        for p in &principals {
            assert!(l.try_take(Some(Client::Principal(*p, acme)), t0).is_ok());
        }
        let fresh = PrincipalId::random();
        assert_eq!(
            l.try_take(Some(Client::Principal(fresh, acme)), t0)
                .map_err(|e| e.scope),
            Err(Scope::Client)
        );
        // Another tenant is not held to acme's bucket.
        assert!(l
            .try_take(Some(Client::Principal(fresh, tenant_key("other"))), t0)
            .is_ok());
    }

    #[test]
    fn burst_then_refill_per_client() {
        let l = RejectLimiter::new(limits((2.0, 3), (0.0, 1)));
        let (a, b) = (v4(1), v4(2));
        let t0 = Instant::now();
        assert!((0..3).all(|_| l.try_take(a, t0).is_ok()));
        assert_eq!(
            l.try_take(a, t0),
            Err(Limited {
                scope: Scope::Client,
                retry_after_secs: 1
            })
        );
        assert!(l.try_take(b, t0).is_ok(), "clients have their own buckets");
        assert!(
            l.try_take(a, t0 + Duration::from_millis(500)).is_ok(),
            "one token back after 0.5 s at 2/s"
        );
        assert!(l.try_take(a, t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn zero_rates_disable_and_unknown_clients_meet_only_the_shared_bucket() {
        let l = RejectLimiter::new(limits((0.0, 1), (0.0, 1)));
        assert!((0..100).all(|_| l.try_take(v4(1), Instant::now()).is_ok()));
        let l = RejectLimiter::new(limits((1.0, 1), (0.0, 1)));
        assert!((0..100).all(|_| l.try_take(None, Instant::now()).is_ok()));
        let l = RejectLimiter::new(limits((1.0, 1), (1.0, 5)));
        let t0 = Instant::now();
        assert!((0..5).all(|_| l.try_take(None, t0).is_ok()));
        assert_eq!(
            l.try_take(None, t0).map_err(|e| e.scope),
            Err(Scope::Global)
        );
    }

    /// However many addresses the attempts come from, no more are
    /// recorded than the shared bucket allows: its burst, then its rate.
    #[test]
    fn many_addresses_together_are_held_to_the_shared_bucket() {
        let l = RejectLimiter::new(limits((20.0, 200), (5.0, 50)));
        let t0 = Instant::now();
        let mut taken = 0;
        for round in 0..10u64 {
            let now = t0 + Duration::from_secs(round);
            for last in 0..=255u8 {
                for _ in 0..4 {
                    if l.try_take(v4(last), now).is_ok() {
                        taken += 1;
                    }
                }
            }
        }
        // 50 at once, then 5 per second for the 9 seconds that follow.
        assert_eq!(taken, 50 + 5 * 9);
    }

    #[test]
    fn a_refusal_charges_no_bucket() {
        let l = RejectLimiter::new(limits((1.0, 2), (1.0, 3)));
        let t0 = Instant::now();
        assert!(l.try_take(v4(1), t0).is_ok());
        assert!(l.try_take(v4(1), t0).is_ok());
        // Refused by its own bucket: the shared one keeps its last token.
        assert_eq!(
            l.try_take(v4(1), t0).map_err(|e| e.scope),
            Err(Scope::Client)
        );
        assert!(l.try_take(v4(2), t0).is_ok());
        // Refused by the shared bucket: client 3's own stays full.
        assert_eq!(
            l.try_take(v4(3), t0).map_err(|e| e.scope),
            Err(Scope::Global)
        );
        let later = t0 + Duration::from_secs(2);
        assert!(l.try_take(v4(3), later).is_ok());
        assert!(
            l.try_take(v4(3), later).is_ok(),
            "client 3 had its burst of 2"
        );
    }

    #[test]
    fn retry_after_is_the_wait_for_a_token_of_every_refusing_bucket() {
        let l = RejectLimiter::new(limits((0.25, 1), (0.5, 1)));
        let t0 = Instant::now();
        assert!(l.try_take(v4(1), t0).is_ok());
        // Both empty: the client's bucket needs 4 s, the shared one 2 s.
        assert_eq!(
            l.try_take(v4(1), t0),
            Err(Limited {
                scope: Scope::Global,
                retry_after_secs: 4
            })
        );
        let t1 = t0 + Duration::from_millis(2500);
        assert_eq!(
            l.try_take(v4(1), t1),
            Err(Limited {
                scope: Scope::Client,
                retry_after_secs: 2
            }),
            "1.5 s left, rounded up"
        );
        assert!(l.try_take(v4(1), t0 + Duration::from_secs(4)).is_ok());
    }

    #[test]
    fn an_ipv6_client_is_its_64_prefix_and_a_mapped_ipv4_is_its_ipv4() {
        let l = RejectLimiter::new(limits((1.0, 1), (0.0, 1)));
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.try_take(Some(a.into()), t0).is_ok());
        assert!(l.try_take(Some(same_64.into()), t0).is_err());
        assert!(l.try_take(Some(other_64.into()), t0).is_ok());
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert!(l.try_take(v4(7), t0).is_ok());
        assert!(l.try_take(Some(mapped.into()), t0).is_err());
    }

    #[test]
    fn non_finite_or_negative_rates_turn_a_bucket_off() {
        for rate in [f64::NAN, f64::INFINITY, -1.0] {
            let l = RejectLimiter::new(limits((rate, 1), (rate, 1)));
            assert!((0..10).all(|_| l.try_take(v4(1), Instant::now()).is_ok()));
        }
    }
}
