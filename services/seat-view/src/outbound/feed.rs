//! The live board feed: committed board changes fanned out to every open stream through a
//! `tokio::sync::broadcast` channel.
//!
//! Publishing never waits for watchers: the channel keeps the last `capacity` changes, and a
//! watcher that falls further behind learns it lagged (and is told to refetch the board)
//! instead of silently missing changes or slowing the consumer down.

use tokio::sync::broadcast;

use crate::domain::{BoardChange, ports::BoardFeed};

#[derive(Debug, Clone)]
pub struct BroadcastFeed {
    sender: broadcast::Sender<BoardChange>,
}

impl BroadcastFeed {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<BoardChange> {
        self.sender.subscribe()
    }

    pub fn watchers(&self) -> usize {
        self.sender.receiver_count()
    }
}

impl BoardFeed for BroadcastFeed {
    fn publish(&self, change: BoardChange) {
        // No watcher is not an error: nobody has the board open.
        let _ = self.sender.send(change);
    }
}
