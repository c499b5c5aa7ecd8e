//! The SQLite adapter of [`UserStore`] (embedded mode).
//!
//! The file is opened as every service opens its SQLite database
//! ([`SqliteDatabase`]: one writer, a read pool, migrations under the write lock), so two
//! replicas may share it.
//! The unique index on `username` decides a race between two sign-ups for one name.
//! `synchronous = FULL`: an account that was confirmed survives a power cut.

use chrono::{TimeZone as _, Utc};
use sqlx::{Row as _, migrate::Migrator, sqlite::SqliteRow};
use studycafe_messaging::sqlite::{SqliteDatabase, Tables};

use crate::{
    domain::{
        Role, User, UserId, Username,
        ports::{InsertOutcome, StoreError, UserStore},
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
        created_at: Utc
            .timestamp_millis_opt(created_ms)
            .single()
            .unwrap_or_default(),
    }
    .into_user()
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
}
