//! A keyed async mutex: one holder per key at a time, any number of keys at once.
//!
//! Why: two concurrent requests for one reservation (a retry racing the original) must not
//! both call the card provider. The provider is idempotent by key as well, but serialising in
//! the process means the second request simply waits and then reads the recorded answer.
//! Entries are removed when the last holder or waiter leaves, so the map only ever holds keys
//! that are in use.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex},
};

use tokio::sync::OwnedMutexGuard;

#[derive(Debug)]
pub struct KeyedLocks<K> {
    map: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

/// Holds one key's lock; released on drop.
#[derive(Debug)]
pub struct KeyGuard<K: Eq + Hash> {
    locks: Arc<KeyedLocks<K>>,
    key: Option<K>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl<K: Eq + Hash + Clone> KeyedLocks<K> {
    /// Waits until nobody else holds `key`, then holds it.
    pub async fn lock(self: &Arc<Self>, key: K) -> KeyGuard<K> {
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let guard = mutex.lock_owned().await;
        KeyGuard {
            locks: self.clone(),
            key: Some(key),
            guard: Some(guard),
        }
    }

    /// Keys currently held or waited for.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Eq + Hash> Drop for KeyGuard<K> {
    fn drop(&mut self) {
        // Under the map lock, so no waiter can pick up the entry between the check and the
        // removal: waiters clone the Arc under this same lock.
        let mut map = self.locks.map.lock().unwrap_or_else(|e| e.into_inner());
        drop(self.guard.take());
        if let Some(key) = self.key.take()
            && map.get(&key).is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&key);
        }
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
}
