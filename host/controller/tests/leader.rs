//! Leader election on a real API server: one leader at a time, take-over after the lease
//! expires, immediate hand-over on release.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use sluice_controller::LeaderElection;
use sluice_controller::leader::{Candidate, DEFAULT_LEASE_NAME};
use sluice_localcluster::LocalCluster;

fn election(namespace: &str, identity: &str) -> LeaderElection {
    LeaderElection {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_secs(1),
        retry_period: Duration::from_millis(200),
        ..LeaderElection::new(namespace, identity)
    }
}

async fn holder(api: &kube::Api<Lease>) -> anyhow::Result<(Option<String>, i32)> {
    let spec = api.get(DEFAULT_LEASE_NAME).await?.spec.unwrap_or_default();
    Ok((spec.holder_identity, spec.lease_transitions.unwrap_or(0)))
}

#[tokio::test]
async fn one_leader_at_a_time_with_take_over_on_expiry_and_hand_over_on_release()
-> anyhow::Result<()> {
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("leader").await?;
    let leases = ns.api::<Lease>();

    let mut first = Candidate::new(ns.client(), election(ns.name(), "replica-a"));
    first.acquire().await;
    assert_eq!(holder(&leases).await?, (Some("replica-a".into()), 0));
    let leading = tokio::spawn(async move {
        first.keep_leading().await;
        first
    });

    // While the first replica renews, the second one stays a candidate.
    let mut second = Candidate::new(ns.client(), election(ns.name(), "replica-b"));
    let waited = tokio::time::timeout(Duration::from_secs(4), second.acquire()).await;
    assert!(
        waited.is_err(),
        "the second replica took a lease that was being renewed"
    );
    assert_eq!(holder(&leases).await?.0.as_deref(), Some("replica-a"));

    // The first replica dies without releasing: the second takes over once the lease expires.
    leading.abort();
    let _aborted = leading.await;
    tokio::time::timeout(Duration::from_secs(10), second.acquire()).await?;
    assert_eq!(holder(&leases).await?, (Some("replica-b".into()), 1));

    // A graceful stop releases the lease, and a new candidate leads at its first attempt.
    second.release().await;
    assert_eq!(holder(&leases).await?.0, None);
    let mut third = Candidate::new(ns.client(), election(ns.name(), "replica-c"));
    tokio::time::timeout(Duration::from_millis(500), third.acquire()).await?;
    assert_eq!(holder(&leases).await?, (Some("replica-c".into()), 2));
    Ok(())
}

#[tokio::test]
async fn a_leader_whose_lease_is_taken_stops_leading() -> anyhow::Result<()> {
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("leader-lost").await?;
    let leases = ns.api::<Lease>();
    let mut leader = Candidate::new(ns.client(), election(ns.name(), "replica-a"));
    leader.acquire().await;

    // Someone else writes itself into the lease (say, after a network partition).
    let mut lease = leases.get(DEFAULT_LEASE_NAME).await?;
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = Some("replica-z".into());
    }
    leases
        .replace(DEFAULT_LEASE_NAME, &Default::default(), &lease)
        .await?;
    tokio::time::timeout(Duration::from_secs(5), leader.keep_leading()).await?;
    assert_eq!(holder(&leases).await?.0.as_deref(), Some("replica-z"));
    Ok(())
}
