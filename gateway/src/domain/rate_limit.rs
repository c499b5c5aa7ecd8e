//! Per-client rate limiting: a token bucket per client.
//!
//! Each client has a bucket of at most `burst` tokens that refills at `per_sec`; a request
//! takes one token or is refused with the time until the next token. A client is its
//! verified token's subject, or its address when it shows no valid token.
//!
//! Buckets live in a sharded map (a few short-held locks instead of one hot one): a request
//! costs one hash and one lock, O(1). An idle bucket that has refilled is the same as no
//! bucket, so [`RateLimiter::evict_idle`] (run periodically) drops those, which bounds the
//! memory to the clients active in the last refill period. Time is passed in, so the policy
//! is tested without sleeping.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    net::IpAddr,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

/// How fast a client may call: `per_sec` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitPolicy {
    per_sec: f64,
    burst: u32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateLimitPolicyError {
    #[error("the rate must be a positive number of requests per second (at most 1000000)")]
    Rate,
    #[error("the burst must be between 1 and 1000000 requests")]
    Burst,
}

impl RateLimitPolicy {
    pub const MAX: f64 = 1_000_000.0;

    pub fn new(per_sec: f64, burst: u32) -> Result<Self, RateLimitPolicyError> {
        if !per_sec.is_finite() || per_sec <= 0.0 || per_sec > Self::MAX {
            return Err(RateLimitPolicyError::Rate);
        }
        if burst == 0 || f64::from(burst) > Self::MAX {
            return Err(RateLimitPolicyError::Burst);
        }
        Ok(Self { per_sec, burst })
    }

    pub fn per_sec(&self) -> f64 {
        self.per_sec
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// How long an empty bucket takes to fill up again.
    pub fn refill_time(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.burst) / self.per_sec)
    }
}

/// One client's bucket.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    pub fn full(policy: &RateLimitPolicy, now: Instant) -> Self {
        Self {
            tokens: f64::from(policy.burst),
            updated: now,
        }
    }

    /// Takes a token, or says how long until one is there.
    pub fn take(&mut self, policy: &RateLimitPolicy, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * policy.per_sec).min(f64::from(policy.burst));
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / policy.per_sec,
            ))
        }
    }

    fn idle_since(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.updated)
    }
}

/// Who is being limited.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// A verified token's subject: the same person from any address.
    Subject(String),
    /// A client without a valid token, by address.
    Peer(IpAddr),
}

impl ClientKey {
    /// The key of an anonymous client at `ip`. An IPv6 client usually owns a whole /64, so
    /// it is limited as one; an IPv4-mapped address is the IPv4 client it is.
    pub fn peer(ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
            },
            v4 => v4,
        };
        Self::Peer(ip)
    }
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; a token is back after this many whole seconds (at least 1, for `Retry-After`).
    Limited {
        retry_after_secs: u64,
    },
}

const SHARDS: usize = 16;

/// The buckets of every client.
#[derive(Debug)]
pub struct RateLimiter {
    policy: RateLimitPolicy,
    shards: Box<[Mutex<HashMap<ClientKey, TokenBucket>>]>,
    hasher: RandomState,
}

