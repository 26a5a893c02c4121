//! What the platform reports with `POST /v1/events` (SPEC §3).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{Invalid, contact::Contact, trigger::EVENT_TYPES};

/// Event ids with this prefix are Hookline's own (an occurrence of a time-based trigger fires
/// under one): the platform's are refused.
pub const RESERVED_ID_PREFIX: &str = "hookline:";

/// An event as it arrives, before validation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventIn {
    /// The platform's idempotency key (surrounding spaces are not part of it).
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub id: String,
    /// The event type (`form_subscribed`, …).
    #[serde(rename = "type")]
    #[schema(inline, value_type = EventType)]
    pub kind: String,
    /// When the snapshot was taken (RFC 3339).
    #[serde(default)]
    #[schema(format = DateTime, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?([Zz]|[+-](0[0-9]|1[0-9]|2[0-3]):[0-5][0-9])$")]
    pub occurred_at: Option<String>,
    /// The contact snapshot.
    #[schema(value_type = Object)]
    pub contact: Value,
    /// The trigger filter values (`formId`, `groupId`, …).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
}

/// The event types the platform sends (SPEC §3).
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum EventType {
    /// A contact subscribed through a form.
    FormSubscribed,
    /// A contact was added to a group.
    GroupAdded,
    /// A mailing was opened.
    MailingOpened,
    /// A link in a mailing was clicked.
    LinkClicked,
    /// A contact met a segment's criteria.
    SegmentMatched,
    /// A contact answered a survey.
    SurveyAnswered,
    /// A contact updated its profile through a form.
    ProfileUpdated,
    /// The snapshot only (enrolls nobody).
    ContactUpdated,
}

/// A checked event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The platform's idempotency key.
    pub id: String,
    /// The event type.
    pub kind: String,
    /// When the snapshot was taken, if the platform said.
    pub occurred_at: Option<jiff::Timestamp>,
    /// The contact snapshot, checked.
    pub contact: Contact,
    /// The trigger filter values.
    pub context: Map<String, Value>,
}

impl EventIn {
    /// Checks the event (id, type, date, context, snapshot), naming the field at fault.
    pub fn validate(self) -> Result<Event, Invalid> {
        let id = self.id.trim().to_string();
        if id.is_empty() || id.len() > 200 {
            return Err(Invalid::new(
                "invalid_field",
                "id",
                "must be 1 to 200 characters",
            ));
        }
        if id.starts_with(RESERVED_ID_PREFIX) {
            // the ids Hookline gives its own firings of time-based triggers
            return Err(Invalid::new(
                "invalid_field",
                "id",
                format!("ids starting with `{RESERVED_ID_PREFIX}` are Hookline's own"),
            ));
        }
        if !EVENT_TYPES.iter().any(|(t, _)| *t == self.kind) {
            let message = if super::trigger::TIME_TRIGGERS.contains(&self.kind.as_str()) {
                format!(
                    "`{}` is fired by Hookline itself, not sent as an event",
                    self.kind
                )
            } else {
                format!("`{}` is not a known event type", self.kind)
            };
            return Err(Invalid::new("invalid_event_type", "type", message));
        }
        let occurred_at = match self.occurred_at.as_deref() {
            None => None,
            Some(s) => Some(s.parse::<jiff::Timestamp>().map_err(|_| {
                Invalid::new(
                    "invalid_field",
                    "occurredAt",
                    "must be an RFC 3339 date-time",
                )
            })?),
        };
        let context = match self.context {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(Invalid::new(
                    "invalid_field",
                    "context",
                    "must be a JSON object",
                ));
            }
        };
        let contact = Contact::parse(self.contact, "contact")?;
        Ok(Event {
            id,
            kind: self.kind,
            occurred_at,
            contact,
            context,
        })
    }
}

/// An event as its contact's snapshot records it (queued path): its id and the scenarios it
/// matched, in order — enough to give the same `id` sent again its first answer (each
/// enrollment id derives from the event and the scenario) without an item per event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMemo {
    /// The event id.
    #[serde(rename = "e")]
    pub event_id: String,
    /// The scenarios it matched, in order.
    #[serde(rename = "s")]
    pub scenarios: Vec<String>,
}

/// How many events a contact's snapshot remembers, in slots by a hash of the event id: a
/// repeat finds its memo unless a later event of the contact took its slot.
pub const MEMO_SLOTS: u32 = 4;

impl EventMemo {
    /// The slot this event's memo takes (0..[`MEMO_SLOTS`]).
    pub fn slot(&self) -> u32 {
        let id = crate::domain::ids::derived_id("", &[&self.event_id]);
        u32::from_str_radix(&id[1..9], 16).unwrap_or(0) % MEMO_SLOTS
    }
}

/// The answer to an event: stored with the event in local mode, and on AWS only for an event
/// older than its contact's snapshot (others are answered again from their memo).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntakeAnswer {
    /// The event id.
    pub event_id: String,
    /// The enrollments it made, one per matching scenario.
    pub enrollments: Vec<EnrollmentRef>,
}

/// One enrollment an event made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentRef {
    /// The scenario.
    pub scenario_id: String,
    /// The enrollment.
    pub enrollment_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooklines_own_event_ids_are_refused() {
        let event = |id: &str| EventIn {
            id: id.into(),
            kind: "contact_updated".into(),
            occurred_at: None,
            contact: serde_json::json!({"id": 1, "email": "a@b.c"}),
            context: None,
        };
        let e = event("hookline:occurrence:scn_1:1:2027-05-01")
            .validate()
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("id"));
        assert!(event("evt-hookline:1").validate().is_ok());
    }

    #[test]
    fn the_documented_event_types_are_the_accepted_ones() {
        let schema = serde_json::to_value(<EventType as utoipa::PartialSchema>::schema())
            .unwrap_or_default();
        let documented: Vec<&str> = schema["enum"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        let accepted: Vec<&str> = EVENT_TYPES.iter().map(|(t, _)| *t).collect();
        assert_eq!(documented, accepted);
    }
}
