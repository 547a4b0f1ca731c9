//! Kubernetes integration.

pub mod devinfo;
pub mod podresources;
