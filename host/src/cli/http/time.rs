//! Time as `lethe bulk` and `lethe policy replay` take and show it: time
//! flags (`--deleted-before 30d`, `--since 7d`), UTC times and durations for
//! people. The server speaks unix seconds; everything shown is UTC, so no
//! time zone database is needed. Calendar arithmetic, parsing and
//! formatting are `jiff`'s.

use jiff::fmt::friendly::{Designator, Spacing, SpanPrinter};
use jiff::{RoundMode, SignedDuration, Span, SpanRelativeTo, SpanRound, Timestamp, Unit};

/// A time flag as given: a point in time, or an age to subtract from now
/// when the request is made (so a preview or a replay made later means the
/// same age).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::cli) enum TimeArg {
    At(i64),
    Ago(i64),
}

impl TimeArg {
    /// Unix seconds (digits only), or an age in jiff's friendly duration
    /// format: `90d`, `12h`, `30m`, `45s`, `2w`, `1w 3d`, `1h30m`. An age
    /// in days and weeks counts days as 24 hours; years and months are
    /// refused (their length depends on the date), and so are negative
    /// ages (`-5d`, `5d ago`): "before 5 days ago" is what `5d` means.
    pub(in crate::cli) fn parse(s: &str) -> Result<TimeArg, String> {
        let bad = || {
            format!(
                "`{s}`: expected unix seconds (e.g. 1789000000) or an age such as \
                 90d, 12h, 30m, 45s, 2w or 1w 3d"
            )
        };
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(TimeArg::At).map_err(|_| bad());
        }
        let age = s
            .parse::<Span>()
            .and_then(|span| span.to_duration(SpanRelativeTo::days_are_24_hours()))
            .map_err(|_| bad())?;
        if age.is_negative() {
            return Err(bad());
        }
        Ok(TimeArg::Ago(age.as_secs()))
    }

    /// The unix time meant, `now` being when the request is made.
    pub(in crate::cli) fn resolve(self, now: i64) -> i64 {
        match self {
            TimeArg::At(t) => t,
            TimeArg::Ago(age) => now.saturating_sub(age),
        }
    }
}

/// `2026-09-21 14:13:20 UTC`. A time outside jiff's range (years -9999 to
/// 9999; no server sends one) is shown as the unix seconds it is.
pub(in crate::cli) fn utc(t: i64) -> String {
    match Timestamp::from_second(t) {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => format!("@{t} (unix seconds)"),
    }
}

/// A duration for people, its two largest units at most and the rest
/// dropped: `59s`, `14m 5s`, `2h`, `3d 4h`. Its sign is the caller's to
/// say ("in …", "… ago").
pub(in crate::cli) fn span(secs: i64) -> String {
    let secs = secs.saturating_abs();
    let smallest = match secs {
        0..3600 => Unit::Second,
        3600..86_400 => Unit::Minute,
        _ => Unit::Hour,
    };
    let rounding = SpanRound::new()
        .largest(Unit::Day)
        .smallest(smallest)
        .mode(RoundMode::Trunc)
        .days_are_24_hours();
    let printer = SpanPrinter::new()
        .designator(Designator::Compact)
        .spacing(Spacing::BetweenUnits);
    match Span::try_from(SignedDuration::from_secs(secs)).and_then(|s| s.round(rounding)) {
        Ok(s) => printer.span_to_string(&s),
        // Beyond jiff's span range (about 20 000 years): say it plainly.
        Err(_) => format!("{secs}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_flags() {
        assert_eq!(TimeArg::parse("1789000000"), Ok(TimeArg::At(1_789_000_000)));
        assert_eq!(TimeArg::parse("0"), Ok(TimeArg::At(0)));
        assert_eq!(TimeArg::parse("90d"), Ok(TimeArg::Ago(90 * 86_400)));
        assert_eq!(TimeArg::parse("12h"), Ok(TimeArg::Ago(12 * 3600)));
        assert_eq!(TimeArg::parse("30m"), Ok(TimeArg::Ago(1800)));
        assert_eq!(TimeArg::parse("45s"), Ok(TimeArg::Ago(45)));
        assert_eq!(TimeArg::parse("2w"), Ok(TimeArg::Ago(14 * 86_400)));
        assert_eq!(TimeArg::parse("1w 3d"), Ok(TimeArg::Ago(10 * 86_400)));
        assert_eq!(TimeArg::parse("1h30m"), Ok(TimeArg::Ago(5400)));
        for bad in [
            "",
            "d",
            "-5",
            "-5d",
            "5d ago",
            "1.5d",
            "90D",
            "90y",
            "2mo",
            "9x9d",
            "99999999999999999999d",
            "1é",
        ] {
            assert!(TimeArg::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            TimeArg::Ago(90 * 86_400).resolve(1_790_000_000),
            1_790_000_000 - 7_776_000
        );
        assert_eq!(TimeArg::At(5).resolve(1_790_000_000), 5);
    }

    #[test]
    fn times_and_durations() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(-86_400), "1969-12-31 00:00:00 UTC");
        assert_eq!(utc(1_790_000_000), "2026-09-21 14:13:20 UTC");
        assert_eq!(utc(i64::MAX), format!("@{} (unix seconds)", i64::MAX));
        assert_eq!(span(59), "59s");
        assert_eq!(span(845), "14m 5s");
        assert_eq!(span(-840), "14m");
        assert_eq!(span(7_259), "2h");
        assert_eq!(span(90_000), "1d 1h");
        assert_eq!(span(93_599), "1d 1h");
        assert_eq!(span(0), "0s");
        assert_eq!(span(i64::MIN), format!("{}s", i64::MAX));
    }
}
