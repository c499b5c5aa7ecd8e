//! The SQLite adapter of [`UserStore`] (embedded mode).
//!
//! The file is opened as every service opens its SQLite database
//! ([`SqliteDatabase`]: one writer, a read pool, migrations under the write lock), so two
//! replicas may share it.
//! The unique index on `username` decides a race between two sign-ups for one name.
//! `synchronous = FULL`: an account that was confirmed survives a power cut.

use chrono::{DateTime, TimeZone as _, Utc};
use sqlx::{Row as _, migrate::Migrator, sqlite::SqliteRow};
use studycafe_messaging::sqlite::{SqliteDatabase, Tables};

use crate::{
    domain::{
        Role, User, UserId, Username,
        ports::{InsertOutcome, StoreError, UserStore},
        throttle::{FailedSignIns, ThrottlePolicy},
    },
    outbound::rows::{UserRow, roles_text, with_role},
};

#[derive(Debug, Clone)]
pub struct SqliteUserStore {
    database: SqliteDatabase,
}

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

fn store_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e)
}

impl SqliteUserStore {
    /// Opens (creating if missing) the database at `url` and brings its schema up to date;
    /// safe when several replicas open one file at once.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let database = SqliteDatabase::open(url, &MIGRATOR, Tables::Own).await?;
        Ok(Self { database })
    }
}

fn user_from_row(row: &SqliteRow) -> Result<User, sqlx::Error> {
    let created_ms: i64 = row.try_get("created_at")?;
    UserRow {
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        password_hash: row.try_get("password_hash")?,
        roles: row.try_get("roles")?,
        created_at: millis(created_ms),
    }
    .into_user()
}

fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn failed_sign_ins_from_row(row: &SqliteRow) -> Result<FailedSignIns, sqlx::Error> {
    let failures: i64 = row.try_get("failures")?;
    Ok(FailedSignIns {
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        last_failure_at: millis(row.try_get("last_failure_at")?),
        locked_until: row.try_get::<Option<i64>, _>("locked_until")?.map(millis),
    })
}

async fn read_failed_sign_ins<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    username: &Username,
) -> sqlx::Result<Option<FailedSignIns>> {
    sqlx::query(
        "SELECT failures, last_failure_at, locked_until FROM failed_sign_ins WHERE username = ?",
    )
    .bind(username.as_str())
    .fetch_optional(executor)
    .await?
    .as_ref()
    .map(failed_sign_ins_from_row)
    .transpose()
}

impl UserStore for SqliteUserStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.database.ping().await.map_err(store_error)
    }

    async fn insert(&self, user: &User) -> Result<InsertOutcome, StoreError> {
        let result = sqlx::query(
            "INSERT INTO users (user_id, username, display_name, password_hash, roles, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.to_string())
        .bind(user.username.as_str())
        .bind(user.display_name.as_str())
        .bind(user.password_hash.as_str())
        .bind(roles_text(&user.roles))
        .bind(user.created_at.timestamp_millis())
        .execute(&self.database.writer)
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
        let row = sqlx::query(
            "SELECT user_id, username, display_name, password_hash, roles, created_at
             FROM users WHERE username = ?",
        )
        .bind(username.as_str())
        .fetch_optional(&self.database.reader)
        .await
        .map_err(store_error)?;
        row.as_ref()
            .map(user_from_row)
            .transpose()
            .map_err(store_error)
    }

    async fn grant_role(&self, user: UserId, role: Role) -> Result<bool, StoreError> {
        // Read and write in one transaction holding the write lock from the start: no grant is
        // lost to a concurrent one, in this process or another.
        let mut tx = self.database.write().await.map_err(store_error)?;
        let roles: Option<String> = sqlx::query("SELECT roles FROM users WHERE user_id = ?")
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
        let roles: Vec<Role> = roles.split_whitespace().filter_map(Role::parse).collect();
        if let Some(roles) = with_role(roles, role) {
            sqlx::query("UPDATE users SET roles = ? WHERE user_id = ?")
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
        read_failed_sign_ins(&self.database.reader, username)
            .await
            .map_err(store_error)
    }

    async fn record_failed_sign_in(
        &self,
        username: &Username,
        policy: &ThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<FailedSignIns, StoreError> {
        // The write lock is held from the read on, so no other failure slips in between.
        let mut tx = self.database.write().await.map_err(store_error)?;
        let previous = read_failed_sign_ins(&mut *tx, username)
            .await
            .map_err(store_error)?;
        let record = policy.after_failure(previous.as_ref(), now);
        sqlx::query(
            "INSERT INTO failed_sign_ins (username, failures, last_failure_at, locked_until)
             VALUES (?, ?, ?, ?)
             ON CONFLICT (username) DO UPDATE SET failures = excluded.failures,
                 last_failure_at = excluded.last_failure_at, locked_until = excluded.locked_until",
        )
        .bind(username.as_str())
        .bind(i64::from(record.failures))
        .bind(record.last_failure_at.timestamp_millis())
        .bind(record.locked_until.map(|t| t.timestamp_millis()))
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(record)
    }

    async fn forget_failed_sign_ins(&self, username: &Username) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM failed_sign_ins WHERE username = ?")
            .bind(username.as_str())
            .execute(&self.database.writer)
            .await
            .map(|_| ())
            .map_err(store_error)
    }
}
