//! JSON merge patches (RFC 7386) computed from the cached and the desired object.

use serde_json::{Map, Value};

/// The merge patch that turns `old` into `new`; `None` when they are equal.
///
/// Objects are compared key by key (a key missing from `new` becomes `null`), anything else —
/// arrays included — is replaced whole, as merge patches require.
pub fn merge_patch(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for (key, old_value) in old {
                match new.get(key) {
                    None => {
                        patch.insert(key.clone(), Value::Null);
                    }
                    Some(new_value) => {
                        if let Some(change) = merge_patch(old_value, new_value) {
                            patch.insert(key.clone(), change);
                        }
                    }
                }
            }
            for (key, new_value) in new {
                if !old.contains_key(key) {
                    patch.insert(key.clone(), new_value.clone());
                }
            }
            Some(Value::Object(patch))
        }
        _ => Some(new.clone()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge_patch;

    #[test]
    fn equal_values_need_no_patch() {
        let status = json!({"phase": "Healthy", "conditions": [{"type": "Available"}]});
        assert_eq!(merge_patch(&status, &status), None);
    }

    #[test]
    fn changed_added_and_removed_keys() {
        let old = json!({"phase": "Paused", "pauseConditions": [{"reason": "CanaryPauseStep"}], "canary": {"weights": {"canary": {"weight": 25}}, "x": 1}});
        let new = json!({"phase": "Progressing", "currentStepIndex": 2, "canary": {"weights": {"canary": {"weight": 50}}, "x": 1}});
        assert_eq!(
            merge_patch(&old, &new),
            Some(json!({
                "phase": "Progressing",
                "pauseConditions": null,
                "currentStepIndex": 2,
                "canary": {"weights": {"canary": {"weight": 50}}},
            }))
        );
    }

    #[test]
    fn arrays_are_replaced_whole() {
        let old = json!({"conditions": [{"type": "A"}, {"type": "B"}]});
        let new = json!({"conditions": [{"type": "A"}]});
        assert_eq!(
            merge_patch(&old, &new),
            Some(json!({"conditions": [{"type": "A"}]}))
        );
    }
}
