//! Thick mode with the Kubernetes API: a node, the API stand-in on its loopback and a daemon
//! configured for it whose node is [`ApiNode::NODE`] (its pod watch cache follows that node), with
//! the calls the thick API tests make: pods with a NAD network through the shim, added and
//! deleted with their network-status checked.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    cnicall::CniCall,
    confs,
    kube_api::{KubeApiServer, NadSeed, PodSeed},
    netns::Netns,
    node::Node,
    thick::{self, Daemon},
};

const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
const STATUS: &str = "k8s.v1.cni.cncf.io/network-status";

/// A node, the API in its namespace and a daemon configured for both (not started).
pub struct ApiNode {
    pub node: Node,
    pub api: KubeApiServer,
    pub daemon: Daemon,
    /// Prefix of container ids, pod namespaces and the cluster bridge (unique per test file).
    prefix: &'static str,
    /// The cluster network's subnet.
    cluster_subnet: &'static str,
}

impl ApiNode {
    /// `spec.nodeName` of the daemon's node (`MULTUS_NODE_NAME`).
    pub const NODE: &'static str = "node-1";

    /// The API and a daemon whose configuration gets `daemon_keys` (e.g. its `kubeconfig`, from
    /// `api`, made by `with_api`); `prefix` (2-3 letters) keeps names apart between test files.
    pub fn new(
        prefix: &'static str,
        cluster_subnet: &'static str,
        daemon_keys: impl FnOnce(&Node, &KubeApiServer) -> Value,
    ) -> ApiNode {
        let node = Node::new();
        let api = node.api_server();
        let mut daemon = Daemon::configure(&node, daemon_keys(&node, &api));
        daemon
            .env
            .push(("MULTUS_NODE_NAME".to_string(), Self::NODE.to_string()));
        ApiNode {
            node,
            api,
            daemon,
            prefix,
            cluster_subnet,
        }
    }

    /// Starts the daemon and waits until it is ready.
    pub fn start(&mut self, ready_within: Duration) {
        self.daemon.spawn(&self.node);
        self.daemon.wait_ready(ready_within);
    }

    /// The shim's configuration: the cluster network a bridge of its own.
    pub fn shim_conf(&self) -> Value {
        self.daemon.shim_conf(
            "1.0.0",
            vec![confs::bridge(
                "cluster",
                &format!("{}c0", self.prefix),
                self.cluster_subnet,
                "1.0.0",
                &self.node.ipam_dir(),
            )],
        )
    }

    /// A NAD named `name`: a bridge network on `bridge` and `subnet`.
    pub fn nad(&self, name: &str, bridge: &str, subnet: &str) {
        let config = json!({"cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": bridge,
            "ipam": {"type": "host-local", "subnet": subnet, "dataDir": self.node.ipam_dir()}});
        self.api
            .create_nad(NadSeed::new("default", name, config.to_string()))
            .expect("nad");
    }

    /// A pod on `node` asking for `networks`; its uid.
    pub fn pod(&self, name: &str, node: &str, networks: &str) -> String {
        let obj = self
            .api
            .create_pod(
                PodSeed::new("default", name)
                    .node_name(node)
                    .annotation(NETWORKS, networks),
            )
            .expect("pod");
        obj["metadata"]["uid"]
            .as_str()
            .expect("the stand-in gives pods a uid")
            .to_string()
    }

    /// The runtime's call for pod `name` (`uid`) in `netns`.
    pub fn call(&self, command: &str, name: &str, uid: &str, netns: &Netns) -> CniCall {
        let id = format!("{}-{name}", self.prefix);
        CniCall::new(&self.node, command, &id, Some(netns), "eth0").args(&format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID={id};K8S_POD_UID={uid}"
        ))
    }

    /// ADD then DEL through the shim of a container no pod names (no API needed): the cluster
    /// network alone comes up, and nothing is left.
    pub fn add_del_config_only(&self) {
        let netns = Netns::new(&format!("{}p", self.prefix));
        let conf = self.shim_conf();
        let id = format!("{}-noapi", self.prefix);
        let call = CniCall::new(&self.node, "ADD", &id, Some(&netns), "eth0");
        call.run(&self.node, &thick::shim(), &conf).ok();
        assert_eq!(netns.link_names(), vec!["eth0".to_string()]);
        let mut del = call.clone();
        del.command = "DEL".into();
        del.run(&self.node, &thick::shim(), &conf).assert_ok();
        self.node.assert_pod_clean(&netns);
    }

    /// ADD then DEL of pod `name` through the shim; asserts the secondary network came up, its
    /// network-status was written, and nothing is left.
    pub fn add_del(&self, name: &str, uid: &str) {
        let netns = Netns::new(&format!("{}p", self.prefix));
        let conf = self.shim_conf();
        self.call("ADD", name, uid, &netns)
            .run(&self.node, &thick::shim(), &conf)
            .ok();
        assert_eq!(
            netns.link_names(),
            vec!["eth0".to_string(), "net1".to_string()]
        );
        let status = self
            .api
            .pod_annotation("default", name, STATUS)
            .expect("network-status written");
        assert!(status.contains("net1"), "{status}");
        self.call("DEL", name, uid, &netns)
            .run(&self.node, &thick::shim(), &conf)
            .assert_ok();
        self.node.assert_pod_clean(&netns);
    }
}
