//! Signed webhooks ([Standard Webhooks](https://www.standardwebhooks.com/), SPEC §5).
//!
//! A signed step has a secret, `whsec_` + base64 of 32 random bytes from the OS; the key is
//! those bytes. Every attempt carries `webhook-id` (the envelope `id`), `webhook-timestamp`
//! (the attempt's Unix time in seconds) and `webhook-signature: v1,<base64 of
//! HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`. After a rotation the previous secret stays
//! valid for 24 hours, and both signatures are sent, space separated.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What every secret starts with.
pub const PREFIX: &str = "whsec_";
/// How long the previous secret keeps verifying after a rotation.
pub const PREVIOUS_VALID: Duration = Duration::from_secs(24 * 3600);
/// How far a receiver's clock may be from the sender's (`hookline receive --secret`, the
/// reference libraries use the same 5 minutes).
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// A new secret: `whsec_` + base64 of 32 random bytes from the operating system.
pub fn new_secret() -> String {
    use rand::TryRngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random source is available");
    format!("{PREFIX}{}", STANDARD.encode(bytes))
}

/// The key bytes of a secret (`whsec_…`); `None` when it is not one.
pub fn key_of(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix(PREFIX)?;
    let key = STANDARD.decode(encoded).ok()?;
    (!key.is_empty()).then_some(key)
}

/// `v1,<base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The signing secret of one webhook step, with the previous one during the 24 hours after a
/// rotation. Its `Debug` shows no secret (a record logged by mistake leaks nothing).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSecret {
    /// The current secret.
    pub secret: String,
    /// When it was made.
    #[serde(with = "millis")]
    pub created_at: Timestamp,
    /// The secret before the last rotation, while it still verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Until when the previous one verifies.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_millis")]
    pub previous_valid_until: Option<Timestamp>,
}

impl std::fmt::Debug for StepSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepSecret")
            .field("secret", &"whsec_…")
            .field("created_at", &self.created_at)
            .field("previous", &self.previous.as_ref().map(|_| "whsec_…"))
            .field("previous_valid_until", &self.previous_valid_until)
            .finish()
    }
}

impl StepSecret {
    /// A new random secret, made at `now`.
    pub fn new(now: Timestamp) -> StepSecret {
        StepSecret {
            secret: new_secret(),
            created_at: now,
            previous: None,
            previous_valid_until: None,
        }
    }

    /// A new secret; this one stays valid for [`PREVIOUS_VALID`].
    pub fn rotated(&self, now: Timestamp) -> StepSecret {
        StepSecret {
            secret: new_secret(),
            created_at: now,
            previous: Some(self.secret.clone()),
            previous_valid_until: Some(crate::domain::time::add(now, PREVIOUS_VALID)),
        }
    }

    /// The secrets an attempt at `now` signs with: the current one, and the previous one
    /// while it is still valid.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous, self.previous_valid_until)
            && now < until
        {
            secrets.push(previous);
        }
        secrets
    }
}

/// The secrets of a scenario's signed webhook steps, by step id.
pub type StepSecrets = BTreeMap<String, StepSecret>;

/// The three signature headers of one attempt.
pub fn headers(secrets: &[&str], id: &str, at: Timestamp, body: &[u8]) -> Vec<(String, String)> {
    let timestamp = at.as_second();
    let signatures: Vec<String> = secrets
        .iter()
        .filter_map(|s| key_of(s))
        .map(|key| signature(&key, id, timestamp, body))
        .collect();
    vec![
        ("webhook-id".into(), id.to_string()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), signatures.join(" ")),
    ]
}

/// Why a request does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The secret is not `whsec_` + base64.
    #[error("the secret is not `whsec_` + base64")]
    BadSecret,
    /// A signature header is missing.
    #[error("header {0} is missing")]
    Missing(&'static str),
    /// `webhook-timestamp` is not a Unix time.
    #[error("webhook-timestamp is not a Unix time")]
    BadTimestamp,
    /// `webhook-timestamp` is too far from now.
    #[error("webhook-timestamp is more than 5 minutes from now")]
    Stale,
    /// No signature matches.
    #[error("no signature matches")]
    NoMatch,
}

