//! The use cases of the read side: project a consumed event into the views, read the board,
//! read a customer's reservations.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::{
    Board, BoardChange, ConsumedChange, CustomerId, Generation, PageLimit, TimelineEntry,
    ports::{Applied, BoardFeed, StoreError, ViewStore},
};

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug)]
pub struct ViewService<S> {
    store: S,
    feed: Arc<dyn BoardFeed>,
}

impl<S: Clone> Clone for ViewService<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            feed: self.feed.clone(),
        }
    }
}

impl<S: ViewStore> ViewService<S> {
    pub fn new(store: S, feed: Arc<dyn BoardFeed>) -> Self {
        Self { store, feed }
    }

    /// Applies one consumed event. Live watchers hear of a board change only once it is
    /// committed (never of one that might still roll back), and never twice for a redelivery.
    pub async fn project(&self, consumed: &ConsumedChange) -> Result<Applied, ProjectError> {
        let applied = self.store.apply(consumed).await?;
        if applied == Applied::Applied
            && let Some(change) = BoardChange::of(consumed)
        {
            self.feed.publish(change);
        }
        Ok(applied)
    }

    pub async fn board(&self, at: DateTime<Utc>) -> Result<Board, BoardError> {
        let facts = self.store.board_at(at).await?;
        Ok(Board::compose(at, facts))
    }

    pub async fn reservations_of(
        &self,
        customer: &CustomerId,
        limit: PageLimit,
    ) -> Result<Vec<TimelineEntry>, TimelineError> {
        Ok(self.store.reservations_of(customer, limit).await?)
    }

    /// The generation to consume with: the stored one, or — when `rebuild` — a fresh one with
    /// every view wiped, to be refilled by replaying the topics from the start.
    pub async fn generation(&self, rebuild: bool) -> Result<Generation, RebuildError> {
        if rebuild {
            let generation = self.store.start_over().await?;
            tracing::warn!(
                generation = generation.get(),
                group = %generation.consumer_group(),
                "views wiped for a rebuild; replaying every topic from the earliest offsets"
            );
            Ok(generation)
        } else {
            Ok(self.store.generation().await?)
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
}
