//! Reading Sluice objects with errors that say what to do: a missing object names its namespace
//! and the closest existing name, a missing CRD says how to install it.

use std::fmt::Debug;

use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::text::closest_name;

/// The error for an object that does not exist, with a suggestion when a name is close.
pub fn not_found_message(kind: &str, name: &str, namespace: &str, existing: &[String]) -> String {
    let mut message = format!(
        "{} \"{name}\" not found in namespace \"{namespace}\"",
        kind.to_lowercase()
    );
    match closest_name(name, existing) {
        Some(suggestion) => message.push_str(&format!("; did you mean \"{suggestion}\"?")),
        None if existing.is_empty() => message.push_str(&format!(
            " (there is no {kind} in it; use -n to pick another namespace)"
        )),
        None => {}
    }
    message
}

/// The error for a cluster without the CRD of `kind`.
pub fn crd_missing_message(kind: &str) -> String {
    format!("the {kind} CRD is not installed: run `sluice crds | kubectl apply --server-side -f -`")
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Gets `name`, or fails with [`not_found_message`] or [`crd_missing_message`].
pub async fn get<K>(api: &Api<K>, namespace: &str, name: &str) -> anyhow::Result<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let kind = K::kind(&());
    let found = match api.get_opt(name).await {
        Ok(found) => found,
        // A missing API answers 404 too (with a plain-text body): listing tells the two apart.
        Err(error) if is_not_found(&error) => None,
        Err(error) => {
            return Err(anyhow::Error::new(error).context(format!("reading {kind} \"{name}\"")));
        }
    };
    match found {
        Some(object) => Ok(object),
        None => {
            let existing = names(api).await?;
            anyhow::bail!(not_found_message(&kind, name, namespace, &existing))
        }
    }
}

/// The names of the objects `api` lists, or [`crd_missing_message`] when the API is not served.
pub async fn names<K>(api: &Api<K>) -> anyhow::Result<Vec<String>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let kind = K::kind(&());
    match api.list_metadata(&ListParams::default()).await {
        Ok(list) => Ok(list.items.iter().map(|object| object.name_any()).collect()),
        Err(error) if is_not_found(&error) => anyhow::bail!(crd_missing_message(&kind)),
        Err(error) => Err(anyhow::Error::new(error).context(format!("listing {kind}s"))),
    }
}

/// Lists the objects `api` sees, or fails with [`crd_missing_message`].
pub async fn list<K>(api: &Api<K>) -> anyhow::Result<Vec<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let kind = K::kind(&());
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(error) if is_not_found(&error) => anyhow::bail!(crd_missing_message(&kind)),
        Err(error) => Err(anyhow::Error::new(error).context(format!("listing {kind}s"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_suggests_the_closest_name() {
        let existing = ["food".to_owned(), "web".to_owned()];
        assert_eq!(
            not_found_message("Rollout", "foo", "bar", &existing),
            "rollout \"foo\" not found in namespace \"bar\"; did you mean \"food\"?"
        );
        assert_eq!(
            not_found_message("Rollout", "payments", "bar", &existing),
            "rollout \"payments\" not found in namespace \"bar\""
        );
        assert_eq!(
            not_found_message("AnalysisRun", "x", "bar", &[]),
            "analysisrun \"x\" not found in namespace \"bar\" (there is no AnalysisRun in it; use -n to pick another namespace)"
        );
    }

    #[test]
    fn crd_missing_says_how_to_install() {
        assert_eq!(
            crd_missing_message("Rollout"),
            "the Rollout CRD is not installed: run `sluice crds | kubectl apply --server-side -f -`"
        );
    }
}
