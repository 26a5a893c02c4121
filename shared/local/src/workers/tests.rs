//! The workers' timers.

use super::*;
use hookline_core::ports::WorkKey;
use jiff::Timestamp;

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[test]
fn timers_fire_in_order_never_early_and_keep_the_earlier_time() {
    let mut timers = Timers::default();
    let (a, b) = (WorkKey::Delivery("a".into()), WorkKey::Wait("b".into()));
    timers.set(a.clone(), t(200));
    timers.set(b.clone(), t(100));
    timers.set(a.clone(), t(300)); // later: ignored
    assert!(timers.pop_due(t(99)).is_empty());
    assert_eq!(timers.pop_due(t(100)), vec![b.clone()]);
    timers.set(a.clone(), t(150)); // earlier: replaces
    assert_eq!(timers.pop_due(t(1_000)), vec![a.clone()]);
    assert!(timers.due.is_empty());
    assert!(timers.start(&a));
    timers.set(a.clone(), t(0));
    assert!(timers.due.is_empty(), "running work sets no timer");
    timers.abandon(&a);
    timers.hold(a.clone(), t(0));
    timers.set(a.clone(), t(0)); // a scan finds it due: it still waits for its pause
    assert_eq!(timers.due.at(&a), Some(t(1_000)));
    assert!(timers.pop_due(t(999)).is_empty());
    timers.hold(a.clone(), t(1_000));
    assert_eq!(timers.due.at(&a), Some(t(3_000)), "the pause doubles");
    // a retry asked for while the work runs is set when it finishes
    let c = WorkKey::Delivery("c".into());
    assert!(timers.start(&c));
    timers.set(c.clone(), t(5_000));
    assert_eq!(timers.due.at(&c), None);
    timers.finish(c.clone());
    assert_eq!(timers.due.at(&c), Some(t(5_000)));
}
