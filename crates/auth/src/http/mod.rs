//! The HTTP side of taxon-auth: `POST /token` and the bearer-token guard, with the response
//! shapes RFC 6749 and RFC 6750 define.

pub(crate) mod guard;
pub(crate) mod token;

pub use token::TOKEN_BODY_LIMIT;

/// The realm named in `WWW-Authenticate` challenges.
pub const REALM: &str = "taxon";
