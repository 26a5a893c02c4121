//! Validation and compilation: a definition becomes the graph the engine walks ([`Compiled`]),
//! or the first fault, named by its field.

use std::collections::{HashMap, HashSet};

use super::checks::check_step_id;
use super::*;

impl ScenarioDef {
    /// Validates everything that needs no I/O (SPEC §4) and builds the graph.
    /// `allow_private` lifts the literal-address URL check (DNS is checked by the caller).
    pub fn compile(&self, allow_private: bool) -> Result<Compiled, Invalid> {
        let name = self.name.trim();
        if name.is_empty() || self.name.chars().count() > 200 {
            return Err(Invalid::new(
                "invalid_field",
                "name",
                "must be 1 to 200 characters",
            ));
        }
        self.trigger.validate("trigger")?;
        if self.steps.is_empty() {
            return Err(Invalid::new(
                "invalid_field",
                "steps",
                "a scenario needs at least one step",
            ));
        }
        if self.steps.len() > MAX_STEPS {
            return Err(Invalid::new(
                "too_many_steps",
                "steps",
                format!("at most {MAX_STEPS} steps"),
            ));
        }
        let mut index = HashMap::new();
        for (i, step) in self.steps.iter().enumerate() {
            let path = format!("steps[{i}]");
            check_step_id(step.id(), &path)?;
            if index.insert(step.id().to_string(), i).is_some() {
                return Err(Invalid::new(
                    "duplicate_step_id",
                    join(&path, "id"),
                    format!("`{}` is used by another step", step.id()),
                ));
            }
        }
        match &self.start {
            None => {
                return Err(Invalid::new(
                    "invalid_field",
                    "start",
                    "must name the first step",
                ));
            }
            Some(s) if !index.contains_key(s) => {
                return Err(Invalid::new(
                    "unknown_step",
                    "start",
                    format!("`{s}` is not a step of this scenario"),
                ));
            }
            Some(_) => {}
        }
        for (i, step) in self.steps.iter().enumerate() {
            for (key, target) in step.exits() {
                if let Some(t) = target
                    && !index.contains_key(t)
                {
                    return Err(Invalid::new(
                        "unknown_step",
                        format!("steps[{i}].{key}"),
                        format!("`{t}` is not a step of this scenario"),
                    ));
                }
            }
        }
        self.check_acyclic(&index)?;
        let mut steps = HashMap::new();
        for (i, step) in self.steps.iter().enumerate() {
            let path = format!("steps[{i}]");
            let compiled = match step {
                StepDef::SendWebhook(w) => Step::Webhook(compile_webhook(w, &path, allow_private)?),
                StepDef::Condition(c) => Step::Condition {
                    rule: Rule::parse(&c.rule, &join(&path, "rule"))?,
                    yes: c.yes.clone(),
                    no: c.no.clone(),
                },
                StepDef::Wait(w) => Step::Wait {
                    duration: parse_wait(&w.duration, &join(&path, "duration"))?,
                    next: w.next.clone(),
                },
            };
            steps.insert(step.id().to_string(), compiled);
        }
        Ok(Compiled {
            start: self.start.clone(),
            steps,
        })
    }

    fn check_acyclic(&self, index: &HashMap<String, usize>) -> Result<(), Invalid> {
        // Iterative depth-first search with colours: 0 new, 1 on the path, 2 done.
        let mut colour = vec![0u8; self.steps.len()];
        for root in 0..self.steps.len() {
            if colour[root] != 0 {
                continue;
            }
            let mut stack = vec![(root, 0usize)];
            colour[root] = 1;
            while let Some((node, exit)) = stack.pop() {
                let exits = self.steps[node].exits();
                if exit < exits.len() {
                    stack.push((node, exit + 1));
                    if let Some(target) = exits[exit].1 {
                        let t = index[target];
                        if colour[t] == 1 {
                            return Err(Invalid::new(
                                "cycle",
                                format!("steps[{node}].{}", exits[exit].0),
                                format!("leads back to `{target}`: scenarios may not loop"),
                            ));
                        }
                        if colour[t] == 0 {
                            colour[t] = 1;
                            stack.push((t, 0));
                        }
                    }
                } else {
                    colour[node] = 2;
                }
            }
        }
        Ok(())
    }
}

fn compile_webhook(
    w: &WebhookStepDef,
    path: &str,
    allow_private: bool,
) -> Result<WebhookStep, Invalid> {
    let url = check_url(&w.url, &join(path, "url"), allow_private)?;
    let mut fields = Vec::new();
    let mut data_keys: HashSet<String> = ["type".to_string(), "id".to_string()].into();
    for (j, key) in w.fields.iter().enumerate() {
        let at = format!("{path}.fields[{j}]");
        let field = FieldKey::parse(key).ok_or_else(|| {
            Invalid::new(
                "unknown_field",
                &at,
                format!("`{key}` is not a catalogue field"),
            )
        })?;
        if fields.contains(&field) {
            return Err(Invalid::new(
                "duplicate_field",
                at,
                format!("`{key}` is selected twice"),
            ));
        }
        if field.key() != "id" {
            data_keys.insert(field.data_key().to_string());
        }
        fields.push(field);
    }
    if w.additional.len() > 100 {
        return Err(Invalid::new(
            "invalid_field",
            join(path, "additional"),
            "at most 100 additional keys",
        ));
    }
    let mut additional = Vec::new();
    for (key, value) in &w.additional {
        let at = join(&join(path, "additional"), key);
        if key.is_empty() || key.len() > 100 {
            return Err(Invalid::new(
                "invalid_field",
                at,
                "a key is 1 to 100 characters",
            ));
        }
        if data_keys.contains(key) {
            return Err(Invalid::new(
                "key_collision",
                at,
                format!(
                    "`{key}` is already in the payload's data (`type`, `id` or a selected field)"
                ),
            ));
        }
        let Value::String(text) = value else {
            return Err(Invalid::new(
                "invalid_field",
                at,
                "must be text (with optional {{placeholders}})",
            ));
        };
        if text.chars().count() > 4096 {
            return Err(Invalid::new("invalid_field", at, "at most 4096 characters"));
        }
        let template =
            Template::parse(text).map_err(|e| Invalid::new("unknown_placeholder", &at, e))?;
        additional.push((key.clone(), template));
    }
    let headers = check_headers(&w.headers, &join(path, "headers"))?;
    if let Some(limit) = w.rate_limit
        && !(crate::domain::destination::MIN_PACE..=crate::domain::destination::MAX_PACE)
            .contains(&limit)
    {
        return Err(Invalid::new(
            "invalid_field",
            join(path, "rateLimit"),
            "must be a number of requests per second from 0.1 to 10000",
        ));
    }
    Ok(WebhookStep {
        id: w.id.clone(),
        url,
        fields,
        additional,
        headers,
        next: w.next.clone(),
        rate_limit: w.rate_limit,
    })
}
