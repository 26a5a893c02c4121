//! Condition rules (SPEC §4): `{"field", "op", "value"}`, combined with `{"all": [...]}` and
//! `{"any": [...]}`. Text comparison ignores case.

use serde_json::{Map, Value};

use super::{Invalid, catalogue::FieldKey, catalogue::text_of, contact::parse_date, join};

/// A condition's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `equals`.
    Equals,
    /// `notEquals`.
    NotEquals,
    /// `contains`.
    Contains,
    /// `startsWith`.
    StartsWith,
    /// `endsWith`.
    EndsWith,
    /// `isEmpty`.
    IsEmpty,
    /// `isNotEmpty`.
    IsNotEmpty,
    /// `greaterThan`.
    GreaterThan,
    /// `lessThan`.
    LessThan,
    /// `inGroup`.
    InGroup,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "equals" => Op::Equals,
            "notEquals" => Op::NotEquals,
            "contains" => Op::Contains,
            "startsWith" => Op::StartsWith,
            "endsWith" => Op::EndsWith,
            "isEmpty" => Op::IsEmpty,
            "isNotEmpty" => Op::IsNotEmpty,
            "greaterThan" => Op::GreaterThan,
            "lessThan" => Op::LessThan,
            "inGroup" => Op::InGroup,
            _ => return None,
        })
    }

    fn needs_value(self) -> bool {
        !matches!(self, Op::IsEmpty | Op::IsNotEmpty)
    }
}

/// A checked condition rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// `{"all": [...]}`: every rule holds.
    All(Vec<Rule>),
    /// `{"any": [...]}`: at least one holds.
    Any(Vec<Rule>),
    /// `{"field", "op", "value"}`.
    Test {
        /// The field tested.
        field: FieldKey,
        /// The operator.
        op: Op,
        /// The value compared with.
        value: Value,
    },
}

const MAX_DEPTH: usize = 10;
const MAX_RULES: usize = 100;

impl Rule {
    /// Checks a rule, naming the faulty key under `path`.
    pub fn parse(value: &Value, path: &str) -> Result<Rule, Invalid> {
        let mut count = 0;
        parse(value, path, 0, &mut count)
    }

    /// Evaluates against a contact snapshot.
    pub fn matches(&self, snapshot: &Map<String, Value>) -> bool {
        match self {
            Rule::All(rules) => rules.iter().all(|r| r.matches(snapshot)),
            Rule::Any(rules) => rules.iter().any(|r| r.matches(snapshot)),
            Rule::Test { field, op, value } => test(field.read(snapshot), *op, value),
        }
    }
}

fn parse(value: &Value, path: &str, depth: usize, count: &mut usize) -> Result<Rule, Invalid> {
    *count += 1;
    if depth > MAX_DEPTH || *count > MAX_RULES {
        return Err(Invalid::new(
            "invalid_rule",
            path,
            format!("rules nest at most {MAX_DEPTH} deep and hold at most {MAX_RULES} tests"),
        ));
    }
    let Value::Object(obj) = value else {
        return Err(Invalid::new("invalid_rule", path, "must be a rule object"));
    };
    for (key, ctor) in [
        ("all", Rule::All as fn(Vec<Rule>) -> Rule),
        ("any", Rule::Any),
    ] {
        if let Some(list) = obj.get(key) {
            let at = join(path, key);
            let Value::Array(items) = list else {
                return Err(Invalid::new(
                    "invalid_rule",
                    at,
                    "must be an array of rules",
                ));
            };
            if items.is_empty() {
                return Err(Invalid::new(
                    "invalid_rule",
                    at,
                    "must hold at least one rule",
                ));
            }
            let rules = items
                .iter()
                .enumerate()
                .map(|(i, r)| parse(r, &format!("{at}[{i}]"), depth + 1, count))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(ctor(rules));
        }
    }
    let field = match obj.get("field") {
        Some(Value::String(s)) => FieldKey::parse(s).ok_or_else(|| {
            Invalid::new(
                "unknown_field",
                join(path, "field"),
                format!("`{s}` is not a catalogue field"),
            )
        })?,
        _ => {
            return Err(Invalid::new(
                "invalid_rule",
                join(path, "field"),
                "is required (or use `all` / `any`)",
            ));
        }
    };
    let op = match obj.get("op") {
        Some(Value::String(s)) => Op::parse(s).ok_or_else(|| {
            Invalid::new(
                "invalid_rule",
                join(path, "op"),
                format!("`{s}` is not a known operator"),
            )
        })?,
        _ => {
            return Err(Invalid::new(
                "invalid_rule",
                join(path, "op"),
                "is required",
            ));
        }
    };
    let value = obj.get("value").cloned().unwrap_or(Value::Null);
    if op.needs_value() {
        match &value {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {}
            Value::Null => {
                return Err(Invalid::new(
                    "invalid_rule",
                    join(path, "value"),
                    "is required for this operator",
                ));
            }
            _ => {
                return Err(Invalid::new(
                    "invalid_rule",
                    join(path, "value"),
                    "must be text, a number or a boolean",
                ));
            }
        }
    }
    Ok(Rule::Test { field, op, value })
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => numeric_text(s.trim()),
        _ => None,
    }
}

