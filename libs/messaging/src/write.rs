//! Write transactions that no dropped future can leave open, and a store's readiness to write.
//!
//! Why this exists: sqlx 0.8.6 keeps a connection's transaction depth on the client, and its
//! `begin` is not cancel-safe. A `Transaction` rolls back when dropped (on every engine: queued,
//! and flushed before the connection serves anyone else), but it only exists once `begin` has
//! returned, and until then the begin's future owns the pooled connection:
//! - SQLite, `begin_with("BEGIN IMMEDIATE")`: once the worker thread has run the BEGIN (depth 1)
//!   the future awaits once more, to check the statement opened a transaction. Dropped there,
//!   the connection goes back to the pool inside a transaction nothing will ever end: every
//!   later `begin_with` fails ("attempted to call begin_with at non-zero transaction depth"), a
//!   plain `begin` becomes a savepoint whose commit commits nothing, and the file's write lock
//!   is held for good (issue 17: seat wedged by clients that hung up).
//! - PostgreSQL and MySQL: the depth is raised only after the BEGIN round trip; dropped during
//!   it, the rollback guard sees depth 0 and queues nothing, and the pool hands out a session
//!   that is still inside a transaction (sqlx issue 4393): its next user's autocommit writes
//!   stay uncommitted and keep their locks.
//!
//! [`Writer::begin`] runs the begin as a task of its own. The caller's future may be dropped at
//! any await point (a client hanging up, a timeout, a `select!`): the begin still finishes, and
//! its transaction is dropped, so rolled back, in that task. Every write transaction of every
//! service starts here (`clippy.toml` refuses `Pool::begin` elsewhere). On SQLite the writer
//! pool also checks each connection it gets back and closes one still inside a transaction,
//! whatever left it so ([`crate::sqlite`]).
//!
//! A pool that cannot hand out a connection within its acquire timeout is logged once per
//! episode, with what it looks like (all connections busy, or none can be opened), and counted
//! in `db_pool_acquire_timeouts_total{pool}`; [`Writer::probe`] is the readiness check: can a
//! write transaction begin within a short deadline.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sqlx::{Database, Pool, Transaction};

/// How long readiness gives a write transaction to begin: beyond it the store is wedged (or
/// drowning), and the instance should get no traffic.
pub const READY_WITHIN: Duration = Duration::from_secs(2);

/// Begins the write transactions of one pool.
pub struct Writer<DB: Database> {
    pool: Pool<DB>,
    /// `None`: the engine's plain `BEGIN`.
    statement: Option<&'static str>,
    /// Names the pool in logs and metrics (the service, or the service and its role).
    name: &'static str,
    /// Inside an episode of acquire timeouts (logged once, at its start).
    exhausted: Arc<AtomicBool>,
}

impl<DB: Database> Clone for Writer<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            statement: self.statement,
            name: self.name,
            exhausted: self.exhausted.clone(),
        }
    }
}

impl<DB: Database> std::fmt::Debug for Writer<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("name", &self.name)
            .field("statement", &self.statement)
            .finish_non_exhaustive()
    }
}

impl<DB: Database> Writer<DB> {
    /// Write transactions on `pool` with the engine's plain `BEGIN`.
    pub fn new(name: &'static str, pool: Pool<DB>) -> Self {
        Self {
            pool,
            statement: None,
            name,
            exhausted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Write transactions that start with `statement` (SQLite: `BEGIN IMMEDIATE`).
    pub fn beginning_with(mut self, statement: &'static str) -> Self {
        self.statement = Some(statement);
        self
    }

    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// A write transaction. Cancel-safe: dropped at any point, this leaves no transaction open
    /// on any connection (see the module documentation).
    pub async fn begin(&self) -> sqlx::Result<Transaction<'static, DB>> {
        let pool = self.pool.clone();
        let statement = self.statement;
        #[allow(clippy::disallowed_methods)] // the one place that may: in a task of its own
        let begun = tokio::spawn(async move {
            match statement {
                Some(statement) => pool.begin_with(statement).await,
                None => pool.begin().await,
            }
        })
        .await;
        let result = match begun {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down.
            Err(_) => Err(sqlx::Error::PoolClosed),
        };
        self.observe(&result);
        result
    }

    /// Readiness: `Ok` when a write transaction begins (and rolls back) within `within`.
    pub async fn probe(&self, within: Duration) -> Result<(), String> {
        let attempt = async {
            let tx = self.begin().await?;
            tx.rollback().await
        };
        match tokio::time::timeout(within, attempt).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "the {} store cannot begin a write transaction: {e}",
                self.name
            )),
            Err(_) => Err(format!(
                "the {} store cannot begin a write transaction within {} ms",
                self.name,
                within.as_millis()
            )),
        }
    }

    fn observe<T>(&self, result: &sqlx::Result<T>) {
        match result {
            Err(sqlx::Error::PoolTimedOut) => {
                metrics::counter!("db_pool_acquire_timeouts_total", "pool" => self.name)
                    .increment(1);
                if !self.exhausted.swap(true, Ordering::AcqRel) {
                    let options = self.pool.options();
                    let max = options.get_max_connections();
                    let size = self.pool.size();
                    let cause = if size < max {
                        "new connections cannot be opened (is the database reachable?)"
                    } else {
                        "every connection is held by a transaction or query that has not finished"
                    };
                    tracing::error!(
                        pool = self.name,
                        connections = size,
                        idle = self.pool.num_idle(),
                        max_connections = max,
                        acquire_timeout_ms = options.get_acquire_timeout().as_millis() as u64,
                        cause,
                        "database pool exhausted: no connection within the acquire timeout \
                         (logged once until it serves again; counted in db_pool_acquire_timeouts_total)"
                    );
                }
            }
            Ok(_) => {
                if self.exhausted.swap(false, Ordering::AcqRel) {
                    tracing::info!(pool = self.name, "database pool serves again");
                }
            }
            Err(_) => {}
        }
    }
}
