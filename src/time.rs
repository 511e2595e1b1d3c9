//! Time as the gateway stores it. The edge reads the clock once per invocation
//! (`edge::platform::now`) and passes Unix seconds down; this turns them into RFC 3339.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Weekday};

/// `2026-11-29T01:30:25Z`. Out-of-range input (never produced by a real clock) gives the epoch.
pub fn rfc3339(unix_secs: i64) -> String {
    DateTime::from_timestamp(unix_secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Unix seconds of an RFC 3339 time as stored by [`rfc3339`]; `None` for anything else.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp())
}

/// The hour a scheduled-backup pass belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupHour {
    /// `2026-11-30T02`: makes the pass's jobs unique per repository.
    pub key: String,
    /// 0-23 (UTC): orgs whose `backup_hour` equals it are due.
    pub hour: u32,
    /// Weekly schedules run on Mondays.
    pub weekly_day: bool,
}

pub fn backup_hour(unix_secs: i64) -> BackupHour {
    let t = DateTime::from_timestamp(unix_secs, 0).unwrap_or_default();
    BackupHour {
        key: t.format("%Y-%m-%dT%H").to_string(),
        hour: t.hour(),
        weekly_day: t.weekday() == Weekday::Mon,
    }
}

/// The cron a scheduled event names, and the time its pass is for: `now`, the clock's.
///
/// Only in builds with the `e2e` cargo feature (the end-to-end suite's, never deployed:
/// `scripts/build-worker` enables no feature unless `ONECODE_FEATURES` asks), a cron written
/// `"<cron> @<unix seconds>"` (which only a test can send, through `wrangler dev
/// --test-scheduled`) runs `<cron>` as at that time, so that the suite fires the hourly pass of
/// a Monday and of another day whatever the day. Everywhere else the cron is taken as it is:
/// such a string names no configured cron and runs nothing.
pub fn scheduled_at(cron: &str, now: i64) -> (&str, i64) {
    #[cfg(feature = "e2e")]
    if let Some((cron, at)) = cron
        .rsplit_once(" @")
        .and_then(|(cron, at)| Some((cron, at.parse::<i64>().ok()?)))
    {
        return (cron, at);
    }
    (cron, now)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_scheduled_event_is_for_now() {
        assert_eq!(
            super::scheduled_at("15 * * * *", 1_796_004_000),
            ("15 * * * *", 1_796_004_000)
        );
    }

    /// Deployed builds (no `e2e` feature) never take a time from the cron.
    #[cfg(not(feature = "e2e"))]
    #[test]
    fn without_the_e2e_feature_a_time_in_the_cron_is_not_read() {
        assert_eq!(
            super::scheduled_at("15 * * * * @1796004600", 1_796_100_000),
            ("15 * * * * @1796004600", 1_796_100_000)
        );
    }

    #[cfg(feature = "e2e")]
    #[test]
    fn an_e2e_build_takes_the_time_from_the_cron() {
        assert_eq!(
            super::scheduled_at("15 * * * * @1796004600", 1_796_100_000),
            ("15 * * * *", 1_796_004_600)
        );
        assert_eq!(
            super::scheduled_at("15 * * * * @soon", 1_796_100_000),
            ("15 * * * * @soon", 1_796_100_000)
        );
    }

    #[test]
    fn stored_times_parse_back() {
        assert_eq!(
            super::parse_rfc3339(&super::rfc3339(1_795_000_000)),
            Some(1_795_000_000)
        );
        assert_eq!(super::parse_rfc3339("not a time"), None);
    }

    #[test]
    fn formats_utc_seconds() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_915_825), "2026-11-29T01:30:25Z");
    }

    #[test]
    fn backup_hours_name_the_utc_hour_and_mondays() {
        // 2026-11-30 is a Monday.
        let h = super::backup_hour(1_796_004_000 + 600);
        assert_eq!(
            h,
            super::BackupHour {
                key: "2026-11-30T02".into(),
                hour: 2,
                weekly_day: true
            }
        );
        assert!(!super::backup_hour(1_796_004_000 + 86_400).weekly_day);
    }
}
