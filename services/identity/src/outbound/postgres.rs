//! The PostgreSQL adapter of [`UserStore`] (production: several replicas share one database).
//!
//! - Race for a username: the unique index on `lower(username)` decides it; the loser's
//!   INSERT fails with a unique violation, reported as [`InsertOutcome::UsernameTaken`].
//! - Granting a role reads the row `FOR UPDATE` and writes it back in one transaction, so two
//!   replicas granting at once (the admin bootstrap) cannot lose one another's grant.
//! - Migrations (`migrations/postgres`) run at start-up under sqlx's advisory lock: replicas
//!   starting together apply them once, the others wait and find them applied.
//! - A failed sign-in locks its username's `failed_sign_ins` row (`FOR UPDATE`, after an
//!   `INSERT … ON CONFLICT DO NOTHING` so there is a row to lock) before counting, so failures
//!   recorded by several replicas at once are all counted.
//! - Every statement has a timeout: a stuck lock turns into an error, not a hung request.

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{
    PgPool, Postgres, Row as _,
    postgres::{PgConnectOptions, PgPoolOptions, PgRow},
};
use studycafe_messaging::write::{READY_WITHIN, Writer};

use crate::{
    domain::{
        Role, User, UserId, Username,
        ports::{InsertOutcome, StoreError, UserStore},
        throttle::{FailedSignIns, ThrottlePolicy},
    },
    outbound::rows::{UserRow, parse_roles, roles_text, with_role},
};

const STATEMENT_TIMEOUT: &str = "5s";

#[derive(Debug, Clone)]
pub struct PgUserStore {
    pool: PgPool,
    /// Every write transaction begins here (cancel-safe).
    writer: Writer<Postgres>,
}

fn store_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e)
}

impl PgUserStore {
    /// Connects to the database at `url` and brings its schema up to date.
    pub async fn open(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("identity-service")
            .options([("statement_timeout", STATEMENT_TIMEOUT)]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self {
            writer: Writer::new("identity", pool.clone()),
            pool,
        })
    }
}

const COLUMNS: &str =
    "user_id::text AS user_id, username, display_name, password_hash, roles, created_at";

fn user_from_row(row: &PgRow) -> Result<User, sqlx::Error> {
    UserRow {
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        password_hash: row.try_get("password_hash")?,
        roles: row.try_get("roles")?,
        created_at: row.try_get::<DateTime<Utc>, _>("created_at")?,
    }
    .into_user()
}

fn failed_sign_ins_from_row(row: &PgRow) -> Result<FailedSignIns, sqlx::Error> {
    let failures: i32 = row.try_get("failures")?;
    Ok(FailedSignIns {
        failures: u32::try_from(failures).unwrap_or(0),
        last_failure_at: row.try_get("last_failure_at")?,
        locked_until: row.try_get("locked_until")?,
    })
}

/// The failed sign-ins of `username`; `lock` takes the row `FOR UPDATE` (in a transaction).
async fn read_failed_sign_ins<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    username: &Username,
    lock: bool,
) -> sqlx::Result<Option<FailedSignIns>> {
    let sql = if lock {
        "SELECT failures, last_failure_at, locked_until FROM failed_sign_ins WHERE username = $1
         FOR UPDATE"
    } else {
        "SELECT failures, last_failure_at, locked_until FROM failed_sign_ins WHERE username = $1"
    };
    sqlx::query(sql)
        .bind(username.as_str())
        .fetch_optional(executor)
        .await?
        .as_ref()
        .map(failed_sign_ins_from_row)
        .transpose()
}

impl UserStore for PgUserStore {
    /// Readiness: a write transaction begins within [`READY_WITHIN`].
    async fn ping(&self) -> Result<(), StoreError> {
        self.writer.probe(READY_WITHIN).await.map_err(store_error)
    }

    async fn insert(&self, user: &User) -> Result<InsertOutcome, StoreError> {
        let result = sqlx::query(
            "INSERT INTO users (user_id, username, display_name, password_hash, roles, created_at)
             VALUES ($1::uuid, $2, $3, $4, $5, $6)",
        )
        .bind(user.id.to_string())
        .bind(user.username.as_str())
        .bind(user.display_name.as_str())
        .bind(user.password_hash.as_str())
        .bind(roles_text(&user.roles))
        .bind(user.created_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(InsertOutcome::Inserted),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Ok(InsertOutcome::UsernameTaken)
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn by_username(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM users WHERE lower(username) = lower($1)"
        ))
        .bind(username.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.as_ref()
            .map(user_from_row)
            .transpose()
            .map_err(store_error)
    }

    async fn grant_role(&self, user: UserId, role: Role) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(store_error)?;
        let roles: Option<String> =
            sqlx::query("SELECT roles FROM users WHERE user_id = $1::uuid FOR UPDATE")
                .bind(user.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?
                .map(|row| row.try_get("roles"))
                .transpose()
                .map_err(store_error)?;
        let Some(roles) = roles else {
            return Ok(false);
        };
        let roles = parse_roles(&roles).map_err(|r| store_error(format!("stored role {r:?}")))?;
        if let Some(roles) = with_role(roles, role) {
            sqlx::query("UPDATE users SET roles = $1 WHERE user_id = $2::uuid")
                .bind(roles_text(&roles))
                .bind(user.to_string())
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(true)
    }

    async fn failed_sign_ins(
        &self,
        username: &Username,
    ) -> Result<Option<FailedSignIns>, StoreError> {
        read_failed_sign_ins(&self.pool, username, false)
            .await
            .map_err(store_error)
    }

    async fn record_failed_sign_in(
        &self,
        username: &Username,
        policy: &ThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<FailedSignIns, StoreError> {
        let mut tx = self.writer.begin().await.map_err(store_error)?;
        // A placeholder row (born as one failure, which `after_failure` then replaces) gives
        // the first failure a row to lock too.
        let inserted = sqlx::query(
            "INSERT INTO failed_sign_ins (username, failures, last_failure_at, locked_until)
             VALUES ($1, 1, $2, NULL) ON CONFLICT (username) DO NOTHING",
        )
        .bind(username.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?
        .rows_affected()
            == 1;
        let previous = if inserted {
            None
        } else {
            // None if a successful sign-in deleted the row in between: counted afresh.
            read_failed_sign_ins(&mut *tx, username, true)
                .await
                .map_err(store_error)?
        };
        let record = policy.after_failure(previous.as_ref(), now);
        sqlx::query(
            "INSERT INTO failed_sign_ins (username, failures, last_failure_at, locked_until)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (username) DO UPDATE SET failures = EXCLUDED.failures,
                 last_failure_at = EXCLUDED.last_failure_at, locked_until = EXCLUDED.locked_until",
        )
        .bind(username.as_str())
        .bind(i32::try_from(record.failures).unwrap_or(i32::MAX))
        .bind(record.last_failure_at)
        .bind(record.locked_until)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(record)
    }

    async fn forget_failed_sign_ins(&self, username: &Username) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM failed_sign_ins WHERE username = $1")
            .bind(username.as_str())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
    }
}
