//! The operator commands: each submodule holds a command's arguments and its `run` function, which
//! reads the objects, calls the pure builders and renderers, and talks to the API server.

pub mod actions;
pub mod get;
pub mod list;
pub mod set_image;
pub mod status;
pub mod undo;

use std::io::IsTerminal;

use kube::Api;
use kube::api::{Patch, PatchParams};
use sluice_api::rollout::Rollout;

use crate::kube_context::{Cluster, ClusterArgs, connect};
use crate::patches::Patches;
use crate::text::Style;

/// Connects and returns the Rollout API of the chosen namespace, with the cluster.
async fn rollouts(args: &ClusterArgs) -> anyhow::Result<(Cluster, Api<Rollout>)> {
    let cluster = connect(args).await?;
    let api = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    Ok((cluster, api))
}

/// Sends the patches as Argo does: the status subresource first, then the main resource.
async fn apply_patches(api: &Api<Rollout>, name: &str, patches: &Patches) -> anyhow::Result<()> {
    let params = PatchParams::default();
    if let Some(status) = &patches.status {
        api.patch_status(name, &params, &Patch::Merge(status))
            .await?;
    }
    if let Some(spec) = &patches.spec {
        api.patch(name, &params, &Patch::Merge(spec)).await?;
    }
    Ok(())
}

/// Colours when standard output is a terminal, unless `--no-color` or `NO_COLOR` says otherwise.
pub(crate) fn output_style(no_color: bool) -> Style {
    let disabled = no_color
        || std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty())
        || std::env::var("TERM").is_ok_and(|term| term == "dumb");
    if !disabled && std::io::stdout().is_terminal() {
        Style::Colored
    } else {
        Style::Plain
    }
}
