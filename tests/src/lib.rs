//! Test harness shared by the integration tests, the benchmarks and the demo: uniquely named
//! network namespaces that clean up after themselves, a "node" namespace in which plugins run (so
//! the host's own interfaces are never touched), CNI invocations, and leak checks.
//!
//! Everything here uses real namespaces, real reference plugins (/usr/lib/cni) and the real
//! product binaries. Nothing skips: a missing prerequisite panics with what to install.

pub mod bins;
pub mod bpffs;
pub mod chain;
pub mod cni;
pub mod cnicall;
pub mod confs;
pub mod image;
pub mod kube_api;
pub mod kubelet_podresources;
pub mod leaks;
pub mod mountns;
pub mod netns;
pub mod node;
pub mod podman;
pub mod reference_multus;
pub mod sbr;
pub mod sbrplugin;
pub mod soak;
pub mod stats;
pub mod thick;
pub mod thick_api;
pub mod topo;
pub mod traffic;

pub use cnicall::{CniCall, CniOutput};
pub use netns::Netns;
pub use node::Node;
