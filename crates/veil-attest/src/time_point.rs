use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A point in time, in whole seconds since the Unix epoch (UTC).
///
/// Verifiers never read the clock: the caller passes the time at which the
/// evidence must be genuine, so tests pin it and a CAS passes "now".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Time(u64);

impl Time {
    /// The time `secs` seconds after the Unix epoch.
    pub const fn from_unix(secs: u64) -> Self {
        Time(secs)
    }

    /// Seconds since the Unix epoch.
    pub const fn unix(self) -> u64 {
        self.0
    }

    /// The current wall-clock time. Only binaries call this; verifiers take a `Time`.
    pub fn now() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Time(secs)
    }

    /// This time as RFC 3339 text (`2025-07-04T10:28:44Z`).
    pub fn rfc3339(self) -> String {
        i64::try_from(self.0)
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| format!("@{}", self.0))
    }

    /// Parses RFC 3339 text into a `Time` (fractions of a second are dropped).
    pub fn parse_rfc3339(s: &str) -> Result<Self, TimeParseError> {
        let t =
            OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|_| TimeParseError(s.to_owned()))?;
        u64::try_from(t.unix_timestamp())
            .map(Time)
            .map_err(|_| TimeParseError(s.to_owned()))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

/// The error for text that is neither Unix seconds nor RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid time {0:?}: expected Unix seconds (1751624924) or RFC 3339 (2025-07-04T10:28:44Z)"
)]
pub struct TimeParseError(pub String);

impl FromStr for Time {
    type Err = TimeParseError;

    /// Accepts Unix seconds or RFC 3339.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<u64>()
                .map(Time)
                .map_err(|_| TimeParseError(s.to_owned()));
        }
        Time::parse_rfc3339(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        assert_eq!(
            "1751624924".parse::<Time>(),
            Ok(Time::from_unix(1751624924))
        );
        assert_eq!(
            "2025-07-04T10:28:44Z".parse::<Time>(),
            Ok(Time::from_unix(1751624924))
        );
        assert_eq!(
            Time::from_unix(1751624924).rfc3339(),
            "2025-07-04T10:28:44Z"
        );
        assert!("yesterday".parse::<Time>().is_err());
        assert!("-5".parse::<Time>().is_err());
        assert!("".parse::<Time>().is_err());
    }
}
