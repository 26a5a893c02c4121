//! Identifiers: prefixed, so a person can tell a delivery id from a scenario id.

use sha2::{Digest, Sha256};

/// A deterministic id from its parts, for records a retried handler must find again
/// (`enr_…` from account, event and scenario): the second run names the same record.
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

/// The key of a webhook step among all steps: 16 hex digits of a hash of its scenario and
/// step ids (what a delivery id names).
pub fn step_key(scenario_id: &str, step_id: &str) -> String {
    derived_id("", &[scenario_id, step_id])[1..17].to_string()
}

/// The id of a delivery: `dlv_` + its creation time (milliseconds, 11 hex digits) + its step's
/// [`step_key`] + 16 hex digits of a hash of `parts` (what makes it unique: the enrollment,
/// sequence and step of its pass; a fresh id on the inline path). Ids of one step sort by
/// creation time, and a store can key a delivery by its step and time from its id alone (a
/// list partition per step, no index to write).
pub fn delivery_id(
    scenario_id: &str,
    step_id: &str,
    created: jiff::Timestamp,
    parts: &[&str],
) -> String {
    let ms = created.as_millisecond().clamp(0, MAX_DELIVERY_MS);
    let unique = &derived_id("", parts)[1..17];
    format!("dlv_{ms:011x}{}{unique}", step_key(scenario_id, step_id))
}

/// The latest creation time (ms) a delivery id can carry (11 hex digits: the year 2527).
pub const MAX_DELIVERY_MS: i64 = 0xFFF_FFFF_FFFF;

/// The lowest delivery id of a step created at or after `ms`: a bound on ids (`dlv_` + time).
pub fn delivery_id_floor(ms: i64) -> String {
    format!("dlv_{:011x}", ms.clamp(0, MAX_DELIVERY_MS))
}

/// The step key a delivery id made by [`delivery_id`] names (`None` for any other text).
pub fn delivery_step_key(id: &str) -> Option<&str> {
    let rest = id.strip_prefix("dlv_")?;
    (rest.len() == 43 && rest.bytes().all(|b| b.is_ascii_hexdigit())).then(|| &rest[11..27])
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
    fn delivery_ids_name_their_step_and_sort_by_time() {
        let at = |ms| jiff::Timestamp::from_millisecond(ms).unwrap();
        let a = delivery_id("scn_1", "hook", at(1_700_000_000_000), &["enr_1", "0"]);
        let b = delivery_id("scn_1", "hook", at(1_700_000_000_001), &["enr_0", "0"]);
        assert_eq!(
            a,
            delivery_id("scn_1", "hook", at(1_700_000_000_000), &["enr_1", "0"])
        );
        assert!(a < b && a.len() == 4 + 43, "{a} {b}");
        assert_eq!(
            delivery_step_key(&a),
            Some(step_key("scn_1", "hook").as_str())
        );
        assert_ne!(step_key("scn_1", "hook"), step_key("scn_1", "hook2"));
        assert!(delivery_id_floor(1_700_000_000_000) <= a);
        assert!(delivery_id_floor(1_700_000_000_001) > a);
        assert_eq!(delivery_step_key("dlv_0123"), None);
        assert_eq!(delivery_step_key(&a.replace('a', "g")), None);
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
