use super::*;
use serde_json::json;

pub fn spec_example() -> Value {
    json!({
      "name": "Welcome to CRM",
      "trigger": {"type": "form_subscribed", "formId": 12},
      "allowReentry": false,
      "start": "only-me",
      "steps": [
        {"id": "only-me", "type": "condition",
         "rule": {"field": "email", "op": "equals", "value": "tester@example.org"},
         "yes": "to-crm", "no": null},
        {"id": "to-crm", "type": "send_webhook",
         "url": "https://crm.example.com/hooks/new-lead",
         "fields": ["email", "firstname", "lastname", "consentType", "customFields.plan"],
         "additional": {"full_name": "{{firstname}} {{lastname}}", "source": "newsletter"},
         "headers": {"X-Api-Key": "abc123"},
         "next": "pause"},
        {"id": "pause", "type": "wait", "duration": "PT2H", "next": null}
      ]
    })
}

fn error_for(patch: impl FnOnce(&mut Value)) -> Invalid {
    let mut v = spec_example();
    patch(&mut v);
    match ScenarioDef::from_json(v) {
        Err(e) => e,
        Ok(def) => def.compile(false).expect_err("should be invalid"),
    }
}

#[test]
fn spec_example_compiles_and_round_trips() {
    let def = ScenarioDef::from_json(spec_example()).unwrap();
    let compiled = def.compile(false).unwrap();
    assert_eq!(compiled.steps.len(), 3);
    assert_eq!(serde_json::to_value(&def).unwrap(), spec_example());
}

#[test]
fn each_rule_names_its_field() {
    let cases: Vec<(Box<dyn FnOnce(&mut Value)>, &str, &str)> = vec![
        (Box::new(|v| v["name"] = json!("")), "name", "invalid_field"),
        (
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("name");
            }),
            "name",
            "invalid_field",
        ),
        (
            Box::new(|v| v["steps"][1]["url"] = json!("ftp://x")),
            "steps[1].url",
            "invalid_url",
        ),
        (
            Box::new(|v| v["steps"][1]["url"] = json!("http://10.0.0.1/")),
            "steps[1].url",
            "forbidden_target",
        ),
        (
            Box::new(|v| v["steps"][1]["fields"][0] = json!("shoeSize")),
            "steps[1].fields[0]",
            "unknown_field",
        ),
        (
            Box::new(|v| v["steps"][1]["additional"]["x"] = json!("{{nickname}}")),
            "steps[1].additional.x",
            "unknown_placeholder",
        ),
        (
            Box::new(|v| v["steps"][1]["additional"]["email"] = json!("x")),
            "steps[1].additional.email",
            "key_collision",
        ),
        (
            Box::new(|v| v["steps"][1]["additional"]["type"] = json!("x")),
            "steps[1].additional.type",
            "key_collision",
        ),
        (
            Box::new(|v| v["steps"][1]["additional"]["id"] = json!("x")),
            "steps[1].additional.id",
            "key_collision",
        ),
        (
            Box::new(|v| v["steps"][1]["headers"]["Bad Name"] = json!("x")),
            "steps[1].headers.Bad Name",
            "invalid_header",
        ),
        (
            Box::new(|v| v["steps"][1]["headers"]["Content-Type"] = json!("x")),
            "steps[1].headers.Content-Type",
            "reserved_header",
        ),
        (
            Box::new(|v| v["steps"][1]["headers"]["webhook-signature"] = json!("x")),
            "steps[1].headers.webhook-signature",
            "reserved_header",
        ),
        (
            Box::new(|v| v["steps"][1]["headers"]["X-A"] = json!("a\r\nb")),
            "steps[1].headers.X-A",
            "invalid_header",
        ),
        (
            Box::new(|v| v["steps"][1]["headers"]["X-A"] = json!("a".repeat(1025))),
            "steps[1].headers.X-A",
            "invalid_header",
        ),
        // what HTTP cannot carry: non-ASCII, control characters, DEL
        (
            Box::new(|v| v["steps"][1]["headers"]["X-A"] = json!("café")),
            "steps[1].headers.X-A",
            "invalid_header",
        ),
        (
            Box::new(|v| v["steps"][1]["headers"]["X-A"] = json!("a\u{1}b")),
            "steps[1].headers.X-A",
            "invalid_header",
        ),
        (
            Box::new(|v| v["steps"][1]["headers"]["X-A"] = json!("a\u{7f}")),
            "steps[1].headers.X-A",
            "invalid_header",
        ),
        (
            Box::new(|v| v["steps"][1]["next"] = json!("nowhere")),
            "steps[1].next",
            "unknown_step",
        ),
        (
            Box::new(|v| v["steps"][2]["next"] = json!("only-me")),
            "steps[2].next",
            "cycle",
        ),
        (
            Box::new(|v| v["steps"][2]["id"] = json!("to-crm")),
            "steps[2].id",
            "duplicate_step_id",
        ),
        (
            Box::new(|v| v["steps"][2]["duration"] = json!("2 hours")),
            "steps[2].duration",
            "invalid_duration",
        ),
        (
            Box::new(|v| v["start"] = json!("nope")),
            "start",
            "unknown_step",
        ),
        (
            // A time-based trigger is valid, but not with an event trigger's filter key.
            Box::new(|v| v["trigger"]["type"] = json!("date_reached")),
            "trigger.formId",
            "invalid_trigger",
        ),
        (
            Box::new(|v| v["steps"][0]["rule"]["op"] = json!("like")),
            "steps[0].rule.op",
            "invalid_rule",
        ),
    ];
    for (patch, field, code) in cases {
        let e = error_for(patch);
        assert_eq!((e.field.as_deref(), e.code), (Some(field), code), "{e}");
    }
}

