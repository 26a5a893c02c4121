//! Identifiers: prefixed, so a person can tell a delivery id from a scenario id.

use sha2::{Digest, Sha256};

/// A deterministic id from its parts, for records a retried handler must find again
/// (`dlv_…` from enrollment, sequence and step): the second run names the same record.
pub fn derived_id(prefix: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    format!("{prefix}_{}", hex::encode(&digest[..13]))
}

/// The id of an enrollment in a scenario a contact enters at most once (no re-entry):
/// `{entry}.{origin}` — the entry (account, scenario, contact), which one enrollment at most
/// may hold, then the event (or occurrence) that made it. A store may key the enrollment by its
/// entry alone, so that creating it is the claim on the entry (one write, not two).
pub fn entry_enrollment_id(
    account: i64,
    scenario_id: &str,
    contact_id: i64,
    origin: &str,
) -> String {
    let entry = derived_id(
        "enr",
        &[&account.to_string(), scenario_id, &contact_id.to_string()],
    );
    format!("{entry}.{}", derived_id("evt", &[origin]))
}

/// The entry part of an enrollment id made by [`entry_enrollment_id`] (`None` for others).
pub fn entry_of(enrollment_id: &str) -> Option<&str> {
    enrollment_id.split_once('.').map(|(entry, _)| entry)
}

/// The non-secret part of an API key shown to list and revoke it: `hk_` + 8 characters for a
/// generated key, the first 8 characters of any other.
pub fn key_prefix(key: &str) -> String {
    let n = if key.starts_with("hk_") { 11 } else { 8 };
    key.chars().take(n).collect()
}

/// SHA-256 of an API key, hex: the only form in which keys are stored.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = derived_id("dlv", &["enr_1", "0", "to-crm"]);
        assert_eq!(a, derived_id("dlv", &["enr_1", "0", "to-crm"]));
        assert_ne!(a, derived_id("dlv", &["enr_1", "1", "to-crm"]));
        // parts are separated: ("ab","c") is not ("a","bc")
        assert_ne!(derived_id("x", &["ab", "c"]), derived_id("x", &["a", "bc"]));
        assert!(a.starts_with("dlv_") && a.len() == 4 + 26);
    }

    #[test]
    fn key_prefixes() {
        assert_eq!(key_prefix("hk_AbCdEfGh1234567890"), "hk_AbCdEfGh");
        assert_eq!(key_prefix("my-own-key-0123456789"), "my-own-k");
    }

    #[test]
    fn key_hash_is_not_the_key() {
        let h = hash_api_key("secret");
        assert_eq!(h.len(), 64);
        assert!(!h.contains("secret"));
    }
}
