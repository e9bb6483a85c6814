//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one of several controller
//! replicas reconciles (Argo's `--leader-elect`, lease `argo-rollouts-controller-lock`).
//!
//! A candidate takes the Lease when it is free, released, or its holder has not renewed it for
//! `lease_duration` as timed by the candidate's own clock (observed changes, not the holder's
//! timestamps, so clock skew between nodes cannot make two leaders). The leader renews every
//! `retry_period`; if it cannot renew for `renew_deadline` it has lost leadership and stops.
//! Writes are replaces carrying the `resourceVersion` read, so two candidates cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::time::Instant;

/// Argo Rollouts' lease name, so a Sluice and an Argo controller never lead at the same time.
pub const DEFAULT_LEASE_NAME: &str = "argo-rollouts-controller-lock";

/// Where and how to elect a leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElection {
    /// The Lease's namespace (the controller's own).
    pub namespace: String,
    /// The Lease's name.
    pub lease_name: String,
    /// This replica's identity, unique among the candidates (pod name and a random suffix).
    pub identity: String,
    /// How long a Lease that is not renewed keeps other candidates out (Argo: 15 s).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership (Argo: 10 s).
    pub renew_deadline: Duration,
    /// How often candidates retry and the leader renews (Argo: 2 s).
    pub retry_period: Duration,
}

impl LeaderElection {
    /// Argo's defaults for a replica named `identity` in `namespace`.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            lease_name: DEFAULT_LEASE_NAME.to_string(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What the last read of the Lease showed, and when this replica saw it change.
struct Observed {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    since: Instant,
}

/// A candidate for leadership.
pub struct Candidate {
    api: Api<Lease>,
    election: LeaderElection,
    observed: Option<Observed>,
}

impl Candidate {
    /// A candidate that has not read the Lease yet.
    pub fn new(client: Client, election: LeaderElection) -> Self {
        Self {
            api: Api::namespaced(client, &election.namespace),
            election,
            observed: None,
        }
    }

    /// This candidate's election settings.
    pub fn election(&self) -> &LeaderElection {
        &self.election
    }

    /// Waits until this replica holds the Lease; logs each failed attempt's reason at debug.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(
                        identity = %self.election.identity,
                        lease = %self.election.lease_name,
                        namespace = %self.election.namespace,
                        "became the leader"
                    );
                    return;
                }
                Ok(false) => {}
                Err(error) => tracing::debug!(%error, "acquiring the leader lease"),
            }
            tokio::time::sleep(self.election.retry_period).await;
        }
    }

    /// Renews the Lease every `retry_period`; returns when leadership is lost (no successful
    /// renewal within `renew_deadline`, or another replica holds the Lease).
    pub async fn keep_leading(&mut self) {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.election.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    tracing::error!(identity = %self.election.identity, "lost leadership: another replica holds the lease");
                    return;
                }
                Err(error) if last_renewed.elapsed() >= self.election.renew_deadline => {
                    tracing::error!(identity = %self.election.identity, %error, "lost leadership: could not renew the lease in time");
                    return;
                }
                Err(error) => tracing::warn!(%error, "renewing the leader lease"),
            }
        }
    }

    /// Gives the Lease up so another replica can lead at once (on graceful shutdown).
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.election.lease_name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.election.identity) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.election.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                tracing::info!(identity = %self.election.identity, "released the leader lease")
            }
            Err(error) => tracing::warn!(%error, "releasing the leader lease"),
        }
    }

    /// One attempt: true if this replica holds the Lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let name = self.election.lease_name.clone();
        let now = MicroTime(Timestamp::now());
        let duration_seconds =
            i32::try_from(self.election.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.election.identity.clone()),
                    lease_duration_seconds: Some(duration_seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(self.election.identity.as_str());
        let changed = self.observed.as_ref().is_none_or(|observed| {
            observed.holder != holder || observed.renew_time != spec.renew_time
        });
        if changed {
            self.observed = Some(Observed {
                holder: holder.clone(),
                renew_time: spec.renew_time.clone(),
                since: Instant::now(),
            });
        }
        let held_for = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.election.lease_duration, Duration::from_secs);
        let expired = self
            .observed
            .as_ref()
            .is_some_and(|observed| observed.since.elapsed() >= held_for);
        if holder.is_some() && !mine && !expired {
            return Ok(false);
        }
        if !mine {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.election.identity.clone());
        spec.lease_duration_seconds = Some(duration_seconds);
        spec.renew_time = Some(now);
        match self
            .api
            .replace(&lease.name_any(), &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }
}
