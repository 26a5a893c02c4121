//! The port contract suites against the SQLite adapters, each on a fresh database file.

use std::sync::Arc;
use std::time::Duration;

use hookline_core::contract;
use hookline_core::ports::Task;
use hookline_local::{Db, SqliteQueue, SqliteStore};

fn fresh() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("hookline.db")).unwrap();
    (dir, db)
}

#[tokio::test]
async fn scenario_store() {
    let (_dir, db) = fresh();
    contract::scenario_store(&SqliteStore::new(db)).await;
}

#[tokio::test]
async fn contact_store() {
    let (_dir, db) = fresh();
    contract::contact_store(&SqliteStore::new(db)).await;
}

#[tokio::test]
async fn enrollment_store() {
    let (_dir, db) = fresh();
    contract::enrollment_store(&SqliteStore::new(db)).await;
}

#[tokio::test]
async fn delivery_store() {
    let (_dir, db) = fresh();
    contract::delivery_store(&SqliteStore::new(db)).await;
}

#[tokio::test]
async fn key_store() {
    let (_dir, db) = fresh();
    contract::key_store(&SqliteStore::new(db)).await;
}

#[tokio::test]
async fn queue() {
    let (_dir, db) = fresh();
    let queue = SqliteQueue::new(db);
    let q = Arc::new(queue.clone());
    let receive = move || {
        let q = q.clone();
        Box::pin(async move {
            let jobs = q
                .lease(jiff::Timestamp::now(), 10, Duration::from_secs(30))
                .await
                .unwrap();
            let mut tasks = Vec::new();
            for job in jobs {
                q.complete(job.id).await.unwrap();
                tasks.extend(job.task);
            }
            tasks
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Task>> + Send>>
    };
    contract::queue(&queue, &receive).await;
}

/// Local-only behaviour: one job per dedupe key, leases hide running jobs, and a new process
/// releases the leases of a killed one.
#[tokio::test]
async fn sqlite_queue_dedupes_and_survives_a_crash() {
    use hookline_core::ports::Queue;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let queue = SqliteQueue::new(Db::open(&path).unwrap());
    let task = Task::DeliverV1 {
        delivery_id: "dlv_1".into(),
    };
    let now = jiff::Timestamp::now();
    queue.enqueue(&task, now).await.unwrap();
    queue.enqueue(&task, now).await.unwrap();
    assert_eq!(queue.len().await.unwrap(), 1);
    let leased = queue.lease(now, 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert!(
        queue
            .lease(now, 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "a leased job was handed out twice"
    );
    drop(queue); // the process "dies" with the job leased

    let reopened = SqliteQueue::new(Db::open(&path).unwrap());
    assert_eq!(reopened.release_all_leases().await.unwrap(), 1);
    let again = reopened
        .lease(jiff::Timestamp::now(), 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].task, Some(task));
    reopened.complete(again[0].id).await.unwrap();
    assert_eq!(reopened.len().await.unwrap(), 0);
}
