//! The ports of the identity domain: what it needs from the outside, in its own words.
//!
//! Driven (implemented in `outbound`): [`UserStore`] keeps accounts (SQLite embedded, PostgreSQL
//! in production); [`PasswordHasher`] turns passwords into slow salted hashes and
//! checks them (argon2id); [`KeyRing`] holds the signing keys, signs with the newest and
//! publishes them all. Driving adapters (HTTP in `inbound`) call
//! [`crate::application::IdentityService`].

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::domain::{
    Password, PasswordHash, Role, TokenClaims, User, UserId, Username,
    throttle::{FailedSignIns, ThrottlePolicy},
};

/// The store failed (unreachable, I/O). Not a business outcome.
pub type StoreError = studycafe_kernel::StoreError<Users>;

/// The user store, as its failures name it.
#[derive(Debug)]
pub enum Users {}

impl studycafe_kernel::StoreName for Users {
    const NAME: &'static str = "user store";
}

/// What storing a new account came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// Someone has that username already (usernames are unique whatever their case).
    UsernameTaken,
}

pub trait UserStore: Clone + Send + Sync + 'static {
    /// Whether the store answers (readiness).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores a new account unless its username is taken; the check and the insert are one
    /// atomic step, so two sign-ups racing for a name cannot both win.
    fn insert(&self, user: &User)
    -> impl Future<Output = Result<InsertOutcome, StoreError>> + Send;

    fn by_username(
        &self,
        username: &Username,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    /// Adds `role` to the account (no-op if it has it); `false` if there is no such account.
    fn grant_role(
        &self,
        user: UserId,
        role: Role,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The failed sign-ins recorded for `username` (known account or not), if any.
    fn failed_sign_ins(
        &self,
        username: &Username,
    ) -> impl Future<Output = Result<Option<FailedSignIns>, StoreError>> + Send;

    /// Records one more failed sign-in for `username` as `policy` counts it and returns the new
    /// record. Read and write are one atomic step: failures recorded at once by several
    /// replicas are all counted.
    fn record_failed_sign_in(
        &self,
        username: &Username,
        policy: &ThrottlePolicy,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<FailedSignIns, StoreError>> + Send;

    /// Forgets the failed sign-ins of `username` (it has just signed in).
    fn forget_failed_sign_ins(
        &self,
        username: &Username,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Hashing failed for a reason other than a wrong password (a corrupt stored hash, a worker
/// that died).
#[derive(Debug, thiserror::Error)]
#[error("password hashing: {0}")]
pub struct HashError(pub String);

pub trait PasswordHasher: Clone + Send + Sync + 'static {
    fn hash(
        &self,
        password: Password,
    ) -> impl Future<Output = Result<PasswordHash, HashError>> + Send;

    /// `Ok(false)` for a wrong password.
    fn verify(
        &self,
        password: Password,
        hash: PasswordHash,
    ) -> impl Future<Output = Result<bool, HashError>> + Send;
}

/// No key could sign (should not happen once started: the ring is never empty).
#[derive(Debug, thiserror::Error)]
#[error("signing keys: {0}")]
pub struct KeyRingError(pub String);

pub trait KeyRing: Send + Sync + 'static {
    /// Signs with the newest key, naming it in the header (`kid`).
    fn sign(
        &self,
        claims: &TokenClaims,
    ) -> impl Future<Output = Result<String, KeyRingError>> + Send;

    /// The public halves of every key, newest first, as a JWKS document: tokens signed by an
    /// older key stay verifiable as long as its key is published.
    fn jwks(&self) -> impl Future<Output = serde_json::Value> + Send;
}
