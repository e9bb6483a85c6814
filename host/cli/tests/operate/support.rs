//! Shared helpers: a test namespace on the shared local cluster, objects written through the API
//! (status through the status subresource, as no controller runs), and the real `sluice` binary.

use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sluice_api::analysis::AnalysisRun;
use sluice_api::experiment::Experiment;
use sluice_api::rollout::Rollout;
use sluice_localcluster::{LocalCluster, TestNamespace};

/// A namespace of the shared cluster and a way to run `sluice` against it.
pub struct Env {
    /// The namespace.
    pub ns: TestNamespace,
}

impl Env {
    /// A fresh namespace named after the test.
    pub async fn new(prefix: &str) -> Env {
        let cluster = LocalCluster::shared();
        let ns = cluster.namespace(prefix).await.expect("a test namespace");
        Env { ns }
    }

    /// Runs `sluice ARGS -n <namespace>` with `KUBECONFIG` set to the cluster's kubeconfig.
    pub fn sluice(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-n", self.ns.name()]);
        Run::from(sluice_command(&all).output().expect("running sluice"))
    }

    /// The Rollout API of the namespace.
    pub fn rollouts(&self) -> Api<Rollout> {
        self.ns.api()
    }

    /// Creates a canary Rollout `name` (steps: setWeight 20, pause, analysis, setWeight 60),
    /// merged with `spec`, then writes `status` through the status subresource.
    pub async fn canary(&self, name: &str, spec: Value, status: Value) -> Value {
        let mut object = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "web", "image": "web:1"}, {"name": "proxy", "image": "proxy:1"}]}
                },
                "strategy": {"canary": {"steps": [
                    {"setWeight": 20},
                    {"pause": {}},
                    {"analysis": {"templates": [{"templateName": "success-rate"}]}},
                    {"setWeight": 60}
                ]}}
            }
        });
        json_patch::merge(&mut object["spec"], &spec);
        self.create_with_status(&self.rollouts(), object, status)
            .await
    }

    /// Creates `object` with `api`, writes `status` (if not null) through the status
    /// subresource, and returns the stored object as JSON.
    pub async fn create_with_status<K>(&self, api: &Api<K>, object: Value, status: Value) -> Value
    where
        K: kube::Resource
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let typed: K = serde_json::from_value(object).expect("a valid object");
        let created = api
            .create(&PostParams::default(), &typed)
            .await
            .expect("created");
        let name = created.meta().name.clone().expect("named");
        if !status.is_null() {
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .expect("status written");
        }
        self.read(api, &name).await
    }

    /// The stored object as JSON, without the fields the API server changes on every write.
    pub async fn read<K>(&self, api: &Api<K>, name: &str) -> Value
    where
        K: kube::Resource
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let object = api.get(name).await.expect("the object exists");
        stable_fields(serde_json::to_value(object).expect("serializable"))
    }

    /// The AnalysisRun API of the namespace.
    pub fn analysis_runs(&self) -> Api<AnalysisRun> {
        self.ns.api()
    }

    /// The Experiment API of the namespace.
    pub fn experiments(&self) -> Api<Experiment> {
        self.ns.api()
    }

    /// The ReplicaSet API of the namespace.
    pub fn replica_sets(&self) -> Api<ReplicaSet> {
        self.ns.api()
    }
}

/// The object without `resourceVersion`, `generation` and `managedFields`.
pub fn stable_fields(mut object: Value) -> Value {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["resourceVersion", "generation", "managedFields"] {
            metadata.remove(field);
        }
    }
    object
}

/// `before` with the JSON merge patch `patch` applied: what the object must look like when the
/// command changed exactly those fields.
pub fn merged(before: &Value, patch: Value) -> Value {
    let mut expected = before.clone();
    json_patch::merge(&mut expected, &patch);
    expected
}

/// The `sluice` binary, with `KUBECONFIG` pointing at the shared cluster.
pub fn sluice_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .args(args)
        .env("KUBECONFIG", LocalCluster::shared().kubeconfig_path())
        .env_remove("NO_COLOR");
    command
}

/// What a run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The exit code.
    pub code: Option<i32>,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            code: output.status.code(),
        }
    }
}

impl Run {
    /// Asserts exit code 0 and no error output; returns standard output.
    pub fn success(&self) -> &str {
        assert_eq!(self.code, Some(0), "{self:#?}");
        assert_eq!(self.stderr, "", "{self:#?}");
        &self.stdout
    }
}

/// Polls `check` every 100 ms for up to 30 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}
