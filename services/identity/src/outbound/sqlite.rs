//! The SQLite adapter of [`UserStore`] (embedded mode).
//!
//! Writes go through a pool of exactly one connection (SQLite has one writer anyway, and it
//! spares `SQLITE_BUSY` upgrade failures); reads use a separate pool beside it (WAL mode).
//! The unique index on `username` decides a race between two sign-ups for one name.
//! `synchronous = FULL`: an account that was confirmed survives a power cut.

use std::{str::FromStr, time::Duration};

use chrono::{TimeZone as _, Utc};
use sqlx::{
    Row as _, SqlitePool,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
    },
};

use crate::{
    domain::{
        Role, User, UserId, Username,
        ports::{InsertOutcome, StoreError, UserStore},
    },
    outbound::rows::{UserRow, roles_text, with_role},
};

#[derive(Debug, Clone)]
pub struct SqliteUserStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

fn store_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e)
}

impl SqliteUserStore {
    /// Opens (creating if missing) the database at `url` and brings its schema up to date.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true).create_if_missing(false))
            .await?;
        Ok(Self { writer, reader })
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
        created_at: Utc
            .timestamp_millis_opt(created_ms)
            .single()
            .unwrap_or_default(),
    }
    .into_user()
}

impl UserStore for SqliteUserStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map(|_| ())
            .map_err(store_error)
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
        .execute(&self.writer)
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
        .fetch_optional(&self.reader)
        .await
        .map_err(store_error)?;
        row.as_ref()
            .map(user_from_row)
            .transpose()
            .map_err(store_error)
    }

    async fn grant_role(&self, user: UserId, role: Role) -> Result<bool, StoreError> {
        // Read and write in one transaction on the single writer: no grant is lost to a
        // concurrent one.
        let mut tx = self.writer.begin().await.map_err(store_error)?;
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
}
