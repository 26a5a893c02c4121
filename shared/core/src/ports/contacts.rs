//! The contact snapshots' port: the latest snapshot per contact, with its events' memos.

use async_trait::async_trait;
use jiff::Timestamp;

use super::{Page, StoreResult};
use crate::domain::contact::Contact;
use crate::domain::event::EventMemo;

/// What [`ContactStore::put`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotPut {
    /// Stored, with the event's memo; the snapshot it replaced, if any.
    Applied {
        /// The snapshot it replaced, if any.
        previous: Option<Contact>,
    },
    /// This event was stored before and its memo is still kept: nothing was written (a repeat
    /// never replaces a later snapshot, nor its own memo); the memo and the stored snapshot.
    Seen {
        /// The memo stored with the first send of this event.
        memo: EventMemo,
        /// The snapshot stored now.
        stored: Option<Contact>,
    },
    /// A snapshot that occurred later is stored: this older one was not (SPEC §3), nor its
    /// memo.
    Older,
}

/// Contact snapshots, the latest per (account, contact id), with the memos of their last events.
#[async_trait]
pub trait ContactStore: Send + Sync {
    /// Replaces the stored snapshot of (account, contact id) unless the stored one occurred
    /// after `occurred_at` (snapshots apply in the order they occurred; a tie replaces), and
    /// with it records the event's memo in its [`EventMemo::slot`] (one write) — unless that
    /// slot holds this event's memo already: then nothing is written and the memo comes back
    /// ([`SnapshotPut::Seen`]). Memos are kept with the snapshot, at most
    /// [`crate::domain::event::MEMO_SLOTS`] per contact.
    async fn put(
        &self,
        account: i64,
        contact: &Contact,
        occurred_at: Timestamp,
        memo: &EventMemo,
    ) -> StoreResult<SnapshotPut>;
    /// The stored snapshot of a contact.
    async fn get(&self, account: i64, id: i64) -> StoreResult<Option<Contact>>;
    /// One page of an account's contacts, in no particular order; a page may be empty while
    /// `next_cursor` says there is more (every contact is in exactly one page). A stored
    /// snapshot that cannot be read is logged and skipped.
    async fn page(
        &self,
        account: i64,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Page<Contact>>;
}
