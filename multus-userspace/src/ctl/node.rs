//! Where a node's state is (the delegate cache, the bpffs pins, the plugins, the API) and what is
//! known of each container: its cache entry, whether its namespace still exists, and its pins.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;

use crate::{
    cni::ContainerId,
    config::{
        netconf::{MULTUS_TYPE, SHIM_TYPE},
        MultusConf,
    },
    delegate::{
        cache::{Cache, CacheEntry},
        Attachment,
    },
    netns::{
        netlink::{self, Address, Link},
        NetNs, NetnsError,
    },
    sbr::{self, PodInfo, SbrConfig, DEFAULT_BPFFS_DIR},
    sbrplugin::chain::{chained_plugin, chained_settings},
};

use super::{CtlError, GlobalArgs};

/// Where the container runtime reads its CNI network configurations (`--conf-dir`).
pub const DEFAULT_NET_CONF_DIR: &str = "/etc/cni/net.d";

/// The node as multusctl sees it.
#[derive(Debug)]
pub struct Node {
    /// The multus configuration (from `--conf`, the runtime's configuration directory, or the
    /// defaults), with `--cni-dir` applied.
    pub conf: MultusConf,
    /// Only pods of this namespace (`-n`).
    pub namespace: Option<String>,
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
    pub id: crate::cni::ContainerId,
    /// Its delegate cache entry.
    pub entry: Option<CacheEntry>,
    /// Why the cache entry could not be read.
    pub cache_error: Option<String>,
    /// Its namespace.
    pub netns: NetnsState,
    /// The namespace path: the cache's, or for pins without a cache entry the one the pins
    /// recorded (when it still names the pinned namespace).
    pub netns_path: Option<PathBuf>,
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

impl Record {
    /// The container for messages: `namespace/name (id)`, or the id of a container without a pod.
    pub fn label(&self) -> String {
        match self.entry.as_ref().and_then(|e| e.pod.as_ref()) {
            Some(p) => format!("{}/{} ({})", p.namespace, p.name, self.id),
            None => self.id.to_string(),
        }
    }

    /// The pod's namespace, when the runtime named a pod.
    pub fn pod_namespace(&self) -> Option<&str> {
        self.entry
            .as_ref()
            .and_then(|e| e.pod.as_ref())
            .map(|p| p.namespace.as_str())
    }
}

impl Node {
    /// Finds the cache, the pins and the API from the command line and the multus configuration
    /// (`--conf`, else the runtime's, else the defaults), and checks that the cache directory
    /// exists and that the bpffs directory, when it exists, is on a bpffs.
    pub fn from_args(g: &GlobalArgs) -> Result<Node, CtlError> {
        let (mut conf, conf_origin) = match &g.conf {
            Some(path) => (
                read_conf(path)?,
                Some(format!("cniDir of {}", path.display())),
            ),
            None => runtime_conf(&g.conf_dir, g.conf_dir != Path::new(DEFAULT_NET_CONF_DIR))?,
        };
        let mut cache_origin = conf_origin;
        if let Some(dir) = &g.cni_dir {
            conf.cni_dir = dir.clone();
            cache_origin = Some("--cni-dir".into());
        }
        // A directory that was named must exist; multus's default one, when no multus
        // configuration names one, may be absent (a node where ebpf-sbr runs without multus).
        if !conf.cni_dir.is_dir() {
            match cache_origin {
                Some(origin) => {
                    return Err(CtlError::Missing {
                        what: "the delegate cache directory",
                        path: conf.cni_dir,
                        hint: format!(
                            " (from {origin}): multus creates it at its first ADD; give the node's with --cni-dir or --conf"
                        ),
                    })
                }
                None => tracing::info!(
                    "{} does not exist: no multus cache on this node",
                    conf.cni_dir.display()
                ),
            }
        }
        Self::with_conf(g, conf)
    }

    /// The rest of [`Node::from_args`], once the configuration is known.
    fn with_conf(g: &GlobalArgs, conf: MultusConf) -> Result<Node, CtlError> {
        if let Some(path) = g.kubeconfig.as_ref().filter(|p| !p.exists()) {
            return Err(CtlError::Missing {
                what: "the kubeconfig",
                path: path.clone(),
                hint: " (from --kubeconfig)".into(),
            });
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
            namespace: g.namespace.clone().filter(|_| !g.all_namespaces),
            cache: Cache::new(&conf.cni_dir),
            plugin_path: conf.search_path(&cni_path),
            sbr: SbrConfig::new(bpffs_dir),
            bpffs_present,
            kubeconfig,
            api_timeout,
            conf,
        })
    }

    /// Every container with a cache entry or pins, sorted by id; with `-n`, those of pods of that
    /// namespace.
    pub fn records(&self) -> Result<Vec<Record>, CtlError> {
        Ok(self
            .ids()?
            .into_iter()
            .map(|id| self.record(&id))
            .filter(|r| self.selects(r))
            .collect())
    }