impl RateLimiter {
    pub fn new(policy: RateLimitPolicy) -> Self {
        Self {
            policy,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    pub fn policy(&self) -> RateLimitPolicy {
        self.policy
    }

    fn shard(&self, key: &ClientKey) -> &Mutex<HashMap<ClientKey, TokenBucket>> {
        // `hash % SHARDS` < SHARDS, so the cast back is lossless.
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        &self.shards[index]
    }

    /// Charges one request to `key`.
    pub fn check(&self, key: &ClientKey, now: Instant) -> Decision {
        // A panic while holding the lock leaves a map of plain numbers: still usable.
        let mut shard = self
            .shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let taken = match shard.get_mut(key) {
            Some(bucket) => bucket.take(&self.policy, now),
            None => {
                let mut bucket = TokenBucket::full(&self.policy, now);
                let taken = bucket.take(&self.policy, now);
                shard.insert(key.clone(), bucket);
                taken
            }
        };
        match taken {
            Ok(()) => Decision::Allowed,
            Err(wait) => Decision::Limited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            },
        }
    }

    /// Drops the buckets idle long enough to be full again (indistinguishable from new
    /// ones); returns how many.
    pub fn evict_idle(&self, now: Instant) -> usize {
        let refill = self.policy.refill_time();
        self.shards
            .iter()
            .map(|shard| {
                let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
                let before = shard.len();
                shard.retain(|_, bucket| bucket.idle_since(now) < refill);
                before - shard.len()
            })
            .sum()
    }

    /// How many clients have a bucket.
    pub fn clients(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn policy(per_sec: f64, burst: u32) -> RateLimitPolicy {
        RateLimitPolicy::new(per_sec, burst).unwrap()
    }

    #[test]
    fn a_policy_needs_a_positive_rate_and_burst() {
        assert_eq!(
            RateLimitPolicy::new(0.0, 5).unwrap_err(),
            RateLimitPolicyError::Rate
        );
        assert_eq!(
            RateLimitPolicy::new(f64::NAN, 5).unwrap_err(),
            RateLimitPolicyError::Rate
        );
        assert_eq!(
            RateLimitPolicy::new(-1.0, 5).unwrap_err(),
            RateLimitPolicyError::Rate
        );
        assert_eq!(
            RateLimitPolicy::new(1.0, 0).unwrap_err(),
            RateLimitPolicyError::Burst
        );
        assert_eq!(policy(0.5, 4).refill_time(), Duration::from_secs(8));
    }

    #[test]
    fn a_burst_passes_then_the_next_waits_for_a_token() {
        let limiter = RateLimiter::new(policy(2.0, 5));
        let alice = ClientKey::Subject("alice".into());
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(limiter.check(&alice, t0), Decision::Allowed);
        }
        assert_eq!(
            limiter.check(&alice, t0),
            Decision::Limited {
                retry_after_secs: 1
            }
        );
        // Half a second later one token (2 per second) is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(limiter.check(&alice, t1), Decision::Allowed);
        assert!(matches!(
            limiter.check(&alice, t1),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn retry_after_is_whole_seconds_and_at_least_one() {
        let limiter = RateLimiter::new(policy(0.1, 1));
        let key = ClientKey::Subject("slow".into());
        let t0 = Instant::now();
        assert_eq!(limiter.check(&key, t0), Decision::Allowed);
        assert_eq!(
            limiter.check(&key, t0 + Duration::from_millis(500)),
            Decision::Limited {
                retry_after_secs: 10
            }
        );
        let fast = RateLimiter::new(policy(1000.0, 1));
        assert_eq!(fast.check(&key, t0), Decision::Allowed);
        assert_eq!(
            fast.check(&key, t0),
            Decision::Limited {
                retry_after_secs: 1
            }
        );
    }

    #[test]
    fn clients_do_not_share_buckets() {
        let limiter = RateLimiter::new(policy(1.0, 1));
        let t0 = Instant::now();
        let alice = ClientKey::Subject("alice".into());
        let bob = ClientKey::Subject("bob".into());
        let peer = ClientKey::peer(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(limiter.check(&alice, t0), Decision::Allowed);
        assert!(matches!(
            limiter.check(&alice, t0),
            Decision::Limited { .. }
        ));
        assert_eq!(limiter.check(&bob, t0), Decision::Allowed);
        assert_eq!(limiter.check(&peer, t0), Decision::Allowed);
    }

    #[test]
    fn a_bucket_never_holds_more_than_the_burst() {
        let limiter = RateLimiter::new(policy(100.0, 3));
        let key = ClientKey::Subject("idle".into());
        let t0 = Instant::now();
        assert_eq!(limiter.check(&key, t0), Decision::Allowed);
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limiter.check(&key, later), Decision::Allowed);
        }
        assert!(matches!(
            limiter.check(&key, later),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn idle_full_buckets_are_evicted_and_busy_ones_kept() {
        let limiter = RateLimiter::new(policy(1.0, 2));
        let t0 = Instant::now();
        let idle = ClientKey::Subject("idle".into());
        let busy = ClientKey::Subject("busy".into());
        limiter.check(&idle, t0);
        limiter.check(&busy, t0);
        limiter.check(&busy, t0 + Duration::from_secs(2));
        assert_eq!(limiter.clients(), 2);
        assert_eq!(limiter.evict_idle(t0 + Duration::from_secs(3)), 1);
        assert_eq!(limiter.clients(), 1);
        // The evicted client starts again with a full bucket: nothing was lost.
        assert_eq!(
            limiter.check(&idle, t0 + Duration::from_secs(3)),
            Decision::Allowed
        );
    }

    #[test]
    fn ipv6_clients_are_limited_per_64_and_mapped_ipv4_as_ipv4() {
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(
            ClientKey::peer(IpAddr::V6(a)),
            ClientKey::peer(IpAddr::V6(b))
        );
        assert_ne!(
            ClientKey::peer(IpAddr::V6(a)),
            ClientKey::peer(IpAddr::V6(other))
        );
        let mapped = Ipv4Addr::new(10, 0, 0, 7).to_ipv6_mapped();
        assert_eq!(
            ClientKey::peer(IpAddr::V6(mapped)),
            ClientKey::Peer(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)))
        );
    }
}
