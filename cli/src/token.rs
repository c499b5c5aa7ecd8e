//! `studycafe token`: a dev access token signed with the identity service's newest key from
//! the data directory, for scripts that want a token without a password (`POST /auth/token`
//! is the real way in). The subject is whatever `--user` says, not an account id.

use std::path::PathBuf;

use studycafe_platform::signing::AccessClaims;

use crate::{data_dir::DataDir, keys};

/// What the services expect in `iss` and `aud` by default (`AUTH_ISSUER`, `AUTH_AUDIENCE`).
const ISSUER: &str = "studycafe-identity";
const AUDIENCE: &str = "studycafe";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Customer,
    Admin,
}

impl Role {
    fn claim(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Admin => "admin",
        }
    }
}

pub fn run(
    data_dir: Option<PathBuf>,
    user: &str,
    roles: &[Role],
    ttl_mins: u32,
) -> anyhow::Result<()> {
    let data = DataDir::from_process(data_dir)?;
    let key = keys::newest_identity_key(&data)?;
    println!("{}", mint(&key, user, roles, ttl_mins)?);
    Ok(())
}

fn mint(
    key: &studycafe_platform::signing::SigningKey,
    user: &str,
    roles: &[Role],
    ttl_mins: u32,
) -> anyhow::Result<String> {
    let mut claims: Vec<&str> = Vec::new();
    for role in roles {
        if !claims.contains(&role.claim()) {
            claims.push(role.claim());
        }
    }
    let claims = AccessClaims::new(
        ISSUER,
        AUDIENCE,
        user,
        &claims,
        chrono::Duration::minutes(i64::from(ttl_mins)),
    );
    Ok(key.sign(&claims)?)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use studycafe_platform::{
        auth::{AuthConfig, JwtVerifier, Role as VerifiedRole},
        config::Env,
    };

    use super::*;

    /// The token must pass the services' own check, with their default issuer and audience,
    /// against the JWKS of identity's keys.
    #[tokio::test]
    async fn the_services_accept_the_token() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::resolve(Some(tmp.path().into()), None, Path::new("/"));
        std::fs::create_dir_all(data.identity_keys()).unwrap();
        let generated = studycafe_platform::signing::SigningKey::generate("key-20261124T000000Z");
        std::fs::write(
            data.identity_keys().join("key-20261124T000000Z.pem"),
            generated.to_pkcs8_pem().unwrap(),
        )
        .unwrap();
        let key = keys::newest_identity_key(&data).unwrap();
        let jwks_path = tmp.path().join("jwks.json");
        std::fs::write(
            &jwks_path,
            studycafe_platform::signing::jwks([&generated]).to_string(),
        )
        .unwrap();
        let jwks = jwks_path.to_string_lossy().into_owned();
        let config =
            AuthConfig::from_env(&Env::from_pairs([("AUTH_JWKS_FILE", jwks.as_str())])).unwrap();

        let token = mint(
            &key,
            "alice",
            &[Role::Admin, Role::Customer, Role::Admin],
            5,
        )
        .unwrap();
        let verifier = JwtVerifier::new(config);
        let verified =
            tokio::time::timeout(std::time::Duration::from_secs(10), verifier.verify(&token));
        let caller = verified.await.expect("verification hangs").unwrap();
        assert_eq!(caller.user_id, "alice");
        assert_eq!(
            caller.roles,
            vec![VerifiedRole::Admin, VerifiedRole::Customer]
        );
    }
}