    /// Whether `-n` keeps the container.
    pub fn selects(&self, rec: &Record) -> bool {
        match &self.namespace {
            None => true,
            Some(ns) => rec.pod_namespace() == Some(ns.as_str()),
        }
    }

    /// Every container id the cache or the pins know, in order.
    pub fn ids(&self) -> Result<BTreeSet<ContainerId>, CtlError> {
        let mut ids: BTreeSet<ContainerId> = self.cache.list()?.into_iter().collect();
        ids.extend(self.pin_ids()?);
        Ok(ids)
    }

    /// Container ids that have pins.
    pub fn pin_ids(&self) -> Result<Vec<ContainerId>, CtlError> {
        if !self.bpffs_present {
            return Ok(Vec::new());
        }
        Ok(sbr::pods(&self.sbr)?)
    }

    /// What is known of one container.
    pub fn record(&self, id: &ContainerId) -> Record {
        let (entry, cache_error) = match self.cache.read(id) {
            Ok(e) => (e, None),
            Err(e) => (None, Some(e.to_string())),
        };
        let pins = (self.bpffs_present && self.sbr.bpffs_dir.join(id).is_dir())
            .then(|| sbr::inspect(&self.sbr, id).map_err(|e| e.to_string()));
        let (netns_path, netns) = match entry.as_ref() {
            Some(e) => (e.netns.clone(), NetnsState::of(e.netns.as_deref())),
            None => match &pins {
                Some(Ok(info)) => pinned_netns(info),
                _ => (None, NetnsState::Unknown),
            },
        };
        Record {
            id: id.clone(),
            entry,
            cache_error,
            netns,
            netns_path,
            pins,
        }
    }

    /// The SBR settings an attachment's `ebpf-sbr` plugin uses (its `bpffsDir` and `gateway`), or
    /// the node's for interfaces managed outside a chain.
    pub fn sbr_config_for(&self, attachment: Option<&Attachment>) -> SbrConfig {
        let Some(plugin) = attachment.and_then(|a| chained_plugin(&a.network)) else {
            return self.sbr.clone();
        };
        // The plugin's own parser decides what its keys mean; the node's directory is the default.
        chained_settings(plugin, &self.sbr.bpffs_dir).unwrap_or_else(|e| {
            tracing::warn!("ignoring the chained ebpf-sbr settings: {e}");
            self.sbr.clone()
        })
    }
}

/// The namespace pins without a cache entry recorded, and its state: `Gone` when the path no
/// longer opens or now names another namespace (its cookie is not the pinned one).
fn pinned_netns(info: &PodInfo) -> (Option<PathBuf>, NetnsState) {
    let Some(path) = info.netns.clone() else {
        return (None, NetnsState::Unknown);
    };
    let state = match NetNs::open(&path) {
        Ok(ns) => match ns.run(crate::netns::current_netns_cookie) {
            Ok(Ok(c)) if c == info.cookie => NetnsState::Present,
            Ok(Ok(_)) => NetnsState::Gone,
            Ok(Err(e)) => NetnsState::Error(e.to_string()),
            Err(e) => NetnsState::Error(e.to_string()),
        },
        Err(NetnsError::NotFound(_) | NetnsError::NotNetns(_)) => NetnsState::Gone,
        Err(e) => NetnsState::Error(e.to_string()),
    };
    (Some(path), state)
}

/// Reads a multus configuration file: a conf of type `multus`, or a conflist whose first `multus`
/// plugin is used (with the list's `cniVersion` and `name`).
pub fn read_conf(path: &Path) -> Result<MultusConf, CtlError> {
    match parse_conf(path)? {
        Parsed::Multus(conf) => Ok(*conf),
        Parsed::Other(what) => Err(CtlError::Conf(
            path.to_path_buf(),
            format!("not a multus configuration: {what}"),
        )),
    }
}

/// A network configuration file: multus's, or another plugin's.
enum Parsed {
    Multus(Box<MultusConf>),
    /// What it is instead.
    Other(String),
}

