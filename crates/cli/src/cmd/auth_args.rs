//! The authentication flags `taxon serve` and `taxon ui` share: one signing secret, one users
//! database, so a token or a login is good on both.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use taxon_auth::{Auth, AuthConfig, UserStore};

#[derive(Debug, Args)]
pub struct AuthArgs {
    /// Turn authentication on: the HMAC secret that signs bearer tokens (at least 32 bytes).
    /// Clients get tokens from POST /token (OAuth2 password flow) as users of `taxon users`;
    /// `taxon ui` asks them to sign in.
    #[arg(
        long,
        env = "TAXON_JWT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub jwt_secret: Option<String>,
    /// Token signature algorithm: HS256, HS384 or HS512.
    #[arg(long, env = "TAXON_JWT_ALGORITHM", default_value = "HS256")]
    pub jwt_algorithm: String,
    /// Lifetime of issued tokens (and of a UI session), in seconds.
    #[arg(
        long,
        env = "TAXON_TOKEN_TTL",
        value_name = "SECONDS",
        default_value_t = 1800
    )]
    pub token_ttl: u64,
    /// The users database (see `taxon users`): a SQLite file, or a `postgres://` URL that
    /// several servers share.
    #[arg(long, env = "TAXON_USERS_DB", value_name = "PATH", default_value = taxon_auth::DEFAULT_USERS_DB)]
    pub users_db: PathBuf,
}

impl AuthArgs {
    /// Authentication, when a signing secret is configured.
    pub fn auth(&self) -> anyhow::Result<Option<Auth>> {
        let Some(secret) = &self.jwt_secret else {
            return Ok(None);
        };
        let mut config = AuthConfig::new(secret).context("--jwt-secret / TAXON_JWT_SECRET")?;
        config.algorithm = taxon_auth::parse_algorithm(&self.jwt_algorithm)?;
        config.token_ttl = Duration::from_secs(self.token_ttl);
        let users = UserStore::open(&self.users_db)?;
        Ok(Some(Auth::new(config, users)?))
    }
}
