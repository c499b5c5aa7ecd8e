//! The identity use cases: sign up, bootstrap accounts, and the two OAuth2 grants.
//!
//! Each use case has its own error enum; the HTTP adapter maps them to responses in one place.

use std::sync::Arc;

use crate::domain::{
    ClientRegistry, ClientSecret, DisplayName, IssuedToken, Password, PasswordHash, Role,
    TokenPolicy, User, Username,
    client::ClientId,
    ports::{
        HashError, InsertOutcome, KeyRing, KeyRingError, PasswordHasher, StoreError, UserStore,
    },
    throttle::ThrottlePolicy,
};

/// The role of every machine client's token.
pub const SERVICE_ROLE: &str = "service";

/// A new account, already validated.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub username: Username,
    pub password: Password,
    pub display_name: DisplayName,
}

#[derive(Debug, thiserror::Error)]
pub enum SignUpError {
    #[error("the username {0} is taken")]
    UsernameTaken(Username),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `ensure_account` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Created,
    /// The account was there; its password was left alone. `granted` says whether it lacked
    /// the role and got it now.
    Existed {
        granted: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    #[error(
        "the account {0} exists without the {role} role and another password; it is not given the role",
        role = .1.as_str()
    )]
    NotYours(Username, Role),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordGrantError {
    /// Unknown user or wrong password: deliberately the same answer.
    #[error("the username or password is wrong")]
    InvalidGrant,
    /// Too many wrong passwords for this username lately; sign-ins for it are refused,
    /// right password or not, for `retry_after`.
    #[error("too many failed sign-ins for this username; try again in {} s", .retry_after.num_seconds().max(1))]
    Throttled { retry_after: chrono::Duration },
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyRingError),
}

#[derive(Debug, thiserror::Error)]
pub enum ClientGrantError {
    #[error("unknown client or wrong secret")]
    InvalidClient,
    #[error(transparent)]
    Keys(#[from] KeyRingError),
}

/// The identity application service. Cheap to clone.
#[derive(Debug)]
pub struct IdentityService<S, H, K> {
    store: S,
    hasher: H,
    keys: Arc<K>,
    policy: Arc<TokenPolicy>,
    clients: Arc<ClientRegistry>,
    throttle: Arc<ThrottlePolicy>,
    /// The hash a login for an unknown user is checked against, so it costs as much as a
    /// login for a known one and the time taken does not tell which usernames exist.
    decoy: PasswordHash,
}

impl<S: Clone, H: Clone, K> Clone for IdentityService<S, H, K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            hasher: self.hasher.clone(),
            keys: self.keys.clone(),
            policy: self.policy.clone(),
            clients: self.clients.clone(),
            throttle: self.throttle.clone(),
            decoy: self.decoy.clone(),
        }
    }
}

impl<S: UserStore, H: PasswordHasher, K: KeyRing> IdentityService<S, H, K> {
    /// Hashes the decoy password once (as slow as any other hash).
    pub async fn new(
        store: S,
        hasher: H,
        keys: Arc<K>,
        policy: TokenPolicy,
        clients: ClientRegistry,
        throttle: ThrottlePolicy,
    ) -> Result<Self, HashError> {
        let decoy = hasher.hash(Password::unguessable()).await?;
        Ok(Self {
            store,
            hasher,
            keys,
            policy: Arc::new(policy),
            clients: Arc::new(clients),
            throttle: Arc::new(throttle),
            decoy,
        })
    }

    pub fn keys(&self) -> &K {
        &self.keys
    }

    /// A customer signs up.
    pub async fn sign_up(&self, account: NewAccount) -> Result<User, SignUpError> {
        // A cheap read first spares the slow hash when the name is plainly taken; the insert
        // below still decides a race.
        if self.store.by_username(&account.username).await?.is_some() {
            return Err(SignUpError::UsernameTaken(account.username));
        }
        let user = self.create(account, Role::Customer).await?;
        tracing::info!(user_id = %user.id, username = %user.username, "account created");
        Ok(user)
    }

    async fn create(&self, account: NewAccount, role: Role) -> Result<User, SignUpError> {
        let hash = self.hasher.hash(account.password).await?;
        let user = User::register(
            account.username,
            account.display_name,
            hash,
            &[role],
            chrono::Utc::now(),
        );
        match self.store.insert(&user).await? {
            InsertOutcome::Inserted => {
                metrics::counter!("identity_accounts_created_total", "role" => role.as_str())
                    .increment(1);
                Ok(user)
            }
            InsertOutcome::UsernameTaken => Err(SignUpError::UsernameTaken(user.username)),
        }
    }

