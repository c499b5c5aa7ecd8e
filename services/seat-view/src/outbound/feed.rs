//! The live board feed: committed board changes fanned out to every open stream through a
//! `tokio::sync::broadcast` channel.
//!
//! Publishing never waits for watchers: the channel keeps the last `capacity` changes, and a
//! watcher that falls further behind learns it lagged (and is told to refetch the board)
//! instead of silently missing changes or slowing the consumer down.
//!
//! The feed is local to one process. With the SQLite store the projection publishes into it
//! directly; with Redis every replica's feed is filled from the Redis channel instead
//! (`outbound::redis_feed`), which also marks a [`FeedItem::Gap`] when it lost the channel
//! for a while, so watchers refetch rather than trust a board with holes.

use tokio::sync::broadcast;

use crate::domain::{BoardChange, ports::BoardFeed};

/// What goes through the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    Change(BoardChange),
    /// Changes may have been missed upstream (the channel was lost for a while).
    Gap,
}

#[derive(Debug, Clone)]
pub struct BroadcastFeed {
    sender: broadcast::Sender<FeedItem>,
}

impl BroadcastFeed {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<FeedItem> {
        self.sender.subscribe()
    }

    /// Tells every watcher that changes may have been missed.
    pub fn gap(&self) {
        let _ = self.sender.send(FeedItem::Gap);
    }

    pub fn watchers(&self) -> usize {
        self.sender.receiver_count()
    }
}

impl BoardFeed for BroadcastFeed {
    fn publish(&self, change: BoardChange) {
        // No watcher is not an error: nobody has the board open.
        let _ = self.sender.send(FeedItem::Change(change));
    }
}
