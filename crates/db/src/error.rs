//! The one error type of the backends; stores wrap it with their own location and context.

/// A failed database call.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    #[error("column {column}: expected {expected}, found {found}")]
    Type {
        column: usize,
        expected: &'static str,
        found: String,
    },
    #[error("TLS set-up for PostgreSQL: {0}")]
    Tls(#[from] openssl::error::ErrorStack),
    #[error("the query returned no row")]
    NoRow,
    #[error("schema version {found} is newer than this taxon's {supported}; upgrade taxon")]
    NewerSchema { found: i64, supported: i64 },
}

/// postgres::Error's Display says only "db error"; the server's message is in its source.
fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl DbError {
    /// A unique or primary-key constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.code == rusqlite::ErrorCode::ConstraintViolation
            }
            Self::Postgres(e) => e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
            _ => false,
        }
    }

    /// PostgreSQL aborted the transaction for a serialization failure or a deadlock: running
    /// it again from the start is the documented remedy.
    pub fn is_retryable(&self) -> bool {
        use postgres::error::SqlState;
        match self {
            Self::Postgres(e) => matches!(
                e.code(),
                Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED
            ),
            _ => false,
        }
    }
}
