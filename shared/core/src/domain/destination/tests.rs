use super::*;

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn ms(at: Timestamp) -> i64 {
    at.as_millisecond() - 1_800_000_000_000
}

#[test]
fn ids_are_stable_per_account_and_url() {
    let a = destination_id(3, "https://crm.example.com/hook");
    assert_eq!(a, destination_id(3, "https://crm.example.com/hook"));
    assert_ne!(a, destination_id(4, "https://crm.example.com/hook"));
    assert_ne!(a, destination_id(3, "https://crm.example.com/hook/"));
    assert!(a.starts_with("dst_") && a.len() == 20, "{a}");
    assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn at_most_the_concurrency_is_in_flight() {
    let mut d = Destination::default();
    for _ in 0..8 {
        assert_eq!(d.admit(t(0), 8), Admit::Go { probe: false });
    }
    assert_eq!(d.admit(t(0), 8), Admit::Full);
    d.finished(t(10), t(0), Answer::Accepted, None);
    assert_eq!(d.admit(t(10), 8), Admit::Go { probe: false });
    assert_eq!(d.health(t(10)), Health::Healthy);
}

/// Starts as early as the destination allows, `n` of them, each taking `took` ms and answered
/// by `answer(start)`; returns the start times.
fn run(
    d: &mut Destination,
    n: usize,
    took: i64,
    mut answer: impl FnMut(i64) -> Answer,
) -> Vec<i64> {
    let mut now = 0;
    let mut starts = Vec::new();
    let mut in_flight: Vec<(i64, i64)> = Vec::new(); // (ends, started)
    while starts.len() < n {
        in_flight.sort();
        while let Some(&(end, started)) = in_flight.first() {
            if end > now {
                break;
            }
            in_flight.remove(0);
            d.finished(t(end), t(started), answer(started), Some("x"));
        }
        match d.admit(t(now), 8) {
            Admit::Go { .. } => {
                starts.push(now);
                in_flight.push((now + took, now));
                continue;
            }
            Admit::At(at) => {
                now = ms(at)
                    .max(now + 1)
                    .min(in_flight.first().map_or(i64::MAX, |f| f.0))
            }
            Admit::Full => now = in_flight.first().map_or(now + 1, |f| f.0),
        }
    }
    starts
}

#[test]
fn a_configured_pace_holds_in_every_second() {
    let mut d = Destination::default();
    d.configure(Some(7.0));
    d.configure(Some(5.0));
    assert_eq!(d.pace(), Some(5.0));
    let starts = run(&mut d, 100, 3, |_| Answer::Accepted);
    for (i, s) in starts.iter().enumerate() {
        let in_window = starts[i..].iter().take_while(|x| **x < s + 1_000).count();
        assert!(
            in_window <= 6,
            "{in_window} starts in the second from {s} ms"
        );
    }
    let last = *starts.last().unwrap();
    assert!(
        (19_000..=20_000).contains(&last),
        "100 at 5/s: the last starts at {last} ms"
    );
    assert_eq!(
        d.health(t(last)),
        Health::Healthy,
        "a configured pace is not throttling"
    );
}

#[test]
fn a_refusal_pauses_the_destination_for_its_retry_after_then_paces_it() {
    let mut d = Destination::default();
    for i in 0..20 {
        d.admit(t(i), 8);
        d.finished(t(i + 1), t(i), Answer::Accepted, None);
    }
    d.admit(t(30), 8);
    d.finished(
        t(31),
        t(30),
        Answer::Refused {
            retry_after: Some(Duration::from_secs(2)),
        },
        Some("429"),
    );
    assert_eq!(d.admit(t(40), 8), Admit::At(t(2_031)));
    assert_eq!(d.health(t(40)), Health::Throttled);
    let pace = d.pace().unwrap();
    assert!(
        pace < 20.0 && pace >= 15.0,
        "20 were accepted in the second before: pace {pace}"
    );
    assert_eq!(d.admit(t(2_031), 8), Admit::Go { probe: false });
    assert!(
        matches!(d.admit(t(2_032), 8), Admit::At(_)),
        "paced after the pause"
    );
}

#[test]
fn a_refusal_without_retry_after_pauses_one_second_doubling() {
    let mut d = Destination::default();
    let refused = Answer::Refused { retry_after: None };
    d.admit(t(0), 8);
    d.finished(t(0), t(0), refused, None);
    assert_eq!(d.allowed_at(t(0), 8), Admit::At(t(1_000)));
    d.admit(t(1_000), 8);
    d.finished(t(1_000), t(1_000), refused, None);
    assert_eq!(d.allowed_at(t(1_000), 8), Admit::At(t(3_000)));
    d.admit(t(3_000), 8);
    d.finished(t(3_000), t(3_000), Answer::Accepted, None);
    d.admit(t(4_000), 8);
    d.finished(t(4_000), t(4_000), refused, None);
    assert_eq!(
        d.allowed_at(t(4_000), 8),
        Admit::At(t(5_000)),
        "an acceptance resets the pause"
    );
}

/// A receiver taking `rate` requests/s (a token bucket of `rate` tokens), refusing beyond.
fn bucket(rate: f64) -> impl FnMut(i64) -> Answer {
    let (mut tokens, mut last) = (rate, 0i64);
    move |at| {
        tokens = (tokens + (at - last) as f64 / 1_000.0 * rate).min(rate);
        last = at;
        if tokens >= 1.0 {
            tokens -= 1.0;
            Answer::Accepted
        } else {
            Answer::Refused {
                retry_after: Some(Duration::from_secs(1)),
            }
        }
    }
}

#[test]
fn the_refusals_of_one_burst_pause_once() {
    let mut d = Destination::default();
    let refused = Answer::Refused { retry_after: None };
    for _ in 0..4 {
        d.admit(t(0), 8);
    }
    // four sent at once, all refused as they come back: one pause of 1 s, not 1+2+4+8
    for at in [10, 20, 30, 40] {
        d.finished(t(at), t(0), refused, None);
    }
    assert_eq!(d.allowed_at(t(40), 8), Admit::At(t(1_010)));
    // the next refusal, of an attempt sent after the pause, doubles it
    d.admit(t(1_010), 8);
    d.finished(t(1_020), t(1_010), refused, None);
    assert_eq!(d.allowed_at(t(1_020), 8), Admit::At(t(3_020)));
}

#[test]
fn a_burst_settles_near_the_receivers_rate() {
    let mut d = Destination::default();
    let mut receiver = bucket(20.0);
    let mut refused = 0;
    let mut accepted = 0;
    let mut last = 0;
    // every refused request is sent again (as its retry would be), until 400 are accepted
    let starts = run(&mut d, 2_000, 5, |at| {
        let a = receiver(at);
        if a == Answer::Accepted {
            accepted += 1;
            if accepted == 400 {
                last = at;
            }
        } else {
            refused += 1;
        }
        a
    });
    let _ = starts;
    assert!(accepted >= 400);
    assert!(last <= 25_000, "400 accepted after {last} ms");
    assert!(refused <= 60, "{refused} refusals for 400 accepted");
}

#[test]
fn five_failures_in_a_row_make_it_failing_and_one_probe_at_a_time_heals_it() {
    let mut d = Destination::default();
    for i in 0..4 {
        d.admit(t(i), 8);
        d.finished(t(i), t(i), Answer::Failed, Some("connection refused"));
        assert_eq!(d.health(t(i)), Health::Healthy);
    }
    d.admit(t(10), 8);
    d.finished(t(10), t(10), Answer::Failed, Some("503"));
    assert_eq!(d.health(t(10)), Health::Failing);
    assert_eq!(d.failing_since, Some(t(10)));
    assert_eq!(d.admit(t(11), 8), Admit::At(t(2_010)));
    assert_eq!(d.admit(t(2_010), 8), Admit::Go { probe: true });
    assert_eq!(d.admit(t(2_011), 8), Admit::Full, "one probe at a time");
    d.finished(t(2_020), t(2_010), Answer::Failed, Some("503"));
    assert_eq!(
        d.allowed_at(t(2_020), 8),
        Admit::At(t(4_010)),
        "every 2 s in the first minute"
    );
    // after the first minute the interval doubles
    d.admit(t(70_010), 8);
    d.finished(t(70_010), t(70_010), Answer::Failed, Some("503"));
    assert_eq!(d.allowed_at(t(70_010), 8), Admit::At(t(74_010)));
    d.admit(t(1_000_000), 8);
    d.finished(t(1_000_000), t(1_000_000), Answer::Failed, Some("503"));
    assert_eq!(
        d.allowed_at(t(1_000_000), 8),
        Admit::At(t(1_300_000)),
        "up to 5 minutes"
    );
    assert_eq!(d.last_error.as_deref(), Some("503"));
    assert_eq!(d.admit(t(1_300_000), 8), Admit::Go { probe: true });
    assert!(
        d.finished(t(1_300_005), t(1_300_000), Answer::Accepted, None),
        "healed"
    );
    assert_eq!(d.health(t(1_300_005)), Health::Healthy);
    assert_eq!(d.admit(t(1_300_005), 8), Admit::Go { probe: false });
}

#[test]
fn answers_are_classified_as_the_spec_says() {
    let o = |status: Option<u16>, ra: Option<u64>| AttemptOutcome {
        status,
        error: None,
        duration_ms: 1,
        response_snippet: None,
        retry_after: ra.map(Duration::from_secs),
    };
    assert_eq!(Answer::of(&o(Some(204), None)), Answer::Accepted);
    assert_eq!(
        Answer::of(&o(Some(429), None)),
        Answer::Refused { retry_after: None }
    );
    assert_eq!(
        Answer::of(&o(Some(503), Some(3))),
        Answer::Refused {
            retry_after: Some(Duration::from_secs(3))
        }
    );
    assert_eq!(Answer::of(&o(Some(503), None)), Answer::Failed);
    assert_eq!(Answer::of(&o(None, None)), Answer::Failed);
    assert_eq!(Answer::of(&o(Some(404), None)), Answer::Declined);
}

#[test]
fn a_learned_pace_is_forgotten_after_a_minute_without_refusals() {
    let mut d = Destination::default();
    d.admit(t(0), 8);
    d.finished(t(0), t(0), Answer::Refused { retry_after: None }, None);
    assert_eq!(d.health(t(0)), Health::Throttled);
    d.admit(t(61_000), 8);
    d.finished(t(61_000), t(61_000), Answer::Accepted, None);
    assert_eq!(d.health(t(61_000)), Health::Healthy);
    assert_eq!(d.pace(), None);
}