fn parse_conf(path: &Path) -> Result<Parsed, CtlError> {
    let err = |why: String| CtlError::Conf(path.to_path_buf(), why);
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let mut value: Value =
        crate::explain::from_bytes(&bytes).map_err(|e| err(format!("not JSON: {e}")))?;
    let is_multus = |v: &Value| matches!(v.get("type").and_then(Value::as_str), Some(t) if t == MULTUS_TYPE || t == SHIM_TYPE);
    if let Some(plugins) = value.get("plugins").and_then(Value::as_array) {
        let Some(mut plugin) = plugins.iter().find(|p| is_multus(p)).cloned() else {
            return Ok(Parsed::Other(
                "the conflist has no plugin of type multus".into(),
            ));
        };
        if let (Some(p), Some(list)) = (plugin.as_object_mut(), value.as_object()) {
            for key in ["cniVersion", "name"] {
                if let Some(v) = list.get(key) {
                    p.entry(key).or_insert_with(|| v.clone());
                }
            }
        }
        value = plugin;
    } else if !is_multus(&value) {
        return Ok(Parsed::Other(format!(
            "its type is {}, not multus",
            value.get("type").unwrap_or(&Value::Null)
        )));
    }
    if value.get("type").and_then(Value::as_str) == Some(SHIM_TYPE) {
        value = as_the_daemon_sees_it(value)?;
    }
    // multusctl tears down (gc) and repairs: like DEL, a typo in a key that does not change what
    // is torn down is reported and its default used (config::netconf::TEARDOWN_NEUTRAL_KEYS).
    let bytes = serde_json::to_vec(&value).map_err(|e| err(e.to_string()))?;
    let (conf, ignored) =
        MultusConf::decode_for_teardown(&bytes).map_err(|e| err(e.to_string()))?;
    // Said on stderr at every level: the operator must see that the node's file has a typo.
    for note in ignored {
        eprintln!("multusctl: {}: {note}", path.display());
    }
    if !conf.cni_dir.is_absolute() {
        return Err(err(format!(
            "cniDir {} must be an absolute path",
            crate::explain::quote(&conf.cni_dir.display().to_string())
        )));
    }
    Ok(Parsed::Multus(Box::new(conf)))
}

/// Thick mode: the shim's configuration with the daemon's configuration file overlaid, as the
/// daemon overlays it onto each call (it names the node's cache, plugins and pins). Without the
/// file (a node where the daemon never ran), the shim's configuration as it is.
fn as_the_daemon_sees_it(shim: Value) -> Result<Value, CtlError> {
    use crate::daemon::config::{overlay, DaemonConfig, DaemonConfigError, DEFAULT_CONFIG_FILE};
    let path = shim
        .get("daemonConfigFile")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| DEFAULT_CONFIG_FILE.into());
    let err = |why: String| CtlError::Conf(path.clone(), why);
    let daemon = match DaemonConfig::load(&path) {
        Ok(d) => d,
        Err(DaemonConfigError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            tracing::info!(
                "{} does not exist: the shim's configuration alone",
                path.display()
            );
            return Ok(shim);
        }
        Err(e) => return Err(err(e.to_string())),
    };
    tracing::info!(
        "thick mode: the daemon's configuration {} overlaid",
        path.display()
    );
    let bytes = serde_json::to_vec(&shim).map_err(|e| err(e.to_string()))?;
    let merged = overlay(&bytes, &daemon.raw).map_err(err)?;
    serde_json::from_slice(&merged).map_err(|e| err(e.to_string()))
}

/// The configuration the runtime uses, found the way it finds it: the first `.conf`, `.conflist`
/// or `.json` file of `dir` in name order. When that is not multus's (multus is not the node's
/// network), or the directory does not exist and was not given (`explicit`), multus's defaults,
/// with a warning. Returns the configuration and where its `cniDir` came from (`None`: the
/// defaults).
pub fn runtime_conf(dir: &Path, explicit: bool) -> Result<(MultusConf, Option<String>), CtlError> {
    let defaults = |why: String| -> Result<(MultusConf, Option<String>), CtlError> {
        tracing::info!("using multus's defaults: {why}");
        Ok((default_conf()?, None))
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return defaults(format!("{} does not exist", dir.display()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CtlError::Missing {
                what: "the CNI configuration directory",
                path: dir.to_path_buf(),
                hint: " (from --conf-dir)".into(),
            })
        }
        Err(e) => return Err(CtlError::Conf(dir.to_path_buf(), e.to_string())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|x| x == "conf" || x == "conflist" || x == "json")
        })
        .collect();
    files.sort();
    let Some(first) = files.into_iter().next() else {
        return defaults(format!("{} has no network configuration", dir.display()));
    };
    match parse_conf(&first)? {
        Parsed::Multus(conf) => {
            tracing::info!("using the runtime's configuration {}", first.display());
            Ok((*conf, Some(format!("cniDir of {}", first.display()))))
        }
        Parsed::Other(what) => {
            let why = format!(
                "the runtime's configuration {} is not multus's ({what})",
                first.display()
            );
            eprintln!("multusctl: warning: {why}: using multus's defaults (give --conf)");
            defaults(why)
        }
    }
}

/// The configuration multus uses when nothing is configured (its defaults).
fn default_conf() -> Result<MultusConf, CtlError> {
    serde_json::from_value(serde_json::json!({"type": "multus"}))
        .map_err(|e| CtlError::Conf(PathBuf::from("(defaults)"), e.to_string()))
}
