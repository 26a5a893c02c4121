#![allow(clippy::unwrap_used)]

use super::*;
use jiff::civil::date;
use proptest::prelude::*;
use serde_json::json;

fn trigger(v: Value) -> TriggerDef {
    serde_json::from_value(v).unwrap()
}

fn rule(v: Value) -> TimeRule {
    TimeRule::from_trigger(&trigger(v), "trigger")
        .unwrap()
        .unwrap()
}

fn error(v: Value) -> (&'static str, String) {
    let e = TimeRule::from_trigger(&trigger(v), "trigger").unwrap_err();
    (e.code, e.field.unwrap_or_default())
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn snap(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// When `time` on `day` in `zone` fires (a once-only rule on that very date).
fn fires(zone: &str, day: Date, time: &str) -> Timestamp {
    let r = rule(json!({"type": "date_reached", "field": "birthDate",
                        "time": time, "timezone": zone}));
    let occ = r.first_after(day, Timestamp::MIN).unwrap();
    assert_eq!(occ.date, day, "the nominal date stays the identity");
    occ.at
}

fn days_between(a: Date, b: Date) -> i64 {
    i64::from(a.until(b).unwrap().get_days())
}

// ---- fixed cases: DST ----

#[test]
fn montreal_spring_gap_fires_when_the_clock_lands_at_three() {
    let day = date(2026, 3, 8);
    assert_eq!(
        fires("America/Montreal", day, "01:59"),
        ts("2026-03-08T06:59:00Z")
    );
    assert_eq!(
        fires("America/Montreal", day, "02:00"),
        ts("2026-03-08T07:00:00Z")
    );
    assert_eq!(
        fires("America/Montreal", day, "02:30"),
        ts("2026-03-08T07:00:00Z")
    );
    assert_eq!(
        fires("America/Montreal", day, "03:00"),
        ts("2026-03-08T07:00:00Z")
    );
    assert_eq!(
        fires("America/Montreal", day, "03:01"),
        ts("2026-03-08T07:01:00Z")
    );
}

#[test]
fn montreal_fall_fold_fires_once_at_the_earlier_instant() {
    // 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST).
    let day = date(2026, 11, 1);
    assert_eq!(
        fires("America/Montreal", day, "01:30"),
        ts("2026-11-01T05:30:00Z")
    );
    assert_eq!(
        fires("America/Montreal", day, "02:00"),
        ts("2026-11-01T07:00:00Z")
    );
}

#[test]
fn paris_gap_and_fold() {
    assert_eq!(
        fires("Europe/Paris", date(2026, 3, 29), "02:30"),
        ts("2026-03-29T01:00:00Z")
    );
    assert_eq!(
        fires("Europe/Paris", date(2026, 10, 25), "02:30"),
        ts("2026-10-25T00:30:00Z")
    );
    assert_eq!(
        fires("Europe/Paris", date(2026, 10, 25), "03:00"),
        ts("2026-10-25T02:00:00Z")
    );
}

#[test]
fn lord_howe_half_hour_dst_from_the_tzdb() {
    let tz = TimeZone::get("Australia/Lord_Howe").unwrap();
    let end = ts("2027-01-01T00:00:00Z");
    let transitions: Vec<(Timestamp, jiff::tz::Offset)> = tz
        .following(ts("2026-01-01T00:00:00Z"))
        .take_while(|t| t.timestamp() < end)
        .map(|t| (t.timestamp(), t.offset()))
        .collect();
    assert_eq!(transitions.len(), 2, "{transitions:?}");
    let half_hour = SignedDuration::from_mins(30);

    // Back to +10:30 in April: 02:00 (+11) becomes 01:30; 01:30..02:00 happens twice.
    let (back, std_offset) = transitions[0];
    assert_eq!(std_offset, jiff::tz::Offset::from_seconds(37_800).unwrap());
    let before = tz.to_datetime(back - SignedDuration::from_nanos(1));
    assert_eq!(before.date(), date(2026, 4, 5));
    assert_eq!(back, ts("2026-04-04T15:00:00Z"));
    let earlier = back - half_hour + SignedDuration::from_mins(15); // 01:45 +11
    assert_eq!(
        fires("Australia/Lord_Howe", date(2026, 4, 5), "01:45"),
        earlier
    );

    // Forward to +11 in October: 02:00 (+10:30) becomes 02:30; 02:00..02:30 does not exist.
    let (forward, dst_offset) = transitions[1];
    assert_eq!(dst_offset, jiff::tz::Offset::from_seconds(39_600).unwrap());
    assert_eq!(tz.to_datetime(forward), date(2026, 10, 4).at(2, 30, 0, 0));
    assert_eq!(forward, ts("2026-10-03T15:30:00Z"));
    for time in ["02:00", "02:15", "02:29", "02:30"] {
        assert_eq!(
            fires("Australia/Lord_Howe", date(2026, 10, 4), time),
            forward,
            "{time}"
        );
    }
    assert_eq!(
        fires("Australia/Lord_Howe", date(2026, 10, 4), "01:59"),
        forward - SignedDuration::from_mins(1)
    );
}

#[test]
fn apia_skipped_day_fires_when_the_next_day_starts() {
    // Samoa went from -10 to +14 at the end of 2011-12-29: 2011-12-30 never happened there.
    let at = fires("Pacific/Apia", date(2011, 12, 30), "09:00");
    assert_eq!(at, ts("2011-12-30T10:00:00Z"));
    let tz = TimeZone::get("Pacific/Apia").unwrap();
    assert_eq!(tz.to_datetime(at), date(2011, 12, 31).at(0, 0, 0, 0));
}

// ---- fixed cases: dates and years ----

#[test]
fn february_29_fires_on_the_28th_in_other_years() {
    let r = rule(json!({"type": "date_reached", "field": "birthDate", "yearly": true}));
    let contact = snap(json!({"birthDate": "1996-02-29"}));
    let first = r.pending(&contact, ts("2027-01-01T00:00:00Z")).unwrap();
    assert_eq!(
        first,
        Occurrence {
            date: date(2027, 2, 28),
            at: ts("2027-02-28T09:00:00Z")
        }
    );
    let second = r.after_fired(&contact, &first).unwrap();
    assert_eq!(
        second,
        Occurrence {
            date: date(2028, 2, 29),
            at: ts("2028-02-29T09:00:00Z")
        }
    );
    let third = r.after_fired(&contact, &second).unwrap();
    assert_eq!(third.date, date(2029, 2, 28));
}

#[test]
fn an_offset_may_cross_a_year_boundary() {
    let r = rule(
        json!({"type": "date_reached", "field": "customFields.since",
                        "offsetDays": -1, "yearly": true}),
    );
    let base = date(2000, 1, 1);
    let occ = r.first_after(base, ts("2026-06-01T00:00:00Z")).unwrap();
    assert_eq!(occ.date, date(2026, 12, 31), "2027's occurrence");
    assert_eq!(occ.at, ts("2026-12-31T09:00:00Z"));
    let contact = snap(json!({"customFields": {"since": "2000-01-01"}}));
    assert_eq!(
        r.after_fired(&contact, &occ).unwrap().date,
        date(2027, 12, 31)
    );
    // The first year is the date's own: its occurrence is the day before the date.
    assert_eq!(
        r.first_after(base, ts("1990-01-01T00:00:00Z"))
            .unwrap()
            .date,
        date(1999, 12, 31)
    );
}

#[test]
fn a_yearly_birthday_of_1950_fires_this_year() {
    let r = rule(
        json!({"type": "date_reached", "field": "birthDate", "yearly": true,
                        "time": "08:15", "timezone": "Europe/Paris"}),
    );
    let contact = snap(json!({"birthDate": "1950-07-14"}));
    let occ = r.pending(&contact, ts("2026-05-01T00:00:00Z")).unwrap();
    assert_eq!(
        occ,
        Occurrence {
            date: date(2026, 7, 14),
            at: ts("2026-07-14T06:15:00Z")
        }
    );
    // Known later that day, less than 24 hours after: still fires (at once).
    assert_eq!(r.pending(&contact, ts("2026-07-15T06:00:00Z")), Some(occ));
    // Known the day after: next year's.
    assert_eq!(
        r.pending(&contact, ts("2026-07-15T07:00:00Z"))
            .unwrap()
            .date,
        date(2027, 7, 14)
    );
}

#[test]
fn consent_expiring_fires_days_before() {
    let r = rule(json!({"type": "consent_expiring", "daysBefore": 30}));
    assert_eq!(r.field, FieldKey::parse("consentExpiration").unwrap());
    assert_eq!((r.offset_days, r.yearly), (-30, false));
    let contact = snap(json!({"consent": {"expiration": "2026-01-15T10:00:00Z"}}));
    let occ = r.pending(&contact, ts("2025-12-01T00:00:00Z")).unwrap();
    assert_eq!(
        occ,
        Occurrence {
            date: date(2025, 12, 16),
            at: ts("2025-12-16T09:00:00Z")
        }
    );
    assert_eq!(r.after_fired(&contact, &occ), None);
    assert_eq!(
        r.pending(&snap(json!({"consent": {}})), ts("2025-12-01T00:00:00Z")),
        None
    );
}

#[test]
fn a_once_only_date_long_past_is_not_pending() {
    let once = rule(json!({"type": "date_reached", "field": "birthDate"}));
    let contact = snap(json!({"birthDate": "1985-07-14"}));
    assert_eq!(once.pending(&contact, ts("2026-01-01T00:00:00Z")), None);
    let yearly = rule(json!({"type": "date_reached", "field": "birthDate", "yearly": true}));
    assert_eq!(
        yearly
            .pending(&contact, ts("2026-01-01T00:00:00Z"))
            .unwrap()
            .date,
        date(2026, 7, 14)
    );
}

#[test]
fn a_late_occurrence_fires_within_24_hours_only() {
    let r = rule(
        json!({"type": "date_reached", "field": "customFields.renewal",
                        "time": "10:00"}),
    );
    let contact = snap(json!({"customFields": {"renewal": "2026-05-01"}}));
    let at = ts("2026-05-01T10:00:00Z");
    let expected = Some(Occurrence {
        date: date(2026, 5, 1),
        at,
    });
    let hours = SignedDuration::from_hours;
    assert_eq!(r.pending(&contact, at - hours(48)), expected);
    assert_eq!(r.pending(&contact, at), expected);
    assert_eq!(r.pending(&contact, at + hours(23)), expected);
    assert_eq!(r.pending(&contact, at + LATE_WINDOW), None);
    assert_eq!(r.pending(&contact, at + hours(25)), None);
}

#[test]
fn dates_out_of_range_give_none() {
    let late = rule(
        json!({"type": "date_reached", "field": "birthDate", "offsetDays": 365,
                           "yearly": true, "timezone": "Pacific/Apia"}),
    );
    assert_eq!(late.first_after(date(9999, 12, 31), Timestamp::MIN), None);
    assert_eq!(late.first_after(date(2000, 1, 1), Timestamp::MAX), None);
    let early = rule(
        json!({"type": "date_reached", "field": "birthDate", "offsetDays": -365,
                            "time": "00:00", "timezone": "Asia/Kathmandu"}),
    );
    assert_eq!(early.first_after(date(-9999, 1, 1), Timestamp::MIN), None);
    let contact = snap(json!({"birthDate": "9999-12-31"}));
    assert_eq!(late.pending(&contact, Timestamp::MAX), None);
    assert_eq!(
        early.pending(&contact, Timestamp::MIN).unwrap().date,
        date(9998, 12, 31)
    );
}

#[test]
fn date_of_reads_dates_and_date_times_as_written() {
    let birth = rule(json!({"type": "date_reached", "field": "birthDate"}));
    let of = |v: Value| birth.date_of(&snap(json!({ "birthDate": v })));
    assert_eq!(of(json!("1985-07-14")), Some(date(1985, 7, 14)));
    assert_eq!(
        of(json!("2026-01-15T23:30:00-05:00")),
        Some(date(2026, 1, 15))
    );
    assert_eq!(of(json!("2026-01-15T10:00:00Z")), Some(date(2026, 1, 15)));
    assert_eq!(
        of(json!("2026-01-15T10:00:00")),
        None,
        "no offset: not RFC 3339"
    );
    assert_eq!(of(json!("2026-02-30")), None);
    assert_eq!(of(json!("2026-1-15")), None);
    assert_eq!(of(json!("15/01/2026")), None);
    assert_eq!(of(json!("tomorrow")), None);
    assert_eq!(of(json!("2026-01-15garbage")), None);
    assert_eq!(of(json!(20_260_115)), None);
    assert_eq!(of(json!(null)), None);
    assert_eq!(birth.date_of(&snap(json!({}))), None);

    let custom = rule(json!({"type": "date_reached", "field": "customFields.renewal"}));
    let contact = snap(json!({"customFields": {"renewal": "2027-03-01"}}));
    assert_eq!(custom.date_of(&contact), Some(date(2027, 3, 1)));
}

// ---- validation ----

#[test]
fn a_full_rule_parses_and_nulls_are_defaults() {
    let r = rule(
        json!({"type": "date_reached", "field": "customFields.renewal",
                        "offsetDays": -7, "yearly": true, "time": "23:59",
                        "timezone": "America/Montreal"}),
    );
    assert_eq!(r.field, FieldKey::Custom("renewal".into()));
    assert_eq!((r.offset_days, r.yearly), (-7, true));
    assert_eq!(r.time, Time::constant(23, 59, 0, 0));
    assert_eq!(r.tz, TimeZone::get("America/Montreal").unwrap());

    let d = rule(
        json!({"type": "date_reached", "field": "birthDate", "offsetDays": null,
                        "yearly": null, "time": null, "timezone": null}),
    );
    assert_eq!((d.offset_days, d.yearly), (0, false));
    assert_eq!(d.time, Time::constant(9, 0, 0, 0));
    assert_eq!(d.tz, TimeZone::UTC);
    assert_eq!(
        rule(json!({"type": "date_reached", "field": "lastOpenedDate",
                           "timezone": "UTC"}))
        .tz,
        TimeZone::UTC
    );

    let c = rule(json!({"type": "consent_expiring"}));
    assert_eq!((c.offset_days, c.yearly), (0, false));
    assert_eq!(
        TimeRule::from_trigger(
            &trigger(json!({"type": "group_added", "groupId": 7})),
            "trigger"
        ),
        Ok(None)
    );
}

#[test]
fn each_bad_key_is_named() {
    let bad = |extra: Value| {
        let mut v = json!({"type": "date_reached", "field": "birthDate"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        error(v)
    };
    let named = |key: &str| ("invalid_trigger", format!("trigger.{key}"));
    assert_eq!(bad(json!({"offsetDays": 366})), named("offsetDays"));
    assert_eq!(bad(json!({"offsetDays": -366})), named("offsetDays"));
    assert_eq!(bad(json!({"offsetDays": 1.5})), named("offsetDays"));
    assert_eq!(bad(json!({"offsetDays": "3"})), named("offsetDays"));
    assert_eq!(bad(json!({"yearly": "yes"})), named("yearly"));
    for time in ["9:00", "24:00", "12:60", "12h00", "12:00:00", "", "０9:00"] {
        assert_eq!(bad(json!({ "time": time })), named("time"), "{time}");
    }
    assert_eq!(bad(json!({"time": 900})), named("time"));
    assert_eq!(bad(json!({"timezone": "Mars/Olympus"})), named("timezone"));
    assert_eq!(bad(json!({"timezone": ""})), named("timezone"));
    assert_eq!(bad(json!({"field": "firstname"})), named("field"));
    assert_eq!(bad(json!({"field": "customFields"})), named("field"));
    assert_eq!(bad(json!({"field": "favoriteColor"})), named("field"));
    assert_eq!(bad(json!({"field": 3})), named("field"));
    assert_eq!(bad(json!({"groupId": 1})), named("groupId"));
    assert_eq!(bad(json!({"daysBefore": 3})), named("daysBefore"));
    assert_eq!(
        error(json!({"type": "date_reached", "yearly": true})),
        ("missing_field", "trigger.field".to_string())
    );
    assert_eq!(
        error(json!({"type": "date_reached", "field": null})),
        ("missing_field", "trigger.field".to_string())
    );

    let consent = |extra: Value| {
        let mut v = json!({"type": "consent_expiring"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        error(v)
    };
    assert_eq!(consent(json!({"yearly": true})), named("yearly"));
    assert_eq!(consent(json!({"field": "birthDate"})), named("field"));
    assert_eq!(consent(json!({"offsetDays": 3})), named("offsetDays"));
    assert_eq!(consent(json!({"daysBefore": -1})), named("daysBefore"));
    assert_eq!(consent(json!({"daysBefore": 366})), named("daysBefore"));
    assert_eq!(consent(json!({"time": "7:30"})), named("time"));
    assert_eq!(
        consent(json!({"timezone": "Mars/Olympus"})),
        named("timezone")
    );
}

// ---- properties ----

const ZONES: &[&str] = &[
    "UTC",
    "America/Montreal",
    "Europe/Paris",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "Asia/Kathmandu",
];

fn zone_of(index: usize) -> TimeZone {
    zone(ZONES[index % ZONES.len()]).unwrap()
}

/// 1900..2100, with a fair share of 29 Februaries.
fn base_date() -> impl Strategy<Value = Date> {
    prop_oneof![
        3 => (1900i16..2100, 1i8..=12, 1i8..=31).prop_map(|(y, m, d)| {
            let first = Date::new(y, m, 1).unwrap();
            Date::new(y, m, d.min(first.days_in_month())).unwrap()
        }),
        1 => (476i16..525).prop_map(|q| Date::new(q * 4, 2, 29).unwrap()),
    ]
}

/// Any time of day, often the small hours where DST transitions happen.
fn time_of_day() -> impl Strategy<Value = Time> {
    prop_oneof![(0i8..24, 0i8..60), (0i8..4, 0i8..60)]
        .prop_map(|(h, m)| Time::new(h, m, 0, 0).unwrap())
}

/// 1970..2090.
fn instant() -> impl Strategy<Value = Timestamp> {
    (0i64..3_786_912_000).prop_map(|s| Timestamp::from_second(s).unwrap())
}

fn time_rule(yearly: bool) -> impl Strategy<Value = TimeRule> {
    (0..ZONES.len(), -365i32..=365, time_of_day()).prop_map(move |(z, offset_days, time)| {
        TimeRule {
            field: FieldKey::parse("birthDate").unwrap(),
            offset_days,
            yearly,
            time,
            tz: zone_of(z),
        }
    })
}

/// The one firing instant a wall clock may have: `dt` itself if it exists (the first time, if
/// twice), else the transition that skipped it.
fn check_wall_clock(tz: &TimeZone, dt: DateTime, at: Timestamp) -> Result<(), TestCaseError> {
    let local = tz.to_datetime(at);
    let just_before = tz.to_datetime(at - SignedDuration::from_nanos(1));
    let ambiguous = tz.to_ambiguous_timestamp(dt);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { .. } => prop_assert_eq!(local, dt),
        AmbiguousOffset::Fold { .. } => {
            prop_assert_eq!(local, dt);
            prop_assert_eq!(Some(at), ambiguous.earlier().ok());
        }
        AmbiguousOffset::Gap { .. } => {
            prop_assert!(local > dt, "{local} after {dt}");
            prop_assert!(just_before < dt, "{just_before} before {dt}");
            let transition = tz.preceding(at + SignedDuration::from_nanos(1)).next();
            prop_assert_eq!(transition.map(|t| t.timestamp()), Some(at));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (1) and (2): fires after `after`, and is the first to (checked against every year).
    #[test]
    fn first_after_is_the_first_occurrence_after(
        yearly in any::<bool>(),
        r in time_rule(false),
        base in base_date(),
        after in instant(),
    ) {
        let r = TimeRule { yearly, ..r };
        let got = r.first_after(base, after);
        let last_year = if yearly { 2110 } else { base.year() };
        let brute = (base.year()..=last_year)
            .filter_map(|y| r.occurrence_in(base, y))
            .find(|o| o.at > after);
        prop_assert_eq!(got, brute);
        if let Some(occ) = got {
            prop_assert!(occ.at > after);
            // found again by its nominal date (how a firing checks it is still the contact's)
            prop_assert_eq!(r.occurrence_on(base, occ.date), Some(occ));
            let year = (occ.date.year() - 1..=occ.date.year() + 1)
                .find(|&y| r.occurrence_in(base, y) == Some(occ))
                .unwrap();
            if let Some(previous) = r.occurrence_in(base, year - 1) {
                prop_assert!(yearly && previous.at <= after, "{previous:?} skipped");
            }
        } else {
            prop_assert!(!yearly, "a yearly rule always has a next occurrence in range");
        }
    }

    /// (3): one occurrence a year, strictly increasing, 365 or 366 days apart.
    #[test]
    fn yearly_occurrences_increase_one_per_year(
        r in time_rule(true),
        base in base_date(),
        span in 0i16..40,
    ) {
        let mut previous: Option<Occurrence> = None;
        for year in base.year()..=base.year() + span {
            let occ = r.occurrence_in(base, year).unwrap();
            let anniversary = occ.date.checked_sub(Span::new().days(r.offset_days)).unwrap();
            prop_assert_eq!(anniversary.year(), year);
            prop_assert_eq!((anniversary.month(), anniversary.day().min(28)),
                            (base.month(), base.day().min(28)));
            if let Some(p) = previous {
                prop_assert!(occ.at > p.at, "{occ:?} after {p:?}");
                prop_assert!((365..=366).contains(&days_between(p.date, occ.date)));
            }
            previous = Some(occ);
        }
    }

    /// (4): the wall clock at the firing instant, near DST transitions and anywhere.
    #[test]
    fn fires_at_the_wall_clock_or_right_after_its_gap(
        z in 0..ZONES.len(),
        around in instant(),
        shift in -90i64..90,
        near_a_transition in prop::bool::weighted(0.8),
    ) {
        let tz = zone_of(z);
        let pivot = match tz.following(around).next() {
            Some(t) if near_a_transition => t.timestamp(),
            _ => around,
        };
        // Civil arithmetic from the wall clock just before the transition: lands in gaps too.
        let wall = tz
            .to_datetime(pivot - SignedDuration::from_nanos(1))
            .checked_add(SignedDuration::from_mins(shift))
            .unwrap();
        let time = Time::new(wall.hour(), wall.minute(), 0, 0).unwrap();
        let r = TimeRule {
            field: FieldKey::parse("birthDate").unwrap(),
            offset_days: 0,
            yearly: false,
            time,
            tz: tz.clone(),
        };
        let occ = r.first_after(wall.date(), Timestamp::MIN).unwrap();
        prop_assert_eq!(occ.date, wall.date());
        check_wall_clock(&tz, wall.date().to_datetime(time), occ.at)?;
    }

    /// (4) again, for whatever `first_after` picks with an offset and a year.
    #[test]
    fn any_occurrence_fires_at_its_wall_clock(
        r in time_rule(true),
        base in base_date(),
        after in instant(),
    ) {
        let occ = r.first_after(base, after).unwrap();
        check_wall_clock(&r.tz, occ.date.to_datetime(r.time), occ.at)?;
    }

    /// (5): after a yearly occurrence fires, the next is next year's; once-only rules stop.
    #[test]
    fn after_fired_is_next_years(
        r in time_rule(true),
        base in base_date(),
        now in instant(),
    ) {
        let contact = snap(json!({ "birthDate": base.to_string() }));
        let occ = r.pending(&contact, now).unwrap();
        prop_assert!(occ.at > now - LATE_WINDOW);
        let next = r.after_fired(&contact, &occ).unwrap();
        prop_assert!(next.at > occ.at);
        prop_assert!((365..=366).contains(&days_between(occ.date, next.date)));
        prop_assert_eq!(Some(next), r.first_after(base, occ.at));
        let once = TimeRule { yearly: false, ..r };
        prop_assert_eq!(once.after_fired(&contact, &occ), None);
    }
}
