//! The CNI protocol: spec versions, the environment contract, results of every version and their
//! conversions, error objects with the spec's codes, and the runner that ties them to a binary.
//!
//! Only this module knows the JSON shapes of the CNI specification.

pub mod env;
pub mod error;
pub mod identity;
pub mod ipnet;
pub mod result;
pub mod runner;
pub mod version;

pub use env::{CniArgs, Command, Request};
pub use error::{CniError, ErrorCode};
pub use identity::{ContainerId, IdentityError, IfName, PodIdentity};
pub use ipnet::IpNet;
pub use result::CniResult;
pub use version::CniVersion;
