//! Occurrences of the time-based triggers (SPEC §3): `date_reached` and `consent_expiring`.
//!
//! Nobody sends an event for "it is John's birthday": Hookline computes, from each stored
//! contact snapshot, when such a trigger fires. This module is that computation, as pure
//! functions (no clock, no storage): a [`TimeRule`] is the trigger, parsed and checked; an
//! [`Occurrence`] is one firing of it for one contact.
//!
//! # The nominal date is the identity
//!
//! An occurrence has two parts: its nominal `date` (the contact's date plus `offsetDays`, or this
//! year's anniversary plus `offsetDays` when `yearly`) and the instant `at` it fires. A scenario
//! fires at most once per (contact, `date`), so the date, not the instant, is what deduplicates:
//! a time zone database update, or a trigger whose `time` is edited, moves `at` but must not make
//! the same birthday fire twice; and a yearly trigger needs one identity per year, which the date
//! gives for free.
//!
//! # Wall clock to instant (DST)
//!
//! `at` is `time` on `date` in `timezone`. Most days that wall-clock time exists exactly once.
//! Twice a year in many zones it does not:
//! - **gap** (the clock jumps forward, e.g. 02:00 → 03:00 in Montreal in March; 30 minutes on
//!   Australia/Lord_Howe; a whole day on Pacific/Apia, which skipped 2011-12-30): the time does
//!   not exist that day and the occurrence fires at the first instant after the gap, i.e. the
//!   transition itself (02:30 in Montreal on 2026-03-08 fires at 03:00 EDT = 07:00Z);
//! - **fold** (the clock goes back, e.g. 02:00 → 01:00 in November): the time occurs twice and
//!   the occurrence fires once, at the earlier instant (01:30 EDT, not 01:30 EST).
//!
//! # Yearly rules
//!
//! Year `Y`'s occurrence is the anniversary of the contact's date in `Y` (29 February becomes
//! 28 February in a non-leap year) plus `offsetDays`, which may land in `Y - 1` or `Y + 1`
//! (1 January with `offsetDays: -1` gives 31 December of `Y - 1`: still year `Y`'s occurrence).
//! Years start with the contact's own year (a date in the future has no anniversary before it).
//! Anniversaries are 365 or 366 days apart and `offsetDays` is the same every year, so the
//! occurrences are strictly increasing, exactly one per year.
//!
//! # Late occurrences
//!
//! An occurrence that becomes known after its time (a new snapshot, a scenario activated today)
//! still fires, at once, if it is less than [`LATE_WINDOW`] old; an older one is skipped
//! ([`TimeRule::pending`]). Dates or instants outside jiff's range give `None`, never a panic.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Span, Timestamp};
use serde_json::{Map, Value};

use super::catalogue::FieldKey;
use super::trigger::TriggerDef;
use super::{Invalid, join};

/// A time-based trigger, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeRule {
    /// The date watched: `field` for `date_reached`; `consentExpiration` for `consent_expiring`.
    pub field: FieldKey,
    /// Days added to the contact's date: `offsetDays` (−365..=365), or −`daysBefore` (0..=365).
    pub offset_days: i32,
    /// Every year on the anniversary (`date_reached` only; `consent_expiring` never).
    pub yearly: bool,
    /// The wall-clock time it fires at (`time`, default 09:00).
    pub time: Time,
    /// The zone of `time` (`timezone`, an IANA name, default UTC).
    pub tz: TimeZone,
}

/// One occurrence of a rule for one contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Occurrence {
    /// The nominal date: the contact's date (this year's anniversary when yearly) plus the offset.
    /// It is the occurrence's identity: a scenario fires at most once per (contact, date).
    pub date: Date,
    /// When it fires: `time` on `date` in `tz` (see the module docs for DST gaps and folds).
    pub at: Timestamp,
}

/// How old an occurrence may be when it becomes known and still fire (SPEC: a rolling 24 hours).
pub const LATE_WINDOW: SignedDuration = SignedDuration::from_hours(24);

const INVALID: &str = "invalid_trigger";
const DATE_REACHED_KEYS: &[&str] = &["field", "offsetDays", "yearly", "time", "timezone"];
const CONSENT_EXPIRING_KEYS: &[&str] = &["daysBefore", "time", "timezone"];
const MAX_DAYS: i64 = 365;

