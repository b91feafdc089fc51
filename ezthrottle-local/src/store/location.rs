//! `--store`: where the binary keeps its jobs, as a string.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use super::{JobStore, MemoryStore, PostgresStore, SqliteStore, StoreError};
use crate::config::Secret;

/// Where jobs are kept, as `--store` (or `EZTHROTTLE_LOCAL_STORE`) spells it:
/// `sqlite:PATH`, `postgres://user:password@host:port/dbname` or `memory:`. `Display` masks
/// a URL's password.
///
/// ```
/// use ezthrottle_local::store::StoreLocation;
///
/// let location: StoreLocation = "sqlite:/var/lib/ezthrottle/jobs.sqlite3".parse()?;
/// assert_eq!(location, StoreLocation::Sqlite("/var/lib/ezthrottle/jobs.sqlite3".into()));
/// assert_eq!("memory:".parse::<StoreLocation>()?, StoreLocation::Memory);
/// assert!("redis://localhost".parse::<StoreLocation>().is_err());
/// # Ok::<(), ezthrottle_local::store::InvalidStoreLocation>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreLocation {
    /// [`MemoryStore`]: nothing survives the process.
    Memory,
    /// [`SqliteStore`] in this file (created if missing).
    Sqlite(PathBuf),
    /// [`PostgresStore`] at this URL (`postgres://user:password@host:port/dbname`): the
    /// store several engines share.
    Postgres(Secret),
}

impl StoreLocation {
    /// The binary's default: `sqlite:ezthrottle-local.sqlite3`, in the directory it was
    /// started in.
    pub fn binary_default() -> Self {
        Self::Sqlite(PathBuf::from("ezthrottle-local.sqlite3"))
    }

    /// Opens (or creates) the store.
    ///
    /// # Errors
    ///
    /// [`StoreError`]: the file cannot be opened or its schema is not one this version
    /// knows.
    pub async fn open(&self) -> Result<Arc<dyn JobStore>, StoreError> {
        Ok(match self {
            Self::Memory => Arc::new(MemoryStore::new()),
            Self::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
            Self::Postgres(url) => Arc::new(PostgresStore::open(url.expose()).await?),
        })
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory:"),
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Postgres(url) => f.write_str(&redacted(url.expose())),
        }
    }
}

/// `value` with the password of a URL in it masked.
fn redacted_any(value: &str) -> String {
    if value.contains('@') && value.contains("://") { redacted(value) } else { value.to_owned() }
}

/// A PostgreSQL URL with its password replaced by `****`.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "postgres://[unreadable URL]".to_owned(),
    }
}

/// A `--store` value that is none of `sqlite:PATH`, `postgres://...` and `memory:`.
#[derive(Clone, thiserror::Error)]
#[error("{0} is not a store location: use sqlite:PATH, postgres://... or memory:")]
pub struct InvalidStoreLocation(String);

impl std::fmt::Debug for InvalidStoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("InvalidStoreLocation").field(&self.0).finish()
    }
}

impl FromStr for StoreLocation {
    type Err = InvalidStoreLocation;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.split_once(':') {
            Some(("memory", "")) => Ok(Self::Memory),
            Some(("sqlite", path)) if !path.is_empty() => Ok(Self::Sqlite(PathBuf::from(path))),
            Some(("postgres" | "postgresql", rest)) if rest.starts_with("//") => Ok(Self::Postgres(Secret::new(value))),
            // Quoted, and a URL's password masked: the value may be a mistyped secret.
            _ => Err(InvalidStoreLocation(format!("{:?}", redacted_any(value)))),
        }
    }
}
