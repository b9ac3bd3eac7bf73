//! Authentication for the inference server: users, the OAuth2 password flow, JWT scopes, rate limits.
