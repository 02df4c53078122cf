//! A value that public requests read often and that costs a lot to build (every worker merged
//! and sorted, every account's balances summed): built by one task at a time and reused for
//! a few seconds, so the cost of a request no longer grows with the pool's data and a crowd of
//! requests costs one build, not one each.
//!
//! A copy younger than `fresh` is served as it is. An older one, up to `stale`, is still
//! served while one background task builds the next (no request waits for a build under
//! steady traffic). Past `stale`, or before the first build, requests wait for the one build
//! in flight and share its result. A failed build keeps the last good copy (within `stale`).
//! Both ages stretch to a multiple of what the last build cost, so building never takes more
//! than a fifth of a core however large the pool grows.
//!
//! With both ages zero it only coalesces: a request waits for the build in flight when that
//! build began after the request arrived, or starts the next; never older than the request.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A build may cost at most this fraction of the time its copy is served fresh.
const COST_SHARE: u32 = 5;

pub struct Refreshed<T> {
    current: Mutex<Option<(Instant, Arc<T>)>>,
    /// What the last build took.
    cost: Mutex<Duration>,
    building: Arc<tokio::sync::Mutex<()>>,
    fresh: Duration,
    stale: Duration,
    /// Counts builds, when set.
    builds: Option<prometheus::IntCounter>,
}

impl<T: Send + Sync + 'static> Refreshed<T> {
    pub fn new(fresh: Duration, stale: Duration) -> Self {
        Refreshed {
            current: Mutex::new(None),
            cost: Mutex::new(Duration::ZERO),
            building: Arc::new(tokio::sync::Mutex::new(())),
            fresh,
            stale: stale.max(fresh),
            builds: None,
        }
    }

    /// Count each build on `counter`.
    pub fn counting(mut self, counter: prometheus::IntCounter) -> Self {
        self.builds = Some(counter);
        self
    }

    /// The current copy, building one with `build` when none is young enough.
    pub async fn get<F, Fut>(self: &Arc<Self>, build: F) -> anyhow::Result<Arc<T>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
    {
        let asked = Instant::now();
        let (fresh, stale) = self.ages();
        if let Some((built, value)) = self.current.lock().clone() {
            let age = asked.saturating_duration_since(built);
            if age < fresh {
                return Ok(value);
            }
            if age < stale {
                if let Ok(guard) = self.building.clone().try_lock_owned() {
                    let me = self.clone();
                    tokio::spawn(async move {
                        let _building = guard;
                        let started = Instant::now();
                        match build().await {
                            Ok(v) => {
                                me.store(started, v);
                            }
                            Err(e) => tracing::warn!(error = %e, "refreshing a public view failed"),
                        }
                    });
                }
                return Ok(value);
            }
        }
        let _building = self.building.lock().await;
        // A build that started after this request arrived answers it too.
        if let Some((built, value)) = self.current.lock().clone() {
            if built >= asked || asked.saturating_duration_since(built) < fresh {
                return Ok(value);
            }
        }
        let started = Instant::now();
        let value = build().await?;
        Ok(self.store(started, value))
    }

    /// The copy held now, however old.
    pub fn current(&self) -> Option<Arc<T>> {
        self.current.lock().as_ref().map(|(_, v)| v.clone())
    }

    /// How long a copy is fresh, and how long it may be served stale.
    fn ages(&self) -> (Duration, Duration) {
        if self.stale.is_zero() {
            return (Duration::ZERO, Duration::ZERO);
        }
        let fresh = self.fresh.max(*self.cost.lock() * COST_SHARE);
        (fresh, self.stale.max(fresh * 2))
    }

    fn store(&self, started: Instant, value: T) -> Arc<T> {
        *self.cost.lock() = started.elapsed();
        if let Some(c) = &self.builds {
            c.inc();
        }
        let value = Arc::new(value);
        let mut current = self.current.lock();
        if current.as_ref().is_none_or(|(built, _)| *built <= started) {
            *current = Some((started, value.clone()));
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn counting(n: &Arc<AtomicU32>) -> impl Future<Output = anyhow::Result<u32>> + Send {
        let n = n.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(n.fetch_add(1, Ordering::SeqCst) + 1)
        }
    }

    #[tokio::test]
    async fn a_crowd_of_requests_costs_one_build() {
        let cache = Arc::new(Refreshed::new(
            Duration::from_secs(60),
            Duration::from_secs(60),
        ));
        let builds = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, builds) = (cache.clone(), builds.clone());
            tasks.push(tokio::spawn(async move {
                *cache.get(move || counting(&builds)).await.unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 1);
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stale_copy_is_served_while_the_next_is_built_and_a_dead_one_is_not() {
        let cache = Arc::new(Refreshed::new(
            Duration::from_millis(300),
            Duration::from_millis(1500),
        ));
        let builds = Arc::new(AtomicU32::new(0));
        let b = builds.clone();
        assert_eq!(*cache.get(move || counting(&b)).await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        // Stale: answered at once with the old copy; the next is built behind it.
        let b = builds.clone();
        assert_eq!(*cache.get(move || counting(&b)).await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let b = builds.clone();
        assert_eq!(*cache.get(move || counting(&b)).await.unwrap(), 2);
        // Past `stale`: the request waits for a new build and gets it.
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let b = builds.clone();
        let v = *cache.get(move || counting(&b)).await.unwrap();
        assert_eq!(v, 3);
        assert_eq!(builds.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn with_no_age_each_request_gets_a_build_no_older_than_itself() {
        let cache = Arc::new(Refreshed::new(Duration::ZERO, Duration::ZERO));
        let builds = Arc::new(AtomicU32::new(0));
        let b = builds.clone();
        assert_eq!(*cache.get(move || counting(&b)).await.unwrap(), 1);
        let b = builds.clone();
        assert_eq!(*cache.get(move || counting(&b)).await.unwrap(), 2);
        // A crowd arriving together shares at most two builds: the one in flight when the
        // first came, and one begun after all of them.
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, builds) = (cache.clone(), builds.clone());
            tasks.push(tokio::spawn(async move {
                *cache.get(move || counting(&builds)).await.unwrap()
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap() >= 3);
        }
        assert!(builds.load(Ordering::SeqCst) <= 4);
    }

    #[tokio::test]
    async fn a_failed_build_is_an_error_only_when_there_is_nothing_to_serve() {
        let cache: Arc<Refreshed<u32>> = Arc::new(Refreshed::new(
            Duration::from_millis(10),
            Duration::from_secs(60),
        ));
        assert!(cache
            .get(|| async { anyhow::bail!("database down") })
            .await
            .is_err());
        assert_eq!(*cache.get(|| async { Ok(7) }).await.unwrap(), 7);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let v = cache.get(|| async { anyhow::bail!("database down") }).await;
        assert_eq!(*v.unwrap(), 7, "the last good copy");
    }
}
