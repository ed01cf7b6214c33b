//! Local time for humans. The local UTC offset can only be read safely while the process is
//! single-threaded, so `main` captures it once before starting the runtime.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

static LOCAL_OFFSET: OnceLock<UtcOffset> = OnceLock::new();

const FORMAT: &[FormatItem<'static>] = format_description!(
    "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
);

/// Testing aid, deliberately undocumented in `--help`: Unix seconds that postflight takes as
/// "now" for policy (`remind_every`), outbox timestamps and retry times, so tests can let days
/// pass in an instant. Read here and nowhere else.
pub const TEST_NOW_ENV: &str = "POSTFLIGHT_TEST_NOW";

static NOW_OVERRIDE: OnceLock<Option<SystemTime>> = OnceLock::new();

/// The current time for every decision postflight makes: the system clock, unless
/// [`TEST_NOW_ENV`] is set to Unix seconds.
pub fn now() -> SystemTime {
    let fixed = NOW_OVERRIDE.get_or_init(|| {
        std::env::var(TEST_NOW_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    });
    fixed.unwrap_or_else(SystemTime::now)
}

/// [`now`] in Unix seconds.
pub fn now_unix() -> u64 {
    unix(now())
}

/// Reads the local offset; call before any thread is started. Falls back to UTC.
pub fn init_local_offset() {
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let _ = LOCAL_OFFSET.set(offset);
}

/// `2026-12-04 03:00:12 +0100`.
pub fn format_local(at: SystemTime) -> String {
    let offset = LOCAL_OFFSET.get().copied().unwrap_or(UtcOffset::UTC);
    OffsetDateTime::from(at)
        .to_offset(offset)
        .format(FORMAT)
        .unwrap_or_else(|_| humantime::format_rfc3339_seconds(at).to_string())
}

/// `1h 2m 3s`, or milliseconds for runs under a second.
pub fn format_elapsed(elapsed: Duration) -> String {
    if elapsed < Duration::from_secs(1) {
        return format!("{}ms", elapsed.as_millis());
    }
    humantime::format_duration(Duration::from_secs(elapsed.as_secs())).to_string()
}

/// Parses `--started`/`--finished`: `@UNIX-SECONDS`, plain Unix seconds, or RFC 3339.
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix('@').unwrap_or(trimmed);
    if let Ok(seconds) = digits.parse::<u64>() {
        return Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds));
    }
    humantime::parse_rfc3339_weak(trimmed)
        .or_else(|_| OffsetDateTime::parse(trimmed, &time::format_description::well_known::Rfc3339).map(SystemTime::from).map_err(|_| ()))
        .map_err(|_| format!("'{text}' is not a time: use RFC 3339 (2026-12-04T03:00:00Z or 2026-12-04T03:00:00+01:00) or @UNIX-SECONDS"))
}

/// Unix seconds of a time (0 before 1970).
pub fn unix(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times_in_the_documented_forms() {
        let t = parse_time("@1700000000").unwrap();
        assert_eq!(unix(t), 1_700_000_000);
        assert_eq!(
            unix(parse_time("2023-11-14T22:13:20Z").unwrap()),
            1_700_000_000
        );
        assert_eq!(
            unix(parse_time("2023-11-14T23:13:20+01:00").unwrap()),
            1_700_000_000
        );
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn elapsed_is_humane() {
        assert_eq!(format_elapsed(Duration::from_millis(250)), "250ms");
        assert_eq!(format_elapsed(Duration::from_millis(3_723_400)), "1h 2m 3s");
    }
}
