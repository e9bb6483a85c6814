//! The operator commands of the real `sluice` binary against a real kube-apiserver (the shared
//! local cluster). No controller runs: each test writes the status a command needs through the
//! status subresource, runs the command, and checks the exit code, the output and the object
//! afterwards (exactly the fields Argo's patch sets changed, nothing else).

mod actions;
mod status;
mod support;
mod views;
