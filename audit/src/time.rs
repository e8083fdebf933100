//! Timestamps are stored as fixed-width RFC3339 UTC text with milliseconds,
//! so they compare correctly as strings in both SQLite and PostgreSQL.

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};

use crate::AuditError;

pub fn format_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub type Now = DateTime<Utc>;

pub fn now() -> Now {
    Utc::now()
}

pub fn now_ts() -> String {
    format_ts(Utc::now())
}

/// Accepts RFC3339, a bare date (midnight UTC), or a relative age before
/// `now` (`90s`, `30m`, `1h`, `7d`, `2w`).
pub fn parse_time_spec(spec: &str, now: DateTime<Utc>) -> Result<String, AuditError> {
    let s = spec.trim();
    if let Some(age) = parse_age(s) {
        return Ok(format_ts(now - age));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(format_ts(t.with_timezone(&Utc)));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(format_ts(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()));
    }
    Err(AuditError::BadTime(spec.to_string()))
}

/// `7d` -> 7 days. None if not of the form NUMBER UNIT.
pub fn parse_age(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().ok()?;
    match unit {
        "s" => Duration::try_seconds(n),
        "m" | "min" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        "w" => Duration::try_weeks(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn relative_ages_count_back_from_now() {
        assert_eq!(parse_time_spec("1h", now()).unwrap(), "2025-03-10T11:00:00.000Z");
        assert_eq!(parse_time_spec("7d", now()).unwrap(), "2025-03-03T12:00:00.000Z");
        assert_eq!(parse_time_spec("30m", now()).unwrap(), "2025-03-10T11:30:00.000Z");
        assert_eq!(parse_time_spec("2w", now()).unwrap(), "2025-02-24T12:00:00.000Z");
    }

    #[test]
    fn absolute_times_normalise_to_utc_millis() {
        assert_eq!(
            parse_time_spec("2025-01-31T14:00:00+02:00", now()).unwrap(),
            "2025-01-31T12:00:00.000Z"
        );
        assert_eq!(
            parse_time_spec("2025-01-31", now()).unwrap(),
            "2025-01-31T00:00:00.000Z"
        );
    }

    #[test]
    fn garbage_is_rejected_with_the_accepted_forms() {
        let err = parse_time_spec("yesterday", now()).unwrap_err().to_string();
        assert!(err.contains("RFC3339") && err.contains("7d"), "{err}");
        assert!(parse_time_spec("5y", now()).is_err());
    }
}
