//! Kubernetes JSONPath templates as Argo's Web provider uses them: `{$}`, `{$.a.b}`,
//! `{.a[0].b}`, `{$['a-b']}`, `{$.items[*].rate}`. The first match is the result.
//!
//! Only the selection subset is implemented (names, quoted names, indices, negative indices and
//! `*`); filters, slices, recursive descent and `range` are rejected with an error that says so.

use serde_json::Value;

/// The default path: the whole document.
pub const WHOLE_DOCUMENT: &str = "{$}";

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// An object member.
    Name(String),
    /// An array element; negative counts from the end.
    Index(i64),
    /// Every member or element.
    Wildcard,
}

/// A compiled Kubernetes JSONPath template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    written: String,
    steps: Vec<Step>,
}

impl Template {
    /// Compiles a template; the error names the template and what is wrong with it.
    pub fn parse(template: &str) -> Result<Self, String> {
        let trimmed = template.trim();
        let inner = trimmed
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(trimmed)
            .trim();
        let unsupported = |what: &str| format!("unsupported jsonPath {template:?}: {what}");
        let mut rest = inner.strip_prefix('$').unwrap_or(inner);
        if rest.len() == inner.len() && !(rest.starts_with('.') || rest.starts_with('[')) {
            return Err(unsupported(
                "expected a path such as {$.data.ok} or {.data.ok}",
            ));
        }
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if rest.starts_with("..") {
                return Err(unsupported("recursive descent (..) is not supported"));
            }
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let name = &after[..end];
                if name.is_empty() {
                    return Err(unsupported("empty member name"));
                }
                steps.push(if name == "*" {
                    Step::Wildcard
                } else {
                    Step::Name(name.to_owned())
                });
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = closing_bracket(after).ok_or_else(|| unsupported("unclosed ["))?;
                let selector = after[..end].trim();
                steps.push(bracket_step(selector).map_err(|what| unsupported(&what))?);
                rest = &after[end + 1..];
            } else {
                return Err(unsupported(&format!(
                    "unexpected {:?}",
                    rest.chars().next().unwrap_or(' ')
                )));
            }
        }
        Ok(Self {
            written: template.to_owned(),
            steps,
        })
    }

    /// Whether the template selects the whole document.
    pub fn is_whole_document(&self) -> bool {
        self.steps.is_empty()
    }

    /// The first match in `document`.
    pub fn first_match<'a>(&self, document: &'a Value) -> Result<&'a Value, String> {
        let mut matches = vec![document];
        for step in &self.steps {
            matches = matches
                .into_iter()
                .flat_map(|value| select(value, step))
                .collect();
        }
        matches.first().copied().ok_or_else(|| {
            format!(
                "could not find JSONPath {} in the response body",
                self.written
            )
        })
    }
}

/// The position of the `]` closing a bracket, skipping quoted text.
fn closing_bracket(text: &str) -> Option<usize> {
    let mut quote = None;
    for (position, c) in text.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(open), _) if c == open => quote = None,
            (None, ']') => return Some(position),
            _ => {}
        }
    }
    None
}

fn bracket_step(selector: &str) -> Result<Step, String> {
    if selector == "*" {
        return Ok(Step::Wildcard);
    }
    for quote in ['\'', '"'] {
        if let Some(name) = selector
            .strip_prefix(quote)
            .and_then(|s| s.strip_suffix(quote))
        {
            return Ok(Step::Name(name.to_owned()));
        }
    }
    selector
        .parse::<i64>()
        .map(Step::Index)
        .map_err(|_| format!("selector [{selector}] is not supported (use a name, an index or *)"))
}

fn select<'a>(value: &'a Value, step: &Step) -> Vec<&'a Value> {
    match (step, value) {
        (Step::Name(name), Value::Object(members)) => members.get(name).into_iter().collect(),
        (Step::Index(index), Value::Array(elements)) => {
            let position = if *index < 0 {
                i64::try_from(elements.len()).unwrap_or(i64::MAX) + index
            } else {
                *index
            };
            usize::try_from(position)
                .ok()
                .and_then(|p| elements.get(p))
                .into_iter()
                .collect()
        }
        (Step::Wildcard, Value::Object(members)) => members.values().collect(),
        (Step::Wildcard, Value::Array(elements)) => elements.iter().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn first(template: &str, document: &Value) -> Result<Value, String> {
        Template::parse(template)?.first_match(document).cloned()
    }

    #[test]
    fn kubernetes_templates_select_like_kubectl() {
        let document = json!({"data": {"ok": true, "items": [{"rate": 0.99}, {"rate": 0.5}], "p-99": 12, "a.b": 1}});
        assert_eq!(first("{$}", &document), Ok(document.clone()));
        assert_eq!(first("$", &document), Ok(document.clone()));
        assert_eq!(first("{$.data.ok}", &document), Ok(json!(true)));
        assert_eq!(first("{.data.ok}", &document), Ok(json!(true)));
        assert_eq!(first("{$.data.items[0].rate}", &document), Ok(json!(0.99)));
        assert_eq!(first("{.data.items[1].rate}", &document), Ok(json!(0.5)));
        assert_eq!(first("{.data.items[-1].rate}", &document), Ok(json!(0.5)));
        assert_eq!(first("{$.data['p-99']}", &document), Ok(json!(12)));
        assert_eq!(first(r#"{$["data"]["a.b"]}"#, &document), Ok(json!(1)));
        assert_eq!(first("{$.data.items[*].rate}", &document), Ok(json!(0.99)));
        assert!(Template::parse("{$}").unwrap().is_whole_document());
        assert!(!Template::parse("{.data}").unwrap().is_whole_document());
    }

    #[test]
    fn missing_paths_and_unsupported_templates_are_errors() {
        let document = json!({"data": {"list": [1]}});
        let err = first("{$.data.missing}", &document).unwrap_err();
        assert!(
            err.contains("could not find JSONPath {$.data.missing}"),
            "{err}"
        );
        assert!(first("{$.data.list[3]}", &document).is_err());
        assert!(first("{$.data.list.x}", &document).is_err());
        for template in [
            "{data.ok}",
            "{$.data[}",
            "{$..ok}",
            "{$.data[?(@.x)]}",
            "{$.data[0:2]}",
        ] {
            let err = Template::parse(template).unwrap_err();
            assert!(err.contains("unsupported jsonPath"), "{template}: {err}");
        }
    }
}
