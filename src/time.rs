//! Time as the gateway stores it. The edge reads the clock once per invocation
//! (`edge::platform::now`) and passes Unix seconds down; this turns them into RFC 3339.

use chrono::{DateTime, SecondsFormat};

/// `2026-11-29T01:30:25Z`. Out-of-range input (never produced by a real clock) gives the epoch.
pub fn rfc3339(unix_secs: i64) -> String {
    DateTime::from_timestamp(unix_secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_seconds() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_915_825), "2026-11-29T01:30:25Z");
    }
}