impl TimeRule {
    /// `Ok(None)` for event triggers; the rule for `date_reached` / `consent_expiring`;
    /// `Err(Invalid)` naming the key at `path` (e.g. `trigger.offsetDays`), code
    /// `invalid_trigger` (`missing_field` for a `date_reached` without `field`).
    pub fn from_trigger(def: &TriggerDef, path: &str) -> Result<Option<TimeRule>, Invalid> {
        let allowed = match def.kind.as_str() {
            "date_reached" => DATE_REACHED_KEYS,
            "consent_expiring" => CONSENT_EXPIRING_KEYS,
            _ => return Ok(None),
        };
        if let Some(key) = def.filter.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Invalid::new(
                INVALID,
                join(path, key),
                format!(
                    "is not a key of `{}` triggers (allowed: {})",
                    def.kind,
                    allowed.join(", ")
                ),
            ));
        }
        // A key set to null is a key left out.
        let get = |key: &str| def.filter.get(key).filter(|v| !v.is_null());
        let bad = |key: &str, message: &str| Invalid::new(INVALID, join(path, key), message);

        let time = match get("time") {
            None => Time::constant(9, 0, 0, 0),
            Some(v) => v.as_str().and_then(parse_hh_mm).ok_or_else(|| {
                bad(
                    "time",
                    "must be a time of day written HH:MM (00:00 to 23:59)",
                )
            })?,
        };
        let tz = match get("timezone") {
            None => TimeZone::UTC,
            Some(v) => v.as_str().and_then(zone).ok_or_else(|| {
                bad(
                    "timezone",
                    "must be an IANA time zone name, e.g. Europe/Paris or UTC",
                )
            })?,
        };

        if def.kind == "consent_expiring" {
            let days_before = days(get("daysBefore"), 0)
                .ok_or_else(|| bad("daysBefore", "must be an integer from 0 to 365"))?;
            let field = FieldKey::parse("consentExpiration")
                .ok_or_else(|| bad("daysBefore", "the catalogue has no consentExpiration"))?;
            return Ok(Some(TimeRule {
                field,
                offset_days: -days_before,
                yearly: false,
                time,
                tz,
            }));
        }

        let field = match get("field") {
            None => {
                return Err(Invalid::new(
                    "missing_field",
                    join(path, "field"),
                    "is required: the date key of the catalogue to watch, e.g. birthDate",
                ));
            }
            Some(v) => v.as_str().and_then(date_key).ok_or_else(|| {
                bad(
                    "field",
                    "must be a date key of the catalogue (e.g. birthDate, consentExpiration) \
                     or customFields.NAME",
                )
            })?,
        };
        let offset_days = days(get("offsetDays"), -MAX_DAYS)
            .ok_or_else(|| bad("offsetDays", "must be an integer from -365 to 365"))?;
        let yearly = match get("yearly") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| bad("yearly", "must be true or false"))?,
        };
        Ok(Some(TimeRule {
            field,
            offset_days,
            yearly,
            time,
            tz,
        }))
    }

    /// The contact's date of `field`, or None (absent, null, not a date).
    ///
    /// `YYYY-MM-DD` is that date; an RFC 3339 date-time gives its date as written (the local date
    /// of whoever wrote it: `2026-01-15T23:30:00-05:00` is the 15th, not the UTC 16th).
    pub fn date_of(&self, snapshot: &Map<String, Value>) -> Option<Date> {
        let text = self.field.read(snapshot)?.as_str()?.trim();
        if text.len() == 10 {
            return parse_ymd(text);
        }
        let date = parse_ymd(text.get(..10)?)?;
        text.parse::<Timestamp>().is_ok().then_some(date)
    }

    /// The first occurrence (of this base date) firing strictly after `after`.
    pub fn first_after(&self, base: Date, after: Timestamp) -> Option<Occurrence> {
        if !self.yearly {
            return self
                .occurrence_in(base, base.year())
                .filter(|o| o.at > after);
        }
        // Year Y's occurrence is dated within Y-1..=Y+1 and fires at most a day after its date
        // (the longest gap, Apia's, is a day): the one of `after`'s year minus 3 is before
        // `after`, the one of its year plus 2 after it. Occurrences increase with the year, so
        // the first of these years (from the base date's own) to fire after `after` is the
        // answer.
        let year = i32::from(self.tz.to_datetime(after).year());
        let first = (year - 3).max(i32::from(base.year()));
        (first..=first + 6)
            .filter_map(|y| i16::try_from(y).ok())
            .filter_map(|y| self.occurrence_in(base, y))
            .find(|o| o.at > after)
    }

    /// The occurrence of this base date whose nominal date is `date`, if the rule has one
    /// (how a firing checks that a stored occurrence is still the contact's, whatever instant
    /// it was stored with).
    pub fn occurrence_on(&self, base: Date, date: Date) -> Option<Occurrence> {
        if !self.yearly {
            return self
                .occurrence_in(base, base.year())
                .filter(|o| o.date == date);
        }
        let year = i32::from(date.year());
        ((year - 1)..=(year + 1))
            .filter(|y| *y >= i32::from(base.year()))
            .filter_map(|y| i16::try_from(y).ok())
            .filter_map(|y| self.occurrence_in(base, y))
            .find(|o| o.date == date)
    }

    /// What to schedule for a snapshot that becomes known at `now` (a new snapshot, an
    /// activation's backfill): the first occurrence younger than [`LATE_WINDOW`], i.e.
    /// `first_after(base, now - 24h)`. None when the contact has no such date or no occurrence
    /// is left (a once-only date long past).
    pub fn pending(&self, snapshot: &Map<String, Value>, now: Timestamp) -> Option<Occurrence> {
        let base = self.date_of(snapshot)?;
        let after = now.checked_sub(LATE_WINDOW).unwrap_or(Timestamp::MIN);
        self.first_after(base, after)
    }

    /// After `fired` fired: the next one (yearly: next year's, from the snapshot's current
    /// date), or None (a rule that is not yearly fires once).
    pub fn after_fired(
        &self,
        snapshot: &Map<String, Value>,
        fired: &Occurrence,
    ) -> Option<Occurrence> {
        if !self.yearly {
            return None;
        }
        self.first_after(self.date_of(snapshot)?, fired.at)
    }

    /// Year `year`'s occurrence of `base` (for a rule that is not yearly, `base.year()`'s is the
    /// only one). None before the base date's year or out of jiff's range.
    fn occurrence_in(&self, base: Date, year: i16) -> Option<Occurrence> {
        if year < base.year() {
            return None;
        }
        let anniversary = Date::new(year, base.month(), base.day())
            // 29 February in a year that has none.
            .or_else(|_| Date::new(year, base.month(), 28))
            .ok()?;
        let date = anniversary
            .checked_add(Span::new().try_days(self.offset_days).ok()?)
            .ok()?;
        let at = fire_at(&self.tz, date.to_datetime(self.time))?;
        Some(Occurrence { date, at })
    }
}