/// Text that is a number the way JSON writes one (`12`, `-3.5`, `1e3`): not `nan`, `inf` or
/// `infinity` (a contact may be called Nan), and no leading zero (`01234` is a zip code, not
/// 1234).
fn numeric_text(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    match digits(&mut i) {
        0 => return None,
        n if n > 1 && b[int_start] == b'0' => return None,
        _ => {}
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    s.parse().ok().filter(|f: &f64| f.is_finite())
}

/// Text forms a value offers to comparisons: a scalar its text; an array each element's
/// (for a group object, its `id` and its `name`).
fn texts(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .flat_map(|item| match item {
                Value::Object(o) => ["id", "name"]
                    .iter()
                    .filter_map(|k| o.get(*k))
                    .map(|x| lower(&text_of(Some(x))))
                    .collect::<Vec<_>>(),
                other => vec![lower(&text_of(Some(other)))],
            })
            .collect(),
        other => vec![lower(&text_of(Some(other)))],
    }
}

fn ordering(actual: &Value, expected: &Value) -> Option<std::cmp::Ordering> {
    if let (Some(a), Some(b)) = (as_number(actual), as_number(expected)) {
        return a.partial_cmp(&b);
    }
    let (a, b) = (text_of(Some(actual)), text_of(Some(expected)));
    if let (Some(a), Some(b)) = (parse_date(&a), parse_date(&b)) {
        return Some(a.cmp(&b));
    }
    Some(lower(&a).cmp(&lower(&b)))
}

