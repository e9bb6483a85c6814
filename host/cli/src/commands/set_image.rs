//! `set image ROLLOUT CONTAINER=IMAGE`: update container images, as Argo does, by replacing the
//! object read (so fields this version of Sluice does not know are kept), retrying on conflicts.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use sluice_api::rollout::Rollout;

use super::rollouts;
use crate::kube_context::ClusterArgs;
use crate::lookup;
use crate::patches::set_image;

/// How many times a conflicting update is retried (Argo's `maxAttempts`).
const MAX_ATTEMPTS: usize = 5;

/// Arguments of `set`.
#[derive(Args)]
pub struct SetArgs {
    #[command(subcommand)]
    target: SetTarget,
}

#[derive(Subcommand)]
enum SetTarget {
    /// Update the image of a rollout's containers (`*=IMAGE` for all of them).
    Image(SetImageArgs),
}

/// Arguments of `set image`.
#[derive(Args)]
pub struct SetImageArgs {
    /// The rollout.
    #[arg(value_name = "ROLLOUT")]
    name: String,
    /// `CONTAINER=IMAGE`; the container `*` means every container.
    #[arg(value_name = "CONTAINER=IMAGE")]
    assignment: String,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Updates the images in the Rollout, or in the Deployment its `workloadRef` names.
pub async fn run(args: &SetArgs) -> anyhow::Result<ExitCode> {
    let SetTarget::Image(args) = &args.target;
    let Some((container, image)) = args
        .assignment
        .split_once('=')
        .filter(|(container, image)| {
            !container.is_empty() && !image.is_empty() && !image.contains('=')
        })
    else {
        anyhow::bail!(
            "expected CONTAINER=IMAGE (for example `app=nginx:1.27`, or `*=nginx:1.27` for every container), got {:?}",
            args.assignment
        );
    };
    let (cluster, api) = rollouts(&args.cluster).await?;
    let rollout = lookup::get(&api, &cluster.namespace, &args.name).await?;
    let (resource, name) = match &rollout.spec.workload_ref {
        Some(reference) => (
            ApiResource::erase::<Deployment>(&()),
            reference.name.clone().unwrap_or_default(),
        ),
        None => (ApiResource::erase::<Rollout>(&()), args.name.clone()),
    };
    let dynamic: Api<DynamicObject> =
        Api::namespaced_with(cluster.client.clone(), &cluster.namespace, &resource);
    update_image(&dynamic, &name, container, image).await?;
    println!("{} \"{name}\" image updated", resource.kind.to_lowercase());
    Ok(ExitCode::SUCCESS)
}

/// Sets the image of `container` (`*`: every container) in the object `name` by replacing the
/// object read, re-reading and retrying when the update conflicts.
pub(crate) async fn update_image(
    api: &Api<DynamicObject>,
    name: &str,
    container: &str,
    image: &str,
) -> anyhow::Result<()> {
    let mut attempt = 1;
    loop {
        let current = serde_json::to_value(api.get(name).await?)?;
        let updated: DynamicObject =
            serde_json::from_value(set_image(&current, container, image)?)?;
        match api.replace(name, &PostParams::default(), &updated).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < MAX_ATTEMPTS => {
                attempt += 1;
            }
            Err(error) => return Err(error.into()),
        }
    }
}