/// The instant a wall-clock `dt` of `tz` fires at: the earlier instant of a fold; the first
/// instant after a gap (the transition that skipped `dt`).
fn fire_at(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        AmbiguousOffset::Fold { before, after } => Some(
            before
                .to_timestamp(dt)
                .ok()?
                .min(after.to_timestamp(dt).ok()?),
        ),
        AmbiguousOffset::Gap { before, after } => {
            // `dt` read with the offset after the gap is an instant before the transition; read
            // with the offset before it, an instant at or after it. The transition between them
            // where the wall clock jumps past `dt` is the answer.
            let low = after.to_timestamp(dt).ok()?;
            let high = before.to_timestamp(dt).ok()?;
            let transition = tz
                .following(low)
                .map(|t| t.timestamp())
                .take_while(|&ts| ts <= high)
                .find(|&ts| tz.to_datetime(ts) > dt);
            Some(transition.unwrap_or(high))
        }
    }
}

/// A `daysBefore` / `offsetDays` value: an integer from `min` to 365; 0 when left out.
fn days(value: Option<&Value>, min: i64) -> Option<i32> {
    let Some(value) = value else { return Some(0) };
    value
        .as_i64()
        .filter(|n| (min..=MAX_DAYS).contains(n))
        .and_then(|n| i32::try_from(n).ok())
}

/// A catalogue key that holds a date, or one custom field (whose type the catalogue ignores).
fn date_key(key: &str) -> Option<FieldKey> {
    match FieldKey::parse(key)? {
        FieldKey::Known(def) if def.is_date => Some(FieldKey::Known(def)),
        custom @ FieldKey::Custom(_) => Some(custom),
        FieldKey::Known(_) => None,
    }
}

/// An IANA zone name of the bundled database (and `UTC`).
fn zone(name: &str) -> Option<TimeZone> {
    if name == "UTC" {
        return Some(TimeZone::UTC);
    }
    jiff::tz::db().get(name).ok()
}

/// `HH:MM`, 24-hour, exactly five characters.
fn parse_hh_mm(text: &str) -> Option<Time> {
    let b = text.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return None;
    }
    let hour = i8::try_from(digits(&b[..2])?).ok()?;
    let minute = i8::try_from(digits(&b[3..])?).ok()?;
    Time::new(hour, minute, 0, 0).ok()
}

/// `YYYY-MM-DD`, exactly.
fn parse_ymd(text: &str) -> Option<Date> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    Date::new(
        i16::try_from(digits(&b[..4])?).ok()?,
        i8::try_from(digits(&b[5..7])?).ok()?,
        i8::try_from(digits(&b[8..])?).ok()?,
    )
    .ok()
}

/// ASCII digits as a number; None for anything else (or nothing).
fn digits(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 9 {
        return None;
    }
    bytes.iter().try_fold(0u32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

#[cfg(test)]
mod tests;
