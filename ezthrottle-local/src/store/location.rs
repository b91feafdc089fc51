//! `--store`: where the binary keeps its jobs, as a string.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use super::{JobStore, MemoryStore, SqliteStore, StoreError};

/// Where jobs are kept, as `--store` (or `EZTHROTTLE_LOCAL_STORE`) spells it:
/// `sqlite:PATH` or `memory:`.
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
    pub fn open(&self) -> Result<Arc<dyn JobStore>, StoreError> {
        Ok(match self {
            Self::Memory => Arc::new(MemoryStore::new()),
            Self::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
        })
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory:"),
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
        }
    }
}

/// A `--store` value that is neither `sqlite:PATH` nor `memory:`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0:?} is not a store location: use sqlite:PATH or memory:")]
pub struct InvalidStoreLocation(String);

impl FromStr for StoreLocation {
    type Err = InvalidStoreLocation;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.split_once(':') {
            Some(("memory", "")) => Ok(Self::Memory),
            Some(("sqlite", path)) if !path.is_empty() => Ok(Self::Sqlite(PathBuf::from(path))),
            _ => Err(InvalidStoreLocation(value.to_owned())),
        }
    }
}
