//! Window arithmetic in wall-clock milliseconds since the epoch.
//!
//! A calendar window is the UTC minute, hour, day or month `now` falls in:
//! it resets at the boundary, exactly. A rolling window is the last
//! minute, hour, day or 30 days, counted in [`SLICES`] slices: usage leaves
//! the window a slice at a time, so it is counted up to one slice (1/60 of
//! the window) longer than the window, never shorter.

use time::{Date, Month, OffsetDateTime, Time};

use super::config::WindowUnit;

/// Slices per rolling window.
pub const SLICES: i64 = 60;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// `[start, end)` in ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: i64,
    pub end: i64,
}

/// The calendar window `now` falls in.
pub fn calendar(unit: WindowUnit, now: i64) -> Span {
    let fixed = |len: i64| {
        let start = now.div_euclid(len) * len;
        Span {
            start,
            end: start + len,
        }
    };
    match unit {
        WindowUnit::Minute => fixed(MINUTE),
        WindowUnit::Hour => fixed(HOUR),
        WindowUnit::Day => fixed(DAY),
        WindowUnit::Month => {
            let at = OffsetDateTime::from_unix_timestamp(now.div_euclid(1000)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            let first = |year: i32, month: Month| {
                let date = Date::from_calendar_date(year, month, 1).expect("the 1st exists in every month");
                date.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp() * 1000
            };
            let (next_year, next_month) = match at.month() {
                Month::December => (at.year() + 1, Month::January),
                m => (at.year(), m.next()),
            };
            Span {
                start: first(at.year(), at.month()),
                end: first(next_year, next_month),
            }
        }
    }
}

/// The length of a rolling window.
pub fn rolling_len(unit: WindowUnit) -> i64 {
    match unit {
        WindowUnit::Minute => MINUTE,
        WindowUnit::Hour => HOUR,
        WindowUnit::Day => DAY,
        WindowUnit::Month => 30 * DAY,
    }
}

/// The start of the rolling slice `now` falls in.
pub fn slice_start(unit: WindowUnit, now: i64) -> i64 {
    let len = rolling_len(unit) / SLICES;
    now.div_euclid(len) * len
}

/// When usage recorded in the slice starting at `start` leaves the window.
pub fn slice_expiry(unit: WindowUnit, start: i64) -> i64 {
    start + rolling_len(unit) / SLICES + rolling_len(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        let t = OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).unwrap();
        t.unix_timestamp() * 1000 + i64::from(t.millisecond())
    }

    #[test]
    fn calendar_windows_start_and_end_on_utc_boundaries() {
        let now = ms("2027-01-15T08:41:07.250Z");
        assert_eq!(
            calendar(WindowUnit::Minute, now),
            Span {
                start: ms("2027-01-15T08:41:00Z"),
                end: ms("2027-01-15T08:42:00Z")
            }
        );
        assert_eq!(
            calendar(WindowUnit::Hour, now),
            Span {
                start: ms("2027-01-15T08:00:00Z"),
                end: ms("2027-01-15T09:00:00Z")
            }
        );
        assert_eq!(
            calendar(WindowUnit::Day, now),
            Span {
                start: ms("2027-01-15T00:00:00Z"),
                end: ms("2027-01-16T00:00:00Z")
            }
        );
    }

    #[test]
    fn a_month_window_runs_from_the_first_to_the_next_first_whatever_its_length() {
        let span = |at: &str| calendar(WindowUnit::Month, ms(at));
        assert_eq!(
            span("2028-02-29T23:59:59.999Z"),
            Span {
                start: ms("2028-02-01T00:00:00Z"),
                end: ms("2028-03-01T00:00:00Z")
            }
        );
        assert_eq!(
            span("2027-12-31T12:00:00Z"),
            Span {
                start: ms("2027-12-01T00:00:00Z"),
                end: ms("2028-01-01T00:00:00Z")
            }
        );
        // The boundary instant belongs to the new month.
        assert_eq!(span("2027-03-01T00:00:00Z").start, ms("2027-03-01T00:00:00Z"));
    }

    #[test]
    fn a_rolling_slice_leaves_the_window_one_slice_after_the_window_length() {
        let now = ms("2027-01-15T08:41:07.250Z");
        let start = slice_start(WindowUnit::Hour, now);
        assert_eq!(start, ms("2027-01-15T08:41:00Z"), "an hour's slices are a minute");
        assert_eq!(slice_expiry(WindowUnit::Hour, start), ms("2027-01-15T09:42:00Z"));
        assert_eq!(rolling_len(WindowUnit::Month), 30 * DAY);
    }
}
