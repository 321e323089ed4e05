//! Building a [`Cache`]: the builder's settings checked, then assembled into the cache's core.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use foldhash::quality::FixedState;

use super::{Cache, CacheBuilder, Core, DEFAULT_CAPACITY, Meter, NEXT_ID};
use crate::entry::{Entry, Stored};
use crate::flight::Flights;
use crate::invalidate::Scope;
use crate::registry::{self, Report};
use crate::stats::{Counter, Stats};
use crate::store::{Listener, Store, StoreConfig, WeighFn, Weigher, shard_count};
use crate::ttl::{Expiry, NEVER, ttl_nanos};
use crate::{BuildError, Jitter};

/// The default L1 TTL of a cache whose backend broadcasts invalidations.
const L1_TTL_BROADCAST: Duration = Duration::from_secs(5);
/// The default L1 TTL of a cache whose backend cannot broadcast invalidations.
const L1_TTL_NO_BROADCAST: Duration = Duration::from_secs(1);

impl<K, V, N> CacheBuilder<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    /// Builds the cache and lists it in the [`registry`](crate::registry).
    ///
    /// ```
    /// use cache_runtime::{BuildError, Cache};
    /// use std::time::Duration;
    ///
    /// let users = Cache::<u64, String>::builder().ttl(Duration::from_secs(60)).build();
    /// assert!(users.is_ok());
    /// let err = Cache::<u64, String>::builder().capacity(0).build().unwrap_err();
    /// assert_eq!(err, BuildError::ZeroCapacity);
    /// assert_eq!(err.to_string(), "cache capacity must be at least 1");
    /// ```
    ///
    /// # Errors
    /// A zero capacity, a zero or overlong TTL or time-to-idle, a jitter over 100% (or without a
    /// TTL), a shard count of zero or over 65,536.
    pub fn build(self) -> Result<Cache<K, V, N>, BuildError> {
        self.validate()?;
        Ok(self.build_validated())
    }

    /// Builds with these settings, or, if they are invalid, with the defaults (keeping the name
    /// and policy), returning the error too. Never fails.
    pub(crate) fn build_or_default(self) -> (Cache<K, V, N>, Option<BuildError>) {
        let Err(error) = self.validate() else {
            return (self.build_validated(), None);
        };
        // Give up as little as possible: first the jitter, then the TTLs, then the sizing.
        let mut b = self;
        if b.tier.is_none() {
            // Settings of a remote tier mean nothing without one.
            b.lease = None;
            b.l1_ttl = None;
            b.pending_limit = None;
        }
        if b.validate().is_ok() {
            return (b.build_validated(), Some(error));
        }
        b.jitter = None;
        if b.validate().is_err() {
            b.stale = b.stale.filter(|t| ttl_nanos(*t, "stale").is_ok());
            b.early_refresh = None;
        }
        if b.validate().is_err() {
            b.ttl = b.ttl.filter(|t| ttl_nanos(*t, "ttl").is_ok());
            b.tti = b.tti.filter(|t| ttl_nanos(*t, "time_to_idle").is_ok());
            b.negative_ttl = b
                .negative_ttl
                .filter(|t| ttl_nanos(*t, "negative_ttl").is_ok());
        }
        if b.validate_schedule().is_err() {
            b.schedule = None;
            b.refresh_top = None;
        }
        if b.validate().is_err() {
            b.capacity = DEFAULT_CAPACITY;
            b.shards = None;
        }
        (b.build_validated(), Some(error))
    }

    /// The checks of [`build`](Self::build), without building.
    fn validate(&self) -> Result<(), BuildError> {
        if self.capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        if let Some(s) = self.shards
            && (s == 0 || s > 65_536)
        {
            return Err(BuildError::InvalidShards(s));
        }
        if let Some(w) = self.stale {
            ttl_nanos(w, "stale")?;
        }
        if let Some(t) = self.tti {
            ttl_nanos(t, "time_to_idle")?;
        }
        if let Some(beta) = self.early_refresh {
            if !(beta.is_finite() && beta > 0.0 && beta <= 1e6) {
                return Err(BuildError::InvalidEarlyRefresh(beta.to_string()));
            }
            if self.ttl.is_none() && self.ttl_fn.is_none() {
                return Err(BuildError::InvalidEarlyRefresh(
                    "early refresh needs a `ttl` (or `ttl_fn`): it acts before expiry".into(),
                ));
            }
        }
        if self.tier.is_none() {
            for (setting, set) in [
                ("distributed_lock", self.lease.is_some()),
                ("l1_ttl", self.l1_ttl.is_some()),
                ("max_pending_writes", self.pending_limit.is_some()),
            ] {
                if set {
                    return Err(BuildError::NoRemoteTier { setting });
                }
            }
        }
        if self.pending_limit == Some(0) {
            return Err(BuildError::InvalidPendingLimit);
        }
        self.validate_schedule()?;
        Expiry::new(self.jitter_base(), self.negative_ttl, self.jitter, 0).map(|_| ())
    }

    /// The checks of `refresh_every` and `refresh_top`.
    fn validate_schedule(&self) -> Result<(), BuildError> {
        let invalid = |why: String| Err(BuildError::InvalidRefreshEvery(why));
        match (&self.schedule, self.refresh_top) {
            (None, Some(_)) => invalid("`refresh_top` needs `refresh_every`".into()),
            (Some(_), Some(0)) => invalid("`refresh_top` must be at least 1".into()),
            (Some((every, _)), _) if every.is_zero() => {
                invalid("`refresh_every` must be longer than zero".into())
            }
            (Some((every, _)), _) if self.ttl.is_some_and(|ttl| *every >= ttl) => invalid(format!(
                "`refresh_every` ({every:?}) must be shorter than the `ttl` ({:?}): entries \
                 would expire before their refresh",
                self.ttl.unwrap_or_default()
            )),
            _ => Ok(()),
        }
    }

    /// The longest remote TTL an entry of this cache can be written with (`None`: unbounded, or
    /// set per value by a `ttl_fn`): how long an invalidation that could not be sent matters.
    fn longest_remote_ttl(&self) -> Option<Duration> {
        if self.ttl_fn.is_some() {
            return None;
        }
        let longest = self.ttl?.max(self.negative_ttl.unwrap_or_default());
        Some(match self.jitter {
            None => longest,
            Some(Jitter::Fraction(f)) => longest.mul_f64(1.0 + f.clamp(0.0, 1.0)),
            Some(Jitter::Spread(d)) => longest.saturating_add(d),
        })
    }

    /// The TTL the jitter is relative to: with only a `ttl_fn`, a jitter fraction applies to
    /// each value's own TTL (as a fraction of a nominal one).
    fn jitter_base(&self) -> Option<Duration> {
        if self.ttl.is_none() && self.ttl_fn.is_some() && self.jitter.is_some() {
            Some(Duration::from_secs(3600))
        } else {
            self.ttl
        }
    }

    /// Builds settings that [`validate`](Self::validate) accepted; never fails.
    fn build_validated(mut self) -> Cache<K, V, N> {
        self.capacity = self.capacity.clamp(1, u64::MAX >> 2);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let seed = self
            .seed
            .unwrap_or_else(|| std::hash::RandomState::new().hash_one(id));
        let expiry = Expiry::new(self.jitter_base(), self.negative_ttl, self.jitter, seed)
            .unwrap_or_else(|_| Expiry::none(seed));
        self.assemble(id, seed, expiry)
    }

    /// The construction proper, from validated settings.
    fn assemble(self, id: u64, seed: u64, expiry: Expiry) -> Cache<K, V, N> {
        let horizon = self.longest_remote_ttl();
        if self.ttl.is_some()
            || self.negative_ttl.is_some()
            || self.ttl_fn.is_some()
            || self.tti.is_some()
        {
            crate::clock::start_ticker();
        }
        let meter = Arc::new(Meter {
            stats: Stats::new(),
            clock: self.clock,
        });
        let estimated_items = self.estimated_items.unwrap_or_else(|| {
            let items = if self.weigher.is_some() {
                self.capacity / 64
            } else {
                self.capacity
            };
            usize::try_from(items.min(1_000_000))
                .unwrap_or(1_000_000)
                .max(1)
        });
        let weigher = Weigher(self.weigher.map(|f| {
            Arc::new(move |k: &K, s: &Stored<V, N>| match &s.entry {
                Entry::Value(v) => f(k, v),
                Entry::Negative(_) => 1,
            }) as WeighFn<K, Stored<V, N>>
        }));
        let listener_meter = Arc::clone(&meter);
        #[cfg(feature = "tracing")]
        let listener_name: Arc<str> =
            Arc::from(self.name.clone().unwrap_or_else(|| format!("cache-{id}")));
        let listener = Listener(Arc::new(move |s: &Stored<V, N>| {
            let expired = (s.expires_at() != NEVER && listener_meter.clock.is_past(s.expires_at()))
                || s.idle_expired();
            #[cfg(feature = "tracing")]
            tracing::trace!(cache = %listener_name, expired, "cache eviction");
            listener_meter.stats.incr(if expired {
                Counter::Expiration
            } else {
                Counter::Eviction
            });
        }));
        let hasher = FixedState::with_seed(seed);
        let stale = self
            .stale
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2));
        let removal = self
            .on_removal
            .map(|r| super::removal::notify(r, meter.clock.clone(), stale));
        let store = Store::new(StoreConfig {
            policy: self.policy,
            capacity: self.capacity,
            estimated_items,
            shards: self.shards,
            hasher: hasher.clone(),
            weigher,
            listener,
            removal,
            exact: false,
        });
        let name = self.name.unwrap_or_else(|| format!("cache-{id}"));
        let tier = self.tier.map(|make| make(&name, self.version));
        if let Some(tier) = &tier {
            tier.pending().configure(
                self.pending_limit
                    .unwrap_or(crate::tier::DEFAULT_PENDING_LIMIT),
                horizon,
            );
        }
        let l1_ttl = tier.as_ref().map(|t| {
            // Without a broadcast of invalidations, the L1 TTL is how long another process's
            // write goes unseen here: short by default.
            let default = if t.backend().broadcasts() {
                L1_TTL_BROADCAST
            } else {
                L1_TTL_NO_BROADCAST
            };
            let d = self.l1_ttl.unwrap_or(default);
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        let scope = Arc::new(match &tier {
            Some(t) => {
                crate::invalidate::remote::listen(t.shared_backend());
                Scope::new(
                    t.namespace().to_owned(),
                    Some((t.prefix(), Arc::clone(t.shared_backend()))),
                )
            }
            None => Scope::local(&format!("{name}#{id}:")),
        });
        crate::invalidate::register(&scope);
        let core = Arc::new(Core {
            scope,
            depends: self.depends,
            store,
            flights: Flights::new(shard_count(None, 4096)),
            expiry,
            meter,
            hasher,
            name,
            policy: self.policy,
            next_expiry: AtomicU64::new(NEVER),
            inserts_since_sweep: AtomicU64::new(0),
            sweep_interval: (estimated_items as u64 / 8).max(16),
            lease: tier.as_ref().and(self.lease),
            tier,
            l1_ttl,
            stale,
            beta: self.early_refresh.unwrap_or(0.0),
            ttl_fn: self.ttl_fn,
            tti: self.tti.and_then(|d| ttl_nanos(d, "time_to_idle").ok()),
            counts_reads: self.schedule.is_some(),
        });
        if let Some((_, start)) = self.schedule {
            start(
                &core,
                self.refresh_top
                    .unwrap_or(super::schedule::DEFAULT_REFRESH_TOP),
            );
        }
        if let Some(tier) = &core.tier {
            let l1: Arc<dyn crate::tier::LocalL1<K>> = core.clone();
            tier.attach(Arc::downgrade(&l1));
        }
        let report: Arc<dyn Report> = core.clone();
        let any: Arc<dyn std::any::Any + Send + Sync> = core.clone();
        registry::register(Arc::downgrade(&report), Arc::downgrade(&any));
        Cache { core }
    }
}