    /// Makes sure an account exists and has `role` (start-up bootstrap of the admin and the
    /// demo customers). An existing account keeps its password: an operator may have changed
    /// it since, and a restart must not undo that. An existing account that lacks the role
    /// gets it only if the configured password is its password: otherwise whoever signed up
    /// first under the admin's name would be made admin, with their own password.
    pub async fn ensure_account(
        &self,
        account: NewAccount,
        role: Role,
    ) -> Result<Ensured, EnsureError> {
        let username = account.username.clone();
        if let Some(user) = self.store.by_username(&username).await? {
            if user.has(role) {
                return Ok(Ensured::Existed { granted: false });
            }
            if !self
                .hasher
                .verify(account.password, user.password_hash.clone())
                .await?
            {
                return Err(EnsureError::NotYours(username, role));
            }
            let granted = self.store.grant_role(user.id, role).await?;
            return Ok(Ensured::Existed { granted });
        }
        match self.create(account, role).await {
            Ok(_) => Ok(Ensured::Created),
            // Another instance created it a moment ago.
            Err(SignUpError::UsernameTaken(_)) => Ok(Ensured::Existed { granted: false }),
            Err(SignUpError::Hash(e)) => Err(e.into()),
            Err(SignUpError::Store(e)) => Err(e.into()),
        }
    }

    /// `grant_type=password`: a person's username and password for a token.
    ///
    /// Failed sign-ins are counted per username ([`ThrottlePolicy`]); while a username is
    /// locked out its sign-ins are refused before any password is checked, which also spares
    /// the slow hash.
    pub async fn password_grant(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(User, IssuedToken), PasswordGrantError> {
        let password = Password::parse(password).ok();
        // A name that does not parse can have no account and is not counted.
        let username = Username::parse(username).ok();
        let now = chrono::Utc::now();
        let failures = match &username {
            Some(username) => self.store.failed_sign_ins(username).await?,
            None => None,
        };
        if let Some(until) = self.throttle.refused_until(failures.as_ref(), now) {
            metrics::counter!("identity_token_refusals_total", "grant" => "password_throttled")
                .increment(1);
            tracing::info!(username = ?username.as_ref().map(Username::as_str), %until, "password grant refused: username locked out");
            return Err(PasswordGrantError::Throttled {
                retry_after: until - now,
            });
        }
        let user = match &username {
            Some(username) => self.store.by_username(username).await?,
            None => None,
        };
        let user = match (user, password) {
            (Some(user), Some(password)) => {
                let valid = self
                    .hasher
                    .verify(password, user.password_hash.clone())
                    .await?;
                valid.then_some(user)
            }
            (_, password) => {
                let password = password.unwrap_or_else(Password::unguessable);
                self.hasher.verify(password, self.decoy.clone()).await?;
                None
            }
        };
        let Some(user) = user else {
            metrics::counter!("identity_token_refusals_total", "grant" => "password").increment(1);
            match &username {
                Some(username) => {
                    let record = self
                        .store
                        .record_failed_sign_in(username, &self.throttle, now)
                        .await?;
                    match record.locked_until {
                        Some(until) => {
                            metrics::counter!("identity_sign_in_lockouts_total").increment(1);
                            tracing::warn!(username = %username, failures = record.failures, %until, "password grant refused: too many failures, username locked out");
                        }
                        None => {
                            tracing::info!(username = %username, failures = record.failures, "password grant refused: unknown user or wrong password")
                        }
                    }
                }
                None => tracing::info!("password grant refused: malformed username"),
            }
            return Err(PasswordGrantError::InvalidGrant);
        };
        if failures.is_some() {
            self.store.forget_failed_sign_ins(&user.username).await?;
        }
        let subject = user.id.to_string();
        let token = self
            .issue(&subject, &user.role_names(), Some(user.username.as_str()))
            .await?;
        metrics::counter!("identity_tokens_issued_total", "grant" => "password").increment(1);
        tracing::info!(user_id = %user.id, username = %user.username, "token issued");
        Ok((user, token))
    }

    /// Checks a client's credentials.
    pub fn authenticate_client(&self, id: &str, secret: &ClientSecret) -> Option<ClientId> {
        self.clients.authenticate(id, secret).map(|c| c.id.clone())
    }

    /// `grant_type=client_credentials`: a machine client's token (role `service`).
    pub async fn client_grant(
        &self,
        id: &str,
        secret: &ClientSecret,
    ) -> Result<(ClientId, IssuedToken), ClientGrantError> {
        let Some(client) = self.authenticate_client(id, secret) else {
            metrics::counter!("identity_token_refusals_total", "grant" => "client_credentials")
                .increment(1);
            return Err(ClientGrantError::InvalidClient);
        };
        let token = self.issue(client.as_str(), &[SERVICE_ROLE], None).await?;
        metrics::counter!("identity_tokens_issued_total", "grant" => "client_credentials")
            .increment(1);
        tracing::info!(client_id = %client, "service token issued");
        Ok((client, token))
    }

    async fn issue(
        &self,
        subject: &str,
        roles: &[&str],
        preferred_username: Option<&str>,
    ) -> Result<IssuedToken, KeyRingError> {
        let claims = self.policy.claims(subject, roles, preferred_username);
        let access_token = self.keys.sign(&claims).await?;
        Ok(IssuedToken {
            access_token,
            expires_in: u64::try_from(self.policy.ttl.num_seconds()).unwrap_or(0),
        })
    }
}
