//! Where a node's state is (the delegate cache, the bpffs pins, the plugins, the API) and what is
//! known of each container: its cache entry, whether its namespace still exists, and its pins.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Map, Value};

use crate::{
    cni::CniResult,
    config::MultusConf,
    delegate::{
        cache::{Cache, CacheEntry},
        Attachment,
    },
    netns::{
        netlink::{self, Address, Link},
        NetNs, NetnsError,
    },
    sbr::{self, IfAddr, InterfaceSpec, PodInfo, SbrConfig, DEFAULT_BPFFS_DIR},
    sbrplugin::config::{chained_plugin, chained_settings},
};

use super::{CtlError, GlobalArgs};

/// The node as multusctl sees it.
#[derive(Debug)]
pub struct Node {
    /// The multus configuration (from `--conf`, or the defaults), with `--cni-dir` applied.
    pub conf: MultusConf,
    /// The delegate cache.
    pub cache: Cache,
    /// SBR settings: the bpffs directory of the pins.
    pub sbr: SbrConfig,
    /// Whether the bpffs directory exists (it does not before the first ebpf-sbr ADD).
    pub bpffs_present: bool,
    /// Where delegate plugins are found (binDir, then `$CNI_PATH`).
    pub plugin_path: Vec<PathBuf>,
    /// The kubeconfig, when the API is to be used.
    pub kubeconfig: Option<PathBuf>,
    /// Total time for the API.
    pub api_timeout: Duration,
}

/// What is known of a container's network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetnsState {
    /// The recorded path is a network namespace.
    Present,
    /// The recorded path does not exist or is no longer a namespace.
    Gone,
    /// No path is recorded (pins without a cache entry).
    Unknown,
    /// The path could not be inspected.
    Error(String),
}

impl NetnsState {
    /// The state of the namespace recorded at `path` (`Unknown` when none is).
    pub fn of(path: Option<&Path>) -> Self {
        match path.map(NetNs::open) {
            None => NetnsState::Unknown,
            Some(Ok(_)) => NetnsState::Present,
            Some(Err(NetnsError::NotFound(_) | NetnsError::NotNetns(_))) => NetnsState::Gone,
            Some(Err(e)) => NetnsState::Error(e.to_string()),
        }
    }

    /// The JSON spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            NetnsState::Present => "present",
            NetnsState::Gone => "gone",
            NetnsState::Unknown => "unknown",
            NetnsState::Error(_) => "error",
        }
    }
}

/// Everything known of one container.
#[derive(Debug)]
pub struct Record {
    /// The container id.
    pub id: String,
    /// Its delegate cache entry.
    pub entry: Option<CacheEntry>,
    /// Why the cache entry could not be read.
    pub cache_error: Option<String>,
    /// Its namespace.
    pub netns: NetnsState,
    /// Its SBR pins: `None` without a pin directory, `Err` when they cannot be read.
    pub pins: Option<Result<PodInfo, String>>,
}

/// The links and addresses of a live namespace.
#[derive(Debug, Default)]
pub struct Live {
    /// Links.
    pub links: Vec<Link>,
    /// Addresses.
    pub addresses: Vec<Address>,
}

