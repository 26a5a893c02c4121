//! Tests of the payload: the SPEC's example bytes, placeholders, the 256 KiB bound counted
//! without building.

use super::*;
use serde_json::json;

fn john() -> Contact {
    Contact::parse(
        json!({"id": 54321, "email": "john.doe@example.org", "firstname": "John", "lastname": "Doe",
               "groups": [{"id": 7, "name": "Newsletter"}],
               "customFields": {"favoriteColor": "blue", "plan": "gold"},
               "consent": {"type": "express"}, "stats": {"mailingsCount": 12}}),
        "contact",
    )
    .unwrap()
}

fn keys(list: &[&str]) -> Vec<FieldKey> {
    list.iter().map(|k| FieldKey::parse(k).unwrap()).collect()
}

fn additional(list: &[(&str, &str)]) -> Vec<(String, Template)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), Template::parse(v).unwrap()))
        .collect()
}

#[test]
fn spec_example_bytes() {
    let data = build_data(
        &keys(&[
            "email",
            "firstname",
            "lastname",
            "consentType",
            "customFields.plan",
        ]),
        &additional(&[
            ("full_name", "{{firstname}} {{lastname}}"),
            ("source", "newsletter"),
        ]),
        &john(),
    );
    let env = Envelope {
        id: "evt_01",
        event: EVENT_NAME,
        timestamp: "2026-11-26T12:00:03Z".into(),
        id_client: 3,
        scenario: Some(ScenarioRef {
            id: "scn_1",
            step_id: "to-crm",
        }),
        data,
    };
    assert_eq!(
        env.to_json(),
        r#"{"id":"evt_01","event":"automation.webhook.send","timestamp":"2026-11-26T12:00:03Z","idClient":3,"scenario":{"id":"scn_1","stepId":"to-crm"},"data":{"type":"member","id":54321,"email":"john.doe@example.org","firstname":"John","lastname":"Doe","consentType":"express","customFields":{"plan":"gold"},"full_name":"John Doe","source":"newsletter"}}"#
    );
}

#[test]
fn lone_placeholders_keep_their_type() {
    let data = build_data(
        &[],
        &additional(&[
            ("n", "{{mailingsCount}}"),
            ("g", "{{ groups }}"),
            ("c", "{{customFields}}"),
            ("missing", "{{company}}"),
            ("text_missing", "at {{company}}!"),
            ("count_text", "{{mailingsCount}} mails"),
        ]),
        &john(),
    );
    assert_eq!(data["n"], json!(12));
    assert_eq!(data["g"], json!([{"id": 7, "name": "Newsletter"}]));
    assert_eq!(data["c"], json!({"favoriteColor": "blue", "plan": "gold"}));
    assert_eq!(data["missing"], Value::Null);
    assert_eq!(data["text_missing"], json!("at !"));
    assert_eq!(data["count_text"], json!("12 mails"));
}

#[test]
fn missing_selected_fields_are_null_and_all_custom_fields_win() {
    let data = build_data(
        &keys(&["company", "customFields.plan", "customFields"]),
        &[],
        &john(),
    );
    assert_eq!(data["company"], Value::Null);
    assert_eq!(
        data["customFields"],
        json!({"favoriteColor": "blue", "plan": "gold"})
    );
}

fn envelope() -> Envelope<'static> {
    Envelope {
        id: "evt_01",
        event: EVENT_NAME,
        timestamp: "2026-11-26T12:00:03Z".into(),
        id_client: 3,
        scenario: Some(ScenarioRef {
            id: "scn_1",
            step_id: "hook",
        }),
        data: Map::new(),
    }
}

#[test]
fn escaped_lengths_are_serde_json_s() {
    for s in [
        "",
        "plain",
        "quote \" and \\ back",
        "tab\t nl\n cr\r \u{8}\u{c}",
        "\u{1}\u{1f}\u{7f}",
        "é 😀 </>",
    ] {
        assert_eq!(
            escaped_len(s),
            serde_json::to_string(s).unwrap().len() - 2,
            "{s:?}"
        );
    }
}

/// Under the bound: the same bytes as rendered in full; over it: the exact size it would
/// have had, without building it.
#[test]
fn a_payload_past_256_kib_is_refused_with_its_exact_size() {
    let mut contact = john();
    contact
        .snapshot
        .insert("note".into(), json!("a \"quoted\"\nnote\u{1} ".repeat(500)));
    let template = format!("<{}>", "{{note}}-".repeat(8));
    let list: Vec<(String, &str)> = (0..3)
        .map(|i| (format!("k{i}"), template.as_str()))
        .collect();
    let list: Vec<(&str, &str)> = list.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let additional = additional(&list);
    let fields = keys(&["email", "note"]);
    let full = Envelope {
        data: build_data(&fields, &additional, &contact),
        ..envelope()
    }
    .to_json();
    assert!(full.len() > MAX_PAYLOAD, "{}", full.len());
    assert_eq!(
        render_payload(envelope(), &fields, &additional, &contact),
        Err(TooLarge(full.len()))
    );
    assert_eq!(
        TooLarge(full.len()).to_string(),
        format!("payload too large: {} bytes (limit 262144)", full.len())
    );
    // one key fewer: under the bound, rendered whole
    let small = &additional[..1];
    let whole = Envelope {
        data: build_data(&fields, small, &contact),
        ..envelope()
    }
    .to_json();
    assert!(whole.len() <= MAX_PAYLOAD);
    assert_eq!(
        render_payload(envelope(), &fields, small, &contact),
        Ok(whole)
    );
}

/// 100 keys of 4,096 `{{note}}` with a 100 KB note: 40 GB if rendered; refused at once.
#[test]
fn gigabytes_of_placeholders_are_counted_not_built() {
    let mut contact = john();
    contact
        .snapshot
        .insert("note".into(), json!("n".repeat(100_000)));
    let template = "{{note}}".repeat(4_096);
    let additional: Vec<(String, Template)> = (0..100)
        .map(|i| (format!("k{i}"), Template::parse(&template).unwrap()))
        .collect();
    let started = std::time::Instant::now();
    let refused = render_payload(envelope(), &[], &additional, &contact).unwrap_err();
    assert!(refused.0 > 40_000_000_000, "{refused}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn unknown_placeholder_and_unclosed_braces() {
    assert!(
        Template::parse("hi {{nickname}}")
            .unwrap_err()
            .contains("nickname")
    );
    assert_eq!(
        Template::parse("a {{ b").unwrap(),
        Template::Text(vec![Piece::Literal("a {{ b".into())])
    );
}
