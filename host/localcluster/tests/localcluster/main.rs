//! Integration tests of the local control plane: a real etcd, kube-apiserver 1.20 and
//! kube-controller-manager on 127.0.0.1 plus the simulated kubelet and scheduler. One cluster is
//! shared by every test of this binary; each test works in its own namespace.

mod custom_resources;
mod lifecycle;
mod rollout_crds;
mod support;
mod third_party;
mod workloads;
