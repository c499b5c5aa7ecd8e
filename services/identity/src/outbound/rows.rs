//! What the SQL adapters share: an account as stored (plain columns) and its conversion back
//! into the domain's [`User`], which re-validates every field, so a row written by hand that
//! breaks a rule is a decode error rather than a user the domain never allowed.

use chrono::{DateTime, Utc};

use crate::domain::{DisplayName, PasswordHash, Role, User, UserId, Username};

/// One `users` row, read column by column by the adapter that owns the connection.
#[derive(Debug)]
pub(crate) struct UserRow {
    pub user_id: String,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub roles: String,
    pub created_at: DateTime<Utc>,
}

impl UserRow {
    pub(crate) fn into_user(self) -> Result<User, sqlx::Error> {
        let decode = |e: String| sqlx::Error::Decode(e.into());
        Ok(User {
            id: UserId::parse(&self.user_id)
                .ok_or_else(|| decode(format!("user id {:?}", self.user_id)))?,
            username: Username::parse(&self.username).map_err(|e| decode(e.to_string()))?,
            display_name: DisplayName::parse(&self.display_name)
                .map_err(|e| decode(e.to_string()))?,
            password_hash: PasswordHash::new(self.password_hash),
            roles: parse_roles(&self.roles).map_err(|r| decode(format!("role {r:?}")))?,
            created_at: self.created_at,
        })
    }
}

/// Roles as stored: space-separated names, sorted.
pub(crate) fn roles_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The stored roles; `Err` names the first unknown one.
pub(crate) fn parse_roles(text: &str) -> Result<Vec<Role>, String> {
    text.split_whitespace()
        .map(|r| Role::parse(r).ok_or_else(|| r.to_owned()))
        .collect()
}

/// `roles` plus `role`, sorted; `None` when it was there already.
pub(crate) fn with_role(mut roles: Vec<Role>, role: Role) -> Option<Vec<Role>> {
    if roles.contains(&role) {
        return None;
    }
    roles.push(role);
    roles.sort();
    Some(roles)
}
