//! The port contract suites against the SQLite adapters, each on a fresh database file.

use hookline_core::contract;
use hookline_local::{Db, SqliteStore};

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
async fn flow_store() {
    let (_dir, db) = fresh();
    let store = SqliteStore::new(db);
    contract::flow_store(&store, &store, &store, &store).await;
}

#[tokio::test]
async fn flow_store_occurrences() {
    let (_dir, db) = fresh();
    let store = SqliteStore::new(db);
    contract::flow_store_occurrences(&store, &store, &store).await;
}

#[tokio::test]
async fn occurrence_store() {
    let (_dir, db) = fresh();
    contract::occurrence_store(&SqliteStore::new(db)).await;
}

/// A database written by the queued local path (schema 0) opens with its work intact: a
/// queued advance becomes a waiting enrollment, a pending delivery is due, the re-entry rule
/// holds, and a webhook step's pass is not counted twice.
#[tokio::test]
async fn a_schema_0_database_is_migrated_with_its_work() {
    use hookline_core::domain::time::to_millis;
    use hookline_core::ports::{
        DeliveryStore, DueWork, EnrollOutcome, Enrollment, EnrollmentState, EnrollmentStore,
        FlowStore,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let at = |s: i64| jiff::Timestamp::from_second(1_800_000_000 + s).unwrap();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(include_str!("fixtures/schema-v0.sql"))
            .unwrap();
        let (t0, t60) = (to_millis(at(0)), to_millis(at(60)));
        c.execute_batch(&format!(r#"
            INSERT INTO enrollments VALUES ('enr_w', 1, 'scn_1', 5, 1, 'pause', 'active', {t0}, {t0});
            INSERT INTO entries VALUES ('scn_1', 5, 'enr_w');
            INSERT INTO jobs (dedupe_key, task, due_at) VALUES ('adv:enr_w:1',
                '{{"type":"advance.v1","enrollment_id":"enr_w","step_id":"after","seq":1}}', {t60});
            INSERT INTO enrollments VALUES ('enr_d', 1, 'scn_2', 5, 1, 'hook', 'awaiting_delivery', {t0}, {t0});
            INSERT INTO passes VALUES ('enr_d:0:hook', 1, 'scn_2', 'hook', 5, {t0});
            INSERT INTO deliveries VALUES ('dlv_1', 1, 'scn_2', 'hook', 5,
                '{{"enrollment_id":"enr_d","next_step":null,"seq":1}}', 'https://example.com/', '[]', '{{}}',
                'pending', {t0}, {t60}, {t0}, '[]', 0);
            INSERT INTO jobs (dedupe_key, task, due_at) VALUES ('dlv:dlv_1', '{{"type":"deliver.v1","delivery_id":"dlv_1"}}', {t0});
        "#)).unwrap();
    }
    let store = SqliteStore::new(Db::open(&path).unwrap());
    let waiting = store
        .waiting("enr_w")
        .await
        .unwrap()
        .expect("the queued advance is a wait");
    assert_eq!(
        (
            waiting.until,
            waiting.resume.as_deref(),
            waiting.enrollment.seq
        ),
        (at(60), Some("after"), 1)
    );
    let due = store.due(at(60), 10).await.unwrap();
    assert_eq!(
        due,
        vec![
            DueWork::Delivery {
                id: "dlv_1".into(),
                at: at(0)
            },
            DueWork::Wait {
                enrollment_id: "enr_w".into(),
                at: at(60)
            },
        ]
    );
    let hook = store.step_counts(1, "scn_2").await.unwrap();
    assert_eq!(
        hook.iter()
            .map(|c| (c.step_id.as_str(), c.passes, c.pending))
            .collect::<Vec<_>>(),
        vec![("hook", 1, 1)]
    );
    let again = Enrollment {
        id: "enr_again".into(),
        account: 1,
        scenario_id: "scn_1".into(),
        contact_id: 5,
        seq: 0,
        step_id: None,
        state: EnrollmentState::Active,
        created_at: at(100),
    };
    assert_eq!(
        store.create(&again, false).await.unwrap(),
        EnrollOutcome::AlreadyEntered
    );
    drop(store);
    // opening again changes nothing
    let store = SqliteStore::new(Db::open(&path).unwrap());
    assert_eq!(store.due(at(60), 10).await.unwrap().len(), 2);
}

/// A schema-1 database (before signing) opens with its scenarios, which have no secret until
/// one is stored (a rotation).
#[tokio::test]
async fn a_schema_1_database_gains_the_secrets_column() {
    use hookline_core::ports::ScenarioStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            r#"
            CREATE TABLE scenarios (id TEXT PRIMARY KEY, account INTEGER NOT NULL, status TEXT NOT NULL,
                trigger_type TEXT NOT NULL, def TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
            INSERT INTO scenarios VALUES ('scn_old', 1, 'active', 'group_added',
                '{"name":"old","trigger":{"type":"group_added"},"start":"hook","steps":[{"type":"send_webhook","id":"hook","url":"https://example.com/h","next":null}]}',
                0, 0);
            PRAGMA user_version = 1;
        "#,
        )
        .unwrap();
    }
    let store = SqliteStore::new(Db::open(&path).unwrap());
    let mut old = ScenarioStore::get(&store, 1, "scn_old")
        .await
        .unwrap()
        .unwrap();
    assert!(old.secrets.is_empty());
    old.secrets = old.def.secrets(&Default::default(), old.updated_at);
    let version = hookline_core::ports::Version::of(&old);
    assert!(store.update(&old, version).await.unwrap());
    drop(store);
    let store = SqliteStore::new(Db::open(&path).unwrap());
    let read = ScenarioStore::get(&store, 1, "scn_old")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.secrets, old.secrets);
    assert_eq!(read.secrets.len(), 1);
}

/// A schema-2 database (contacts without `occurred_at`, no occurrence tables) opens as schema 3:
/// its contacts are kept, and the first snapshot with a time replaces one stored without it.
#[tokio::test]
async fn a_schema_2_database_gains_the_time_based_triggers() {
    use hookline_core::domain::contact::Contact;
    use hookline_core::ports::{ContactStore, OccurrenceStore, SnapshotPut};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            r#"
            CREATE TABLE contacts (account INTEGER NOT NULL, id INTEGER NOT NULL, snapshot TEXT NOT NULL,
                updated_at INTEGER NOT NULL, PRIMARY KEY (account, id));
            INSERT INTO contacts VALUES (1, 5, '{"id":5,"email":"old@example.org"}', 0);
            PRAGMA user_version = 2;
        "#,
        )
        .unwrap();
    }
    let store = SqliteStore::new(Db::open(&path).unwrap());
    let old = ContactStore::get(&store, 1, 5).await.unwrap().unwrap();
    assert_eq!(old.email, "old@example.org");
    let new = Contact::parse(
        serde_json::json!({"id": 5, "email": "new@example.org"}),
        "c",
    )
    .unwrap();
    let at = jiff::Timestamp::from_second(0).unwrap();
    let memo = hookline_core::domain::event::EventMemo {
        event_id: "e1".into(),
        scenarios: vec![],
    };
    assert_eq!(
        store.put(1, &new, at, &memo).await.unwrap(),
        SnapshotPut::Applied {
            previous: Some(old)
        }
    );
    assert_eq!(
        store.swept().await.unwrap(),
        None,
        "the occurrence tables exist"
    );
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
}
