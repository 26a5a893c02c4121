//! The contract of [`KeyStore`]: hashed keys with a prefix, listed, revoked for good.

use super::{ts, unique};
use crate::ports::*;

/// The contract of [`KeyStore`].
pub async fn key_store(store: &dyn KeyStore) {
    let u = unique();
    let record = |secret: &str, account: i64| ApiKey {
        hash: crate::domain::ids::hash_api_key(secret),
        prefix: crate::domain::ids::key_prefix(secret),
        account,
        created_at: ts(7),
        revoked_at: None,
    };
    let key = record(&format!("hk_{u}"), 5);
    assert_eq!(store.account_for(&key.hash).await.unwrap(), None);
    assert!(store.insert(&key).await.unwrap());
    assert!(
        !store
            .insert(&ApiKey {
                account: 6,
                ..key.clone()
            })
            .await
            .unwrap(),
        "a key was registered twice"
    );
    assert_eq!(
        store.account_for(&key.hash).await.unwrap(),
        Some(5),
        "an existing key changed account"
    );
    let other = record(&format!("hk_{u}_other"), 5);
    assert!(store.insert(&other).await.unwrap());
    let listed = store.list().await.unwrap();
    assert!(listed.contains(&key), "{listed:?}");
    assert!(listed.contains(&other), "{listed:?}");

    // revoked: refused from now on, still listed, for good
    assert!(store.revoke(&key.hash, ts(9)).await.unwrap());
    assert_eq!(store.account_for(&key.hash).await.unwrap(), None);
    assert!(
        !store.revoke(&key.hash, ts(10)).await.unwrap(),
        "revoked twice"
    );
    assert!(
        !store.insert(&key).await.unwrap(),
        "a revoked key came back"
    );
    assert_eq!(store.account_for(&key.hash).await.unwrap(), None);
    let listed = store.list().await.unwrap();
    assert!(
        listed.contains(&ApiKey {
            revoked_at: Some(ts(9)),
            ..key.clone()
        }),
        "{listed:?}"
    );
    assert_eq!(
        store.account_for(&other.hash).await.unwrap(),
        Some(5),
        "another key was revoked"
    );
    assert!(!store.revoke(&record("never", 1).hash, ts(9)).await.unwrap());
}
