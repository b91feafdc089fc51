//! Small helpers shared by the modules.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

/// Locks `mutex`, ignoring poisoning: every critical section leaves its data consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Now, Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Now, Unix seconds.
pub(crate) fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `duration` scaled by a random factor in `[1 - spread, 1 + spread]`.
pub(crate) fn jittered(duration: Duration, spread: f64) -> Duration {
    let factor = 1.0 + spread * (fastrand::f64() * 2.0 - 1.0);
    Duration::try_from_secs_f64(duration.as_secs_f64() * factor).unwrap_or(duration)
}

/// Milliseconds in `duration`, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A header map as the wire's `{name: value}` object (names lower-case; repeated headers
/// joined with `, `; non-UTF-8 values replaced lossily).
pub(crate) fn header_object(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        out.entry(name.as_str().to_owned())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    out
}

/// `Retry-After` as a duration: delay-seconds (a fraction allowed) or an HTTP date, parsed
/// by the protocol's one parser.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    ezthrottle_core::protocol::retry_after_delay(headers, SystemTime::now())
}
