//! CronJob schedules: standard five-field cron (minute, hour, day of month, month, day of
//! week, with day of month and day of week matched as either, as Vixie cron and Kubernetes
//! do), the `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight` and
//! `@hourly` macros, in UTC or an IANA `timeZone`; and `@every DURATION` (`@every 1h30m`), as
//! the parser Kubernetes uses accepts it.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A parsed schedule: cron fields in a time zone, or `@every` a fixed interval.
#[derive(Debug, Clone)]
pub enum Schedule {
    Cron {
        cron: Box<croner::Cron>,
        zone: Tz,
    },
    /// `@every 1h30m`: runs that far apart, counted from the last one (or the CronJob's
    /// creation), whole seconds, at least one.
    Every(chrono::Duration),
}

impl Schedule {
    /// `schedule` in `time_zone` (UTC when `None`); the reason when either is not valid.
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Schedule, String> {
        let text = schedule.trim();
        if text.starts_with("TZ=") || text.starts_with("CRON_TZ=") {
            return Err(
                "a time zone in the schedule is not supported; set spec.timeZone".to_string(),
            );
        }
        if let Some(every) = text.strip_prefix("@every ") {
            let interval = humantime::parse_duration(every.trim())
                .map_err(|e| format!("@every {:?}: {e}", every.trim()))?;
            let secs = i64::try_from(interval.as_secs()).unwrap_or(i64::MAX).max(1);
            return Ok(Schedule::Every(chrono::Duration::seconds(secs)));
        }
        let text = if text.eq_ignore_ascii_case("@midnight") {
            "0 0 * * *"
        } else {
            text
        };
        if !text.starts_with('@') && text.split_whitespace().count() != 5 {
            return Err(format!(
                "expected exactly 5 fields (minute hour day-of-month month day-of-week), found {}",
                text.split_whitespace().count()
            ));
        }
        let cron = croner::Cron::new(text)
            .parse()
            .map_err(|e| format!("{e}"))?;
        let zone = match time_zone {
            None => Tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| format!("unknown time zone {name:?}"))?,
        };
        Ok(Schedule::Cron {
            cron: Box::new(cron),
            zone,
        })
    }

    /// The first time the schedule fires strictly after `t`.
    ///
    /// croner searches wall-clock times and maps an ambiguous one (the hour a zone repeats
    /// when its clocks go back) to its earlier instant, which can lie before `t`; such
    /// times are stepped over, so the answer always moves forward (the repeated hour runs
    /// once, in its first pass).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (cron, zone) = match self {
            Schedule::Every(interval) => {
                // Whole seconds, as robfig/cron's constant delay (Kubernetes' parser) does.
                let whole = DateTime::from_timestamp(t.timestamp(), 0)?;
                return whole.checked_add_signed(*interval);
            }
            Schedule::Cron { cron, zone } => (cron, zone),
        };
        let mut from = t.with_timezone(zone);
        // A repeated hour has at most 60 per-minute times to step over.
        for _ in 0..120 {
            let next = cron.find_next_occurrence(&from, false).ok()?;
            if next.with_timezone(&Utc) > t {
                return Some(next.with_timezone(&Utc));
            }
            // Search on from the wall-clock time found, an hour of local time at most.
            from = next;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn schedules_fire_as_cron_does() {
        let every_minute = Schedule::parse("* * * * *", None).unwrap();
        assert_eq!(
            every_minute.next_after(at("2026-01-01T10:00:30Z")),
            Some(at("2026-01-01T10:01:00Z"))
        );
        let daily = Schedule::parse("@midnight", None).unwrap();
        assert_eq!(
            daily.next_after(at("2026-01-01T10:00:00Z")),
            Some(at("2026-01-02T00:00:00Z"))
        );
        let hourly = Schedule::parse("@hourly", None).unwrap();
        assert_eq!(
            hourly.next_after(at("2026-01-01T10:00:00Z")),
            Some(at("2026-01-01T11:00:00Z"))
        );
        // 09:00 in Berlin is 08:00 UTC in winter.
        let berlin = Schedule::parse("0 9 * * 1-5", Some("Europe/Berlin")).unwrap();
        assert_eq!(
            berlin.next_after(at("2026-01-02T09:00:00Z")),
            Some(at("2026-01-05T08:00:00Z")),
            "Friday after nine goes to Monday"
        );
        // Day of month and day of week: either matches.
        let either = Schedule::parse("0 0 13 * 5", None).unwrap();
        assert_eq!(
            either.next_after(at("2026-02-01T00:00:00Z")),
            Some(at("2026-02-06T00:00:00Z")),
            "the first Friday comes before the 13th"
        );
    }

    #[test]
    fn the_hour_clocks_go_back_runs_once_and_time_only_moves_forward() {
        // Berlin went from 03:00 CEST back to 02:00 CET on 2026-10-25 (01:00 UTC).
        let every_5 = Schedule::parse("*/5 * * * *", Some("Europe/Berlin")).unwrap();
        let mut t = at("2026-10-24T23:50:00Z");
        let mut seen = Vec::new();
        while t < at("2026-10-25T02:30:00Z") {
            let next = every_5.next_after(t).expect("a next time");
            assert!(next > t, "{next} after {t}");
            seen.push(next);
            t = next;
        }
        // In the second 02:xx (01:00Z to 02:00Z) nothing fires; 03:00 CET is 02:00Z.
        assert!(seen.contains(&at("2026-10-25T00:55:00Z")));
        assert!(
            !seen
                .iter()
                .any(|s| *s > at("2026-10-25T01:00:00Z") && *s < at("2026-10-25T02:00:00Z"))
        );
        assert!(seen.contains(&at("2026-10-25T02:00:00Z")));
        // Asked from inside the repeated hour, the answer is still ahead.
        let inside = at("2026-10-25T01:10:00Z");
        assert!(every_5.next_after(inside).unwrap() > inside);
    }

    #[test]
    fn every_counts_from_the_time_given() {
        let every = Schedule::parse("@every 1h30m", None).unwrap();
        assert_eq!(
            every.next_after(at("2026-01-01T10:00:10Z")),
            Some(at("2026-01-01T11:30:10Z"))
        );
        assert!(Schedule::parse("@every soon", None).is_err());
    }

    #[test]
    fn bad_schedules_say_why() {
        for (schedule, zone, why) in [
            ("* * * *", None, "exactly 5 fields"),
            ("61 * * * *", None, ""),
            ("TZ=UTC * * * * *", None, "spec.timeZone"),
            ("* * * * *", Some("Mars/Olympus"), "unknown time zone"),
        ] {
            let err = Schedule::parse(schedule, zone).unwrap_err();
            assert!(err.contains(why), "{schedule}: {err}");
        }
    }
}