impl Live {
    /// Reads the links and addresses of the namespace at `path`.
    pub fn read(path: &Path) -> Result<Live, String> {
        let ns = NetNs::open(path).map_err(|e| e.to_string())?;
        ns.netlink(|h| async move {
            let links = netlink::links(&h).await?;
            let addresses = netlink::addresses(&h, None).await?;
            Ok::<_, rtnetlink::Error>(Live { links, addresses })
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
    }

    /// A link by name.
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// A link by index.
    pub fn link_by_index(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }
}

impl Node {
    /// Finds the cache, the pins and the API from the command line and `--conf`, and checks that the
    /// bpffs directory, when it exists, is on a bpffs.
    pub fn from_args(g: &GlobalArgs) -> Result<Node, CtlError> {
        let mut conf = match &g.conf {
            Some(path) => read_conf(path)?,
            None => default_conf()?,
        };
        if let Some(dir) = &g.cni_dir {
            conf.cni_dir = dir.clone();
        }
        let bpffs_dir = g
            .bpffs_dir
            .clone()
            .or_else(|| conf.ebpf_sbr.as_ref().and_then(|o| o.bpffs_dir.clone()))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BPFFS_DIR));
        let bpffs_present = match std::fs::metadata(&bpffs_dir) {
            Ok(_) => {
                if !sbr::is_bpffs(&bpffs_dir).map_err(|e| CtlError::Bpffs(bpffs_dir.clone(), e))? {
                    return Err(CtlError::NotBpffs(bpffs_dir));
                }
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(
                    "{} does not exist: no ebpf-sbr pins on this node",
                    bpffs_dir.display()
                );
                false
            }
            Err(e) => return Err(CtlError::Bpffs(bpffs_dir, e)),
        };
        let cni_path: Vec<PathBuf> = std::env::var_os("CNI_PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let kubeconfig = g
            .kubeconfig
            .clone()
            .or_else(|| conf.kubeconfig.clone())
            .filter(|p| !p.as_os_str().is_empty());
        let api_timeout = Duration::from_secs_f64(if g.api_timeout.is_finite() {
            g.api_timeout.max(0.0)
        } else {
            2.0
        });
        Ok(Node {
            cache: Cache::new(&conf.cni_dir),
            plugin_path: conf.search_path(&cni_path),
            sbr: SbrConfig::new(bpffs_dir),
            bpffs_present,
            kubeconfig,
            api_timeout,
            conf,
        })
    }

    /// Every container with a cache entry or pins, sorted by id.
    pub fn records(&self) -> Result<Vec<Record>, CtlError> {
        Ok(self.ids()?.into_iter().map(|id| self.record(&id)).collect())
    }

    /// Every container id the cache or the pins know, in order.
    pub fn ids(&self) -> Result<BTreeSet<String>, CtlError> {
        let mut ids: BTreeSet<String> = self.cache.list()?.into_iter().collect();
        ids.extend(self.pin_ids()?);
        Ok(ids)
    }

    /// Container ids that have pins.
    pub fn pin_ids(&self) -> Result<Vec<String>, CtlError> {
        if !self.bpffs_present {
            return Ok(Vec::new());
        }
        Ok(sbr::pods(&self.sbr)?)
    }

    /// What is known of one container.
    pub fn record(&self, id: &str) -> Record {
        let (entry, cache_error) = match self.cache.read(id) {
            Ok(e) => (e, None),
            Err(e) => (None, Some(e.to_string())),
        };
        let netns = NetnsState::of(entry.as_ref().and_then(|e| e.netns.as_deref()));
        let pins = (self.bpffs_present && self.sbr.bpffs_dir.join(id).is_dir())
            .then(|| sbr::inspect(&self.sbr, id).map_err(|e| e.to_string()));
        Record {
            id: id.to_string(),
            entry,
            cache_error,
            netns,
            pins,
        }
    }

    /// The SBR settings an attachment's `ebpf-sbr` plugin uses (its `bpffsDir` and `gateway`), or
    /// the node's for interfaces managed outside a chain.
    pub fn sbr_config_for(&self, attachment: Option<&Attachment>) -> SbrConfig {
        let Some(plugin) = attachment.and_then(ebpf_sbr_plugin) else {
            return self.sbr.clone();
        };
        // The plugin's own parser decides what its keys mean; the node's directory is the default.
        chained_settings(plugin, &self.sbr.bpffs_dir).unwrap_or_else(|e| {
            tracing::warn!("ignoring the chained ebpf-sbr settings: {e}");
            self.sbr.clone()
        })
    }
}

/// The `ebpf-sbr` plugin of an attachment's chain.
pub fn ebpf_sbr_plugin(a: &Attachment) -> Option<&Map<String, Value>> {
    chained_plugin(&a.network)
}

/// The addresses (with prefix and gateway) a cached result gives `ifname`: the IPs whose
/// `interface` names it, or every IP when the result lists no interfaces (CNI < 0.3.0).
pub fn result_addresses(result: Option<&Value>, ifname: &str) -> Vec<IfAddr> {
    let Some(parsed) = result.and_then(|r| CniResult::parse(r).ok()) else {
        return Vec::new();
    };
    let index = parsed.interface_index(ifname);
    parsed
        .ips
        .iter()
        .filter(|ip| parsed.interfaces.is_empty() || (index.is_some() && ip.interface == index))
        .map(|ip| IfAddr {
            address: ip.address.addr,
            prefix_len: ip.address.prefix_len,
            gateway: ip.gateway,
        })
        .collect()
}

/// The interface spec `ebpf-sbr` would have used for `ifname`: the addresses of its cached
/// attachment's result, or the interface's own when nothing is cached for it.
pub fn interface_spec(attachment: Option<&Attachment>, ifname: &str) -> InterfaceSpec {
    let result = attachment.and_then(|a| a.result.as_ref());
    InterfaceSpec {
        ifname: ifname.to_string(),
        addresses: result_addresses(result, ifname),
    }
}

/// Reads a multus configuration file: a conf, or a conflist whose first `multus` plugin is used
/// (with the list's `cniVersion` and `name`).
pub fn read_conf(path: &Path) -> Result<MultusConf, CtlError> {
    let err = |why: String| CtlError::Conf(path.to_path_buf(), why);
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let mut value: Value =
        serde_json::from_slice(&bytes).map_err(|e| err(format!("not JSON: {e}")))?;
    if let Some(plugins) = value.get("plugins").and_then(Value::as_array) {
        let mut plugin = plugins
            .iter()
            .find(|p| p.get("type").and_then(Value::as_str) == Some("multus"))
            .cloned()
            .ok_or_else(|| err("the conflist has no plugin of type multus".into()))?;
        if let (Some(p), Some(list)) = (plugin.as_object_mut(), value.as_object()) {
            for key in ["cniVersion", "name"] {
                if let Some(v) = list.get(key) {
                    p.entry(key).or_insert_with(|| v.clone());
                }
            }
        }
        value = plugin;
    }
    let conf: MultusConf = serde_path_to_error::deserialize(&value)
        .map_err(|e| err(format!("at `{}`: {}", e.path(), e.inner())))?;
    if !conf.cni_dir.is_absolute() {
        return Err(err(format!(
            "cniDir {:?} must be an absolute path",
            conf.cni_dir
        )));
    }
    Ok(conf)
}

/// The configuration multus uses when nothing is configured (its defaults).
fn default_conf() -> Result<MultusConf, CtlError> {
    serde_json::from_value(serde_json::json!({"type": "multus"}))
        .map_err(|e| CtlError::Conf(PathBuf::from("(defaults)"), e.to_string()))
}
