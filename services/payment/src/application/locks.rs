//! A keyed async mutex: one holder per key at a time, any number of keys at once.
//!
//! Why: two concurrent requests for one reservation (a retry racing the original) must not
//! both call the card provider. The provider is idempotent by key as well, but serialising in
//! the process means the second request simply waits and then reads the recorded answer.
//! Entries are removed when the last holder or waiter leaves, so the map only ever holds keys
//! that are in use. A waiter that is dropped before its turn (its caller was cancelled) leaves
//! too: each entry counts its users, and whoever leaves last removes it, holder or not.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex},
};

use tokio::sync::OwnedMutexGuard;

#[derive(Debug)]
pub struct KeyedLocks<K> {
    map: Mutex<HashMap<K, Entry>>,
}

#[derive(Debug)]
struct Entry {
    mutex: Arc<tokio::sync::Mutex<()>>,
    /// Holders and waiters: the entry goes when this drops to zero.
    users: usize,
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

/// One user of a key, from the moment it asks until it lets go (or is dropped waiting).
#[derive(Debug)]
struct Use<K: Eq + Hash> {
    locks: Arc<KeyedLocks<K>>,
    key: Option<K>,
}

impl<K: Eq + Hash> Drop for Use<K> {
    fn drop(&mut self) {
        let mut map = self.locks.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = self.key.take()
            && let Some(entry) = map.get_mut(&key)
        {
            entry.users -= 1;
            if entry.users == 0 {
                map.remove(&key);
            }
        }
    }
}

/// Holds one key's lock; released on drop.
#[derive(Debug)]
pub struct KeyGuard<K: Eq + Hash> {
    // Declared first, so dropped first: the lock is free before the entry may go.
    _guard: OwnedMutexGuard<()>,
    _use: Use<K>,
}

impl<K: Eq + Hash + Clone> KeyedLocks<K> {
    /// Waits until nobody else holds `key`, then holds it. Cancel-safe: dropped while
    /// waiting, it leaves no trace.
    pub async fn lock(self: &Arc<Self>, key: K) -> KeyGuard<K> {
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            let entry = map.entry(key.clone()).or_insert_with(|| Entry {
                mutex: Arc::default(),
                users: 0,
            });
            entry.users += 1;
            entry.mutex.clone()
        };
        let user = Use {
            locks: self.clone(),
            key: Some(key),
        };
        let guard = mutex.lock_owned().await;
        KeyGuard {
            _guard: guard,
            _use: user,
        }
    }

    /// Keys currently held or waited for.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_holder_per_key_and_no_leftovers() {
        let locks = Arc::new(KeyedLocks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (locks, inside, most) = (locks.clone(), inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let _other = locks.lock(1000 + i).await;
                let _guard = locks.lock(1).await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn a_waiter_dropped_before_its_turn_leaves_nothing_behind() {
        let locks = Arc::new(KeyedLocks::default());
        // Dropped while the holder still holds.
        let held = locks.lock(7).await;
        let waiting = studycafe_testkit::cancel::drop_after_polls(locks.lock(7), 1).await;
        assert!(waiting.is_none(), "it had to wait");
        assert_eq!(locks.len(), 1, "only the holder's entry");
        drop(held);
        assert!(locks.is_empty(), "no entry left for the dropped waiter");

        // Dropped after the holder let go, with its turn come but never taken: the case a
        // count of the mutex's references missed.
        let held = locks.lock(7).await;
        let mut waiting = Box::pin(locks.lock(7));
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        drop(held);
        drop(waiting);
        assert!(
            locks.is_empty(),
            "no entry left for the waiter dropped at its turn"
        );

        let again = locks.lock(7).await;
        drop(again);
        assert!(locks.is_empty(), "and the key still locks");
    }
}