fn test(actual: Option<&Value>, op: Op, expected: &Value) -> bool {
    match op {
        Op::IsEmpty => return is_empty(actual),
        Op::IsNotEmpty => return !is_empty(actual),
        _ => {}
    }
    let Some(actual) = actual else {
        // A missing field equals nothing, so it is "not equal" to anything.
        return op == Op::NotEquals;
    };
    let want = lower(&text_of(Some(expected)));
    match op {
        Op::Equals | Op::NotEquals => {
            let equal = match (as_number(actual), as_number(expected)) {
                (Some(a), Some(b)) => a == b,
                _ => texts(actual).contains(&want),
            };
            equal == (op == Op::Equals)
        }
        Op::Contains => texts(actual).iter().any(|t| t.contains(&want)),
        Op::StartsWith => texts(actual).iter().any(|t| t.starts_with(&want)),
        Op::EndsWith => texts(actual).iter().any(|t| t.ends_with(&want)),
        Op::GreaterThan => ordering(actual, expected) == Some(std::cmp::Ordering::Greater),
        Op::LessThan => ordering(actual, expected) == Some(std::cmp::Ordering::Less),
        Op::InGroup => match actual {
            Value::Array(groups) => groups.iter().any(|g| {
                let id_match = g
                    .get("id")
                    .and_then(as_number)
                    .zip(as_number(expected))
                    .is_some_and(|(a, b)| a == b);
                let name_match = g
                    .get("name")
                    .is_some_and(|n| lower(&text_of(Some(n))) == want);
                id_match || name_match
            }),
            _ => false,
        },
        Op::IsEmpty | Op::IsNotEmpty => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contact() -> Map<String, Value> {
        json!({"id": 1, "email": "Tester@Example.org", "firstname": "John",
               "groups": [{"id": 7, "name": "Newsletter"}], "note": "",
               "stats": {"mailingsCount": 12, "averageOpenRate": 0.66},
               "birthDate": "1985-07-14", "customFields": {"plan": "gold"}})
        .as_object()
        .unwrap()
        .clone()
    }

    fn eval(rule: Value) -> bool {
        Rule::parse(&rule, "rule").unwrap().matches(&contact())
    }

    #[test]
    fn every_operator() {
        assert!(eval(
            json!({"field": "email", "op": "equals", "value": "tester@example.org"})
        ));
        assert!(!eval(
            json!({"field": "email", "op": "notEquals", "value": "TESTER@example.org"})
        ));
        assert!(eval(
            json!({"field": "lastname", "op": "notEquals", "value": "x"})
        ));
        assert!(eval(
            json!({"field": "email", "op": "contains", "value": "@EXAMPLE"})
        ));
        assert!(eval(
            json!({"field": "firstname", "op": "startsWith", "value": "jo"})
        ));
        assert!(eval(
            json!({"field": "email", "op": "endsWith", "value": ".ORG"})
        ));
        assert!(eval(json!({"field": "note", "op": "isEmpty"})));
        assert!(eval(json!({"field": "lastname", "op": "isEmpty"})));
        assert!(eval(json!({"field": "firstname", "op": "isNotEmpty"})));
        assert!(eval(
            json!({"field": "mailingsCount", "op": "greaterThan", "value": 10})
        ));
        assert!(!eval(
            json!({"field": "mailingsCount", "op": "greaterThan", "value": "12"})
        ));
        assert!(eval(
            json!({"field": "averageOpenRate", "op": "lessThan", "value": 0.7})
        ));
        assert!(eval(
            json!({"field": "birthDate", "op": "lessThan", "value": "1990-01-01"})
        ));
        assert!(eval(
            json!({"field": "groups", "op": "inGroup", "value": 7})
        ));
        assert!(eval(
            json!({"field": "groups", "op": "inGroup", "value": "newsletter"})
        ));
        assert!(!eval(
            json!({"field": "groups", "op": "inGroup", "value": 8})
        ));
        assert!(eval(
            json!({"field": "customFields.plan", "op": "equals", "value": "GOLD"})
        ));
        assert!(eval(
            json!({"field": "mailingsCount", "op": "equals", "value": "12"})
        ));
    }

    #[test]
    fn combinators() {
        assert!(eval(json!({"all": [
            {"field": "firstname", "op": "equals", "value": "john"},
            {"any": [{"field": "country", "op": "equals", "value": "CA"},
                     {"field": "groups", "op": "inGroup", "value": 7}]}]})));
        assert!(!eval(json!({"any": [
            {"field": "firstname", "op": "equals", "value": "jane"},
            {"field": "country", "op": "isNotEmpty"}]})));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                json!({"field": "nope", "op": "equals", "value": 1}),
                "r.field",
            ),
            (json!({"field": "email", "op": "like", "value": 1}), "r.op"),
            (json!({"field": "email", "op": "equals"}), "r.value"),
            (json!({"all": []}), "r.all"),
            (json!({"all": [{"field": "email"}]}), "r.all[0].op"),
            (json!("email"), "r"),
        ];
        for (rule, field) in cases {
            let e = Rule::parse(&rule, "r").unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{rule}");
        }
    }

    #[test]
    fn only_json_style_numbers_compare_as_numbers() {
        let contact = |v: Value| {
            json!({"id": 1, "email": "a@b.c", "lastname": v})
                .as_object()
                .cloned()
                .unwrap_or_default()
        };
        let rule = |op: &str, value: Value| {
            Rule::parse(
                &json!({"field": "lastname", "op": op, "value": value}),
                "rule",
            )
            .unwrap()
        };
        // a contact named Nan is equal to "Nan" and to nothing else
        assert!(rule("equals", json!("Nan")).matches(&contact(json!("Nan"))));
        assert!(!rule("equals", json!("nan")).matches(&contact(json!("inf"))));
        assert!(rule("equals", json!("Infinity")).matches(&contact(json!("infinity"))));
        assert!(!rule("equals", json!("NaN")).matches(&contact(json!("Inf"))));
        // zip codes keep their zeros
        assert!(!rule("equals", json!("01234")).matches(&contact(json!("1234"))));
        assert!(rule("equals", json!("01234")).matches(&contact(json!("01234"))));
        // numbers still compare as numbers
        assert!(rule("equals", json!("12")).matches(&contact(json!(12))));
        assert!(rule("equals", json!("1.50")).matches(&contact(json!("1.5"))));
        assert!(rule("greaterThan", json!("9")).matches(&contact(json!("10"))));
        assert!(rule("equals", json!("-0.5e1")).matches(&contact(json!(-5))));
        for text in [
            "nan", "inf", "-inf", "infinity", "01", "1.", ".5", "1e", "+1", " ", "0x10",
        ] {
            assert_eq!(numeric_text(text), None, "{text}");
        }
    }
}
