//! A real local Kubernetes control plane (kube-apiserver, kube-controller-manager, etcd) with a simulated kubelet, for tests and the demo.