#[test]
fn at_most_100_steps() {
    let mut v = spec_example();
    let steps: Vec<Value> = (0..101)
        .map(|i| json!({"id": format!("w{i}"), "type": "wait", "duration": "PT1M", "next": if i < 100 { json!(format!("w{}", i + 1)) } else { Value::Null }}))
        .collect();
    v["steps"] = Value::Array(steps);
    v["start"] = json!("w0");
    let e = ScenarioDef::from_json(v)
        .unwrap()
        .compile(false)
        .unwrap_err();
    assert_eq!(e.code, "too_many_steps");
}

#[test]
fn wait_durations() {
    assert!(parse_wait("PT2H", "d").is_ok());
    assert!(parse_wait("P1D", "d").is_ok());
    assert!(parse_wait("P1W", "d").is_ok());
    assert!(parse_wait("PT0S", "d").is_err());
    assert!(parse_wait("P2Y", "d").is_err());
    assert!(parse_wait("2h", "d").is_err());
}

#[test]
fn header_values_may_hold_any_visible_ascii_spaces_and_tabs() {
    let all: String = (0x20u8..0x7f).map(char::from).collect();
    assert!(check_header("X-All", &all, "headers").is_ok());
    assert!(check_header("X-Tab", "a\tb", "headers").is_ok());
    assert!(check_header("X-Nbsp", "a\u{a0}b", "headers").is_err());
}

#[test]
fn unknown_keys_are_refused_naming_them() {
    for (patch, field) in [
        (json!({"allowRentry": true}), "allowRentry"),
        (
            json!({"steps": [{"id": "a", "type": "wait", "duration": "PT1H", "nxt": null}]}),
            "steps[0].nxt",
        ),
        (
            json!({"steps": [{"id": "a", "type": "send_webhook", "url": "https://example.com/", "header": {}}]}),
            "steps[0].header",
        ),
        (
            json!({"steps": [{"id": "a", "type": "condition", "rule": {"field": "email", "op": "isEmpty"}, "yes": null, "maybe": null}]}),
            "steps[0].maybe",
        ),
    ] {
        let mut v = json!({"name": "n", "trigger": {"type": "group_added"}, "start": "a",
                           "steps": [{"id": "a", "type": "wait", "duration": "PT1H", "next": null}]});
        for (k, x) in patch.as_object().unwrap() {
            v[k] = x.clone();
        }
        let e = ScenarioDef::from_json(v).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
        assert!(e.message.contains("unknown field"), "{e}");
    }
}
