//! Instants and durations as the wire writes them (integer milliseconds), converted with
//! checks: nothing here panics or wraps, whatever a peer sends.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `at` in Unix milliseconds: `0` before the epoch, `u64::MAX` past what fits.
pub fn to_unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, duration_to_ms)
}

/// The instant `unix_ms` milliseconds after the epoch; `None` if the platform's
/// `SystemTime` cannot represent it.
pub fn from_unix_ms(unix_ms: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_millis(unix_ms))
}

/// `duration` in whole milliseconds, `u64::MAX` past what fits.
pub fn duration_to_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Serde adapters: `SystemTime` as Unix milliseconds.
pub(crate) mod unix_ms {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(super::to_unix_ms(*at))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        let ms = u64::deserialize(deserializer)?;
        super::from_unix_ms(ms).ok_or_else(|| D::Error::custom(format_args!("instant {ms} ms is out of range")))
    }
}

/// Serde adapters: `Duration` as milliseconds.
pub(crate) mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(super::duration_to_ms(*duration))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(deserializer)?))
    }
}

/// Serde adapters: `Option<SystemTime>` as Unix milliseconds.
pub(crate) mod unix_ms_opt {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(at: &Option<SystemTime>, serializer: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => serializer.serialize_u64(super::to_unix_ms(*at)),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SystemTime>, D::Error> {
        match Option::<u64>::deserialize(deserializer)? {
            None => Ok(None),
            Some(ms) => super::from_unix_ms(ms)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format_args!("instant {ms} ms is out of range"))),
        }
    }
}

/// Serde adapters: `Option<Duration>` as milliseconds.
pub(crate) mod duration_ms_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(duration: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => serializer.serialize_u64(super::duration_to_ms(*duration)),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(deserializer)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_are_checked_at_the_edges() {
        assert_eq!(to_unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(to_unix_ms(from_unix_ms(1_763_674_210_055).unwrap()), 1_763_674_210_055);
        let far = from_unix_ms(u64::MAX).expect("u64::MAX ms fits a 64-bit SystemTime");
        assert_eq!(to_unix_ms(far), u64::MAX);
        assert_eq!(duration_to_ms(Duration::MAX), u64::MAX);
    }
}
