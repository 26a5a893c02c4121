//! The contract of [`Queue`]: tasks received once they are due, not before.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use jiff::Timestamp;

use super::unique;
use crate::ports::*;

/// Receives what a queue delivered (the adapter's own receive loop).
pub type Receive<'a> = &'a (dyn Fn() -> Pin<Box<dyn Future<Output = Vec<Task>> + Send>> + Sync);

/// `receive` takes (and acknowledges) the tasks that are due now.
pub async fn queue(queue: &dyn Queue, receive: Receive<'_>) {
    let u = unique();
    let now_task = Task::DeliverV1 {
        delivery_id: format!("dlv_{u}_now"),
        attempt: Some(0),
        deadline: None,
        slot: None,
        moved_at: None,
    };
    let later_task = Task::AdvanceV1 {
        enrollment_id: format!("enr_{u}"),
        step_id: Some("next".into()),
        seq: 3,
        not_before: None,
        at: None,
    };
    let start = Timestamp::now();
    queue.enqueue(&now_task, start).await.unwrap();
    queue
        .enqueue(
            &later_task,
            crate::domain::time::add(start, Duration::from_secs(2)),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..20 {
        got.extend(receive().await);
        if got.contains(&now_task) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(got.contains(&now_task), "a task due now was not received");
    assert!(!got.contains(&later_task), "a delayed task came early");
    let mut later = Vec::new();
    for _ in 0..60 {
        later.extend(receive().await);
        if later.contains(&later_task) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(later.contains(&later_task), "a delayed task never came");
    assert!(
        Timestamp::now().duration_since(start).as_secs_f64() >= 1.9,
        "a delayed task came early"
    );

    // many at once (batches): 23 tasks due now, each received once; one due in 2 s is not yet
    let many: Vec<(Task, Timestamp)> = (0..23)
        .map(|i| {
            let task = Task::DeliverV1 {
                delivery_id: format!("dlv_{u}_many_{i}"),
                attempt: Some(0),
                deadline: None,
                slot: None,
                moved_at: None,
            };
            (task, Timestamp::now())
        })
        .chain(std::iter::once((
            Task::DeliverV1 {
                delivery_id: format!("dlv_{u}_many_later"),
                attempt: Some(0),
                deadline: None,
                slot: None,
                moved_at: None,
            },
            crate::domain::time::add(Timestamp::now(), Duration::from_secs(2)),
        )))
        .collect();
    queue.enqueue_many(&many).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..40 {
        got.extend(receive().await);
        if got.len() >= 23 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (task, _) in &many[..23] {
        assert_eq!(
            got.iter().filter(|t| *t == task).count(),
            1,
            "{task:?} not received once"
        );
    }
    assert!(!got.contains(&many[23].0), "a delayed task came early");
}