/// Verifies a request as a receiver would: a `v1` signature over (id, timestamp, body) made
/// with `secret`, and a timestamp within [`TOLERANCE`] of `now`.
pub fn verify(
    secret: &str,
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
    now: Timestamp,
) -> Result<(), VerifyError> {
    let key = key_of(secret).ok_or(VerifyError::BadSecret)?;
    let id = header("webhook-id").ok_or(VerifyError::Missing("webhook-id"))?;
    let ts = header("webhook-timestamp").ok_or(VerifyError::Missing("webhook-timestamp"))?;
    let sigs = header("webhook-signature").ok_or(VerifyError::Missing("webhook-signature"))?;
    let ts: i64 = ts.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    if (now.as_second() - ts).unsigned_abs() > TOLERANCE.as_secs() {
        return Err(VerifyError::Stale);
    }
    let expected = signature(&key, &id, ts, body);
    let expected = expected.as_bytes();
    // constant time per candidate: the comparison does not stop at the first difference
    let same = |a: &[u8], b: &[u8]| {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    };
    if sigs
        .split(' ')
        .any(|candidate| same(candidate.as_bytes(), expected))
    {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

mod millis {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.as_millisecond())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        Timestamp::from_millisecond(i64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod opt_millis {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&t.as_millisecond()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Option::<i64>::deserialize(d)?
            .map(|ms| Timestamp::from_millisecond(ms).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (its reference test vector).
    #[test]
    fn the_specification_example_signs_and_verifies() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let (id, ts, body) = (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        let sig = signature(&key_of(secret).unwrap(), id, ts, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let now = Timestamp::from_second(ts + 10).unwrap();
        let h = |name: &str| match name {
            "webhook-id" => Some(id.to_string()),
            "webhook-timestamp" => Some(ts.to_string()),
            "webhook-signature" => Some(format!("v1,bm90IGl0 {sig}")),
            _ => None,
        };
        assert_eq!(verify(secret, h, body, now), Ok(()));
        assert_eq!(
            verify(secret, h, br#"{"test": 2432232315}"#, now),
            Err(VerifyError::NoMatch)
        );
        let late = Timestamp::from_second(ts + 301).unwrap();
        assert_eq!(verify(secret, h, body, late), Err(VerifyError::Stale));
        assert_eq!(verify("whsec_", h, body, now), Err(VerifyError::BadSecret));
    }

    #[test]
    fn new_secrets_are_32_random_bytes() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(key_of(&a).unwrap().len(), 32);
        assert!(a.starts_with("whsec_"));
    }

    #[test]
    fn a_rotation_signs_with_both_for_24_hours() {
        let t0: Timestamp = "2026-11-27T10:00:00Z".parse().unwrap();
        let first = StepSecret::new(t0);
        let second = first.rotated(t0);
        assert_eq!(
            second.signing_secrets(t0),
            vec![second.secret.as_str(), first.secret.as_str()]
        );
        let after = crate::domain::time::add(t0, PREVIOUS_VALID);
        assert_eq!(second.signing_secrets(after), vec![second.secret.as_str()]);
        let h = headers(&second.signing_secrets(t0), "evt_1", t0, b"{}");
        assert_eq!(h[2].1.split(' ').count(), 2);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(verify(&first.secret, get, b"{}", t0), Ok(()));
        assert_eq!(verify(&second.secret, get, b"{}", t0), Ok(()));
        assert!(
            !format!("{second:?}").contains(&second.secret[6..]),
            "Debug shows a secret"
        );
        let json = serde_json::to_string(&second).unwrap();
        assert_eq!(serde_json::from_str::<StepSecret>(&json).unwrap(), second);
    }
}
