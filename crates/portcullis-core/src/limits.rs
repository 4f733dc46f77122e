//! Rate limits: a generic cell rate algorithm (GCRA) per key — a client address, a subject — in
//! memory on each node. Each key holds one instant (its theoretical arrival time), so a limiter
//! costs a hash lookup under a short lock per request, and its memory is bounded: past
//! [`MAX_KEYS`] keys, the keys that are back to a full burst are forgotten (they would be allowed
//! anyway), and if every key is still busy the shard starts over.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many keys one limiter remembers at most.
pub const MAX_KEYS: usize = 100_000;
const SHARDS: usize = 16;

/// A rate: `per_second` requests a second on average, bursts of up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// The sustained rate.
    pub per_second: u32,
    /// The most requests at once after a quiet period.
    pub burst: u32,
}

impl Rate {
    /// Parses `"<per_second>"` (burst twice the rate) or `"<per_second>/<burst>"`; `"off"` is no
    /// limit (`None`).
    pub fn parse(text: &str) -> Result<Option<Self>, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let (rate, burst) = match text.split_once('/') {
            Some((r, b)) => (r.trim(), Some(b.trim())),
            None => (text, None),
        };
        let per_second: u32 = rate
            .parse()
            .map_err(|_| format!("{text:?} is not a rate: write <per second>[/<burst>] or off"))?;
        let burst: u32 = match burst {
            Some(b) => b
                .parse()
                .map_err(|_| format!("{text:?}: the burst must be a whole number"))?,
            None => per_second.saturating_mul(2),
        };
        if per_second == 0 || burst == 0 {
            return Err(format!(
                "{text:?}: a rate and its burst are at least 1 (write off for no limit)"
            ));
        }
        Ok(Some(Self { per_second, burst }))
    }
}

/// A rate limit per key.
pub struct RateLimiter<K> {
    interval: Duration,
    tolerance: Duration,
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<K, Instant>>]>,
}

impl<K> std::fmt::Debug for RateLimiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("interval", &self.interval)
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// A limiter at `rate`.
    pub fn new(rate: Rate) -> Self {
        let interval = Duration::from_secs(1) / rate.per_second.max(1);
        Self {
            interval,
            tolerance: interval * rate.burst.max(1).saturating_sub(1),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Counts a request of `key` at `now`: `Ok` when it is within the rate, else how long to wait
    /// before the next one would be. A key seen before is updated in place: only a new key is
    /// copied into the map.
    pub fn check<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut map = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tat) = map.get_mut(key) {
            let from = (*tat).max(now);
            let ahead = from - now;
            if ahead > self.tolerance {
                return Err(ahead - self.tolerance);
            }
            *tat = from + self.interval;
            return Ok(());
        }
        // A new key starts with its whole burst.
        if map.len() >= MAX_KEYS / SHARDS {
            map.retain(|_, t| *t > now);
            if map.len() >= MAX_KEYS / SHARDS {
                map.clear();
            }
        }
        map.insert(key.to_owned(), now + self.interval);
        Ok(())
    }
}

/// Seconds to put in `Retry-After` for a wait: whole seconds, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!(
            Rate::parse("10").unwrap(),
            Some(Rate {
                per_second: 10,
                burst: 20
            })
        );
        assert_eq!(
            Rate::parse(" 5/7 ").unwrap(),
            Some(Rate {
                per_second: 5,
                burst: 7
            })
        );
        assert_eq!(Rate::parse("off").unwrap(), None);
        assert!(Rate::parse("0").is_err());
        assert!(Rate::parse("x").is_err());
        assert!(Rate::parse("3/0").is_err());
    }

    #[test]
    fn allows_the_burst_then_the_rate() {
        let l: RateLimiter<String> = RateLimiter::new(Rate {
            per_second: 10,
            burst: 3,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check("a", t0).is_ok());
        }
        let wait = l.check("a", t0).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100));
        // Another key has its own budget.
        assert!(l.check("b", t0).is_ok());
        // After one interval, one more request.
        let t1 = t0 + Duration::from_millis(100);
        assert!(l.check("a", t1).is_ok());
        assert!(l.check("a", t1).is_err());
        // After a quiet second, a full burst again.
        let t2 = t1 + Duration::from_secs(1);
        for _ in 0..3 {
            assert!(l.check("a", t2).is_ok());
        }
        assert!(l.check("a", t2).is_err());
    }

    #[test]
    fn memory_stays_bounded() {
        let l = RateLimiter::new(Rate {
            per_second: 1,
            burst: 1,
        });
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS * 2) {
            let _ = l.check(&i, t0);
        }
        let kept: usize = l.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(kept <= MAX_KEYS, "{kept}");
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
    }
}
