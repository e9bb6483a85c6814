//! Kubernetes Events (`events.k8s.io/v1`), reported by controller `sluice` with Argo Rollouts'
//! reasons. The reconcilers publish only the events of a transition (what
//! [`sluice_core::events::rollout_events`], [`sluice_core::events::experiment_events`] and the
//! analysis engine return), so steady-state reconciles publish nothing.

use k8s_openapi::NamespaceResourceScope;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use sluice_core::events::Event;

use crate::context::Context;

/// The reporting controller of every event.
pub const REPORTING_CONTROLLER: &str = "sluice";

/// The reporter of this controller process: controller `sluice`, instance the host name.
pub(crate) fn reporter() -> Reporter {
    Reporter::from(REPORTING_CONTROLLER)
}

/// Publishes `events` about `object`, in order, with `action` (e.g. `Reconcile`). A failure is
/// logged and counted, never fatal: the transition already happened.
pub(crate) async fn publish<K>(ctx: &Context, object: &K, action: &str, events: &[Event])
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    if events.is_empty() {
        return;
    }
    let reference = object.object_ref(&());
    let namespace = object.namespace().unwrap_or_default();
    let is_rollout = K::kind(&()) == "Rollout";
    for event in events {
        let type_ = if event.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        // A recorder per event: kube's recorder folds events of the same reason into one series
        // whatever their messages, and these messages differ (revisions, replica counts, steps).
        let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
        let result = recorder
            .publish(
                &KubeEvent {
                    type_,
                    reason: event.reason.clone(),
                    note: Some(truncate(&event.message, MAX_NOTE_BYTES)),
                    action: action.to_string(),
                    secondary: None,
                },
                &reference,
            )
            .await;
        ctx.metrics
            .count_request("Event", &namespace, "Create", &result);
        if is_rollout {
            ctx.metrics
                .count_rollout_event(type_label(type_), &event.reason);
        }
        match result {
            Ok(()) => tracing::info!(reason = %event.reason, message = %event.message, "event"),
            Err(error) => {
                tracing::warn!(reason = %event.reason, %error, "publishing an event failed");
            }
        }
    }
}

fn type_label(type_: EventType) -> &'static str {
    match type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

/// The API server's limit on an event's note.
const MAX_NOTE_BYTES: usize = 1024;

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn notes_are_cut_on_character_boundaries() {
        assert_eq!(truncate("short", 1024), "short");
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(truncate(&"x".repeat(2000), 1024).len(), 1024);
    }
}
