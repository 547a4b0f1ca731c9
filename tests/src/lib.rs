//! Test harness: namespaces, private bpffs mounts, the source-based-routing topology, the reference
//! CNI plugins, and traffic helpers. Everything cleans up on drop, also when a test fails.

pub mod bpffs;
pub mod cni;
pub mod netns;
pub mod sbr;
pub mod topo;
pub mod traffic;
