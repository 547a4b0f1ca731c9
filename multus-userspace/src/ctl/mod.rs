//! `multusctl`, the operators' view of a node: which containers have which attachments (from the
//! delegate cache), what the eBPF source-based routing holds for them (from the bpffs pins),
//! counters, drift (and its repair), and garbage.
//!
//! One file per subcommand; [`node`] finds the cache and the pins and gathers what is known of each
//! container, [`model`] is the stable JSON schema (`apiVersion: multusctl/v1`), [`table`] renders
//! the human-readable form. Nothing here shells out: the cache is read as files, the pins through
//! [`crate::sbr`], the namespaces through netlink.

pub mod check;
pub mod completions;
pub mod daemon;
pub mod gc;
pub mod kube;
pub mod list;
pub mod logs;
pub mod model;
pub mod node;
pub mod repair;
pub mod show;
pub mod stats;
pub mod table;

use std::{io::Write, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::netns::mountns::IfUnknown;

pub use node::Node;

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: `check` found drift, `repair` could not fix everything, or `gc` could not remove
/// everything it should.
pub const EXIT_PROBLEMS: u8 = 1;
/// Exit status: bad usage (clap's own).
pub const EXIT_USAGE: u8 = 2;
/// Exit status: multusctl could not do its job (not root, no bpffs, unreadable configuration, a
/// path that does not exist, unknown container).
pub const EXIT_ERROR: u8 = 3;

/// The operators' view of a multus node: attachments, eBPF source-based routing maps, counters,
/// drift and garbage.
///
/// Reads the multus delegate cache (one file per container under cniDir) and the ebpf-sbr pins
/// (one directory per container under the bpffs directory), where the node's multus
/// configuration (the runtime's first CNI configuration, or --conf) says they are. Works without
/// the Kubernetes API; with a kubeconfig, `list` and `show` also report what the API says of each
/// pod. Needs root.
///
/// Exit status: 0 success, 1 `check` found drift, `repair` could not fix everything or `gc` failed
/// to remove something, 2 bad usage, 3 multusctl could not run (not root, no bpffs, unreadable
/// configuration, a path that does not exist, unknown container).
#[derive(Debug, Parser)]
#[command(
    name = "multusctl",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Where the node's state is, and how to print it.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// Options of every subcommand.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// A multus configuration file (00-multus.conf, or a .conflist whose plugin is multus): gives
    /// cniDir, binDir, kubeconfig and ebpfSbr.bpffsDir [default: the configuration the runtime
    /// uses, the first of --conf-dir, when it is multus's].
    #[arg(long, global = true, value_name = "FILE", env = "MULTUSCTL_CONF")]
    pub conf: Option<PathBuf>,
    /// The runtime's CNI configuration directory, where the node's multus configuration is found
    /// without --conf: its first .conf/.conflist/.json file in name order, as the runtime picks it.
    #[arg(long, global = true, value_name = "DIR", default_value = node::DEFAULT_NET_CONF_DIR)]
    pub conf_dir: PathBuf,
    /// The delegate cache directory [default: cniDir of the configuration, else
    /// /var/lib/cni/multus]. When named (here or by a configuration), it must exist.
    #[arg(long, global = true, value_name = "DIR")]
    pub cni_dir: Option<PathBuf>,
    /// The bpffs directory of the ebpf-sbr pins [default: ebpfSbr.bpffsDir of the configuration,
    /// else /sys/fs/bpf/multus-sbr].
    #[arg(long, global = true, value_name = "DIR")]
    pub bpffs_dir: Option<PathBuf>,
    /// A kubeconfig for the Kubernetes API [default: kubeconfig of the configuration; none: no API
    /// is used].
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Total time the command may spend on the Kubernetes API, in seconds; past it, pods are
    /// reported without what the API says.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 2.0)]
    pub api_timeout: f64,
    /// Only the pods of this namespace (containers without a pod are left out) [default: every
    /// namespace: a node has no current namespace]. With a name that has no `/`, `show`, `stats`,
    /// `check` and `logs` take it as the pod's name in this namespace.
    #[arg(short, long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Every namespace (the default; for kubectl's habit).
    #[arg(short = 'A', long, global = true, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Tables without their header line.
    #[arg(long, global = true)]
    pub no_headers: bool,
    /// Log more to stderr (-v: progress, -vv: debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// The table with full container ids and, for `list`, more columns.
    Wide,
    /// The documented JSON schema (apiVersion multusctl/v1), one document (per sample with
    /// `stats --watch`, one a line).
    Json,
    /// The same documents as YAML (`---` before each sample with `stats --watch`).
    Yaml,
    /// The container ids of the items, one a line.
    Name,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Every container with attachments on this node: pod, namespace, interfaces with their
    /// networks and addresses, and its source-based routing state.
    List(list::ListArgs),
    /// One container (by id or unique id prefix) or every sandbox of a pod (namespace/name): the
    /// delegate chain, cached results, SBR map entries and the programs attached per interface.
    Show(show::ShowArgs),
    /// Per-interface counters of the SBR programs (matched, redirected, passed, dropped by reason);
    /// with --watch, rates per second.
    Stats(stats::StatsArgs),
    /// Verifies every attachment: namespace and interfaces present, SBR pins present, programs
    /// attached, map entries equal to the interfaces' addresses. Exits 1 naming each drift.
    Check(check::CheckArgs),
    /// Repairs the eBPF source-based routing of a container or pod (what `check` reports as drift),
    /// touching nothing else: no delegate runs, no lease or interface changes. Exits 1 naming what
    /// it could not fix.
    Repair(repair::RepairArgs),
    /// Removes the cache entries and pins of containers whose network namespace is gone; cache
    /// entries are torn down the way multus DEL does, so their delegates release their IPs.
    Gc(gc::GcArgs),
    /// Prints the aya-log debug records of a pod's SBR programs (programs loaded with the
    /// ebpf-sbr `debug` option log each redirect); with --follow, until interrupted.
    Logs(logs::LogsArgs),
    /// The node's multus-daemon (thick mode): readiness, calls in flight, watch caches' sync
    /// state, calls answered. Exits 1 when it is not running or not ready (with --live: not running).
    Daemon(daemon::DaemonArgs),
    /// Prints a shell completion script.
    Completions(completions::CompletionsArgs),
    /// Prints the man page of multusctl or of one subcommand (roff), or writes them all to --dir.
    Man(completions::ManArgs),
}

/// Why a command could not run.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Not running as root.
    #[error(
        "multusctl needs root: the delegate cache is readable by root only (files 0600 in a 0700 directory) \
         and BPF pins need CAP_BPF and CAP_SYS_ADMIN; run it with sudo"
    )]
    NotRoot,
    /// The bpffs directory exists but no bpffs is mounted there.
    #[error(
        "{0} is not on a bpffs: no bpffs is mounted there, so no ebpf-sbr pins can be read \
         (mount one with `mount -t bpf bpffs /sys/fs/bpf`, or point --bpffs-dir / ebpfSbr.bpffsDir at the right directory)"
    )]
    NotBpffs(PathBuf),
    /// The bpffs directory could not be inspected.
    #[error("cannot inspect the bpffs directory {0}: {1}")]
    Bpffs(PathBuf, std::io::Error),
    /// The multus configuration could not be used.
    #[error("multus configuration {0}: {1}")]
    Conf(PathBuf, String),
    /// A path given on the command line or by the configuration does not exist.
    #[error("{what} {} does not exist{hint}", path.display())]
    Missing {
        /// What the path was to be.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Where it came from and what to do (starts with `: ` when present).
        hint: String,
    },
    /// The delegate cache could not be read.
    #[error(transparent)]
    Cache(#[from] crate::delegate::cache::CacheError),
    /// The SBR pins could not be read.
    #[error(transparent)]
    Sbr(#[from] crate::sbr::SbrError),
    /// The SBR pins of one pod could not be read.
    #[error("{pod}: {source}")]
    PodSbr {
        /// The pod, as `namespace/name (container id)`.
        pod: String,
        /// Why.
        source: crate::sbr::SbrError,
    },
    /// No container matches.
    #[error("{0}")]
    NotFound(String),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Parses the command line and runs it; returns the exit status.
pub fn run(cli: Cli) -> Result<u8, CtlError> {
    let level = match cli.global.verbose {
        0 => crate::config::LogLevel::Error,
        1 => crate::config::LogLevel::Verbose,
        _ => crate::config::LogLevel::Debug,
    };
    crate::logging::init(level, None, true);
    let mut out = std::io::stdout().lock();
    match &cli.command {
        CtlCommand::Completions(args) => return completions::completions(args, &mut out),
        CtlCommand::Man(args) => return completions::man(args, &mut out),
        _ => {}
    }
    require_root()?;
    if let CtlCommand::Daemon(args) = &cli.command {
        let code = daemon::run(args, cli.global.output, &mut out)?;
        out.flush()?;
        return Ok(code);
    }
    drop(out);
    // The pins, the anchors and the node's files are where multus and ebpf-sbr leave them: in the
    // node's mount namespace (a private one, as `ip netns exec` makes, may see none of them).
    crate::netns::mountns::in_node_mount_ns(IfUnknown::RunHere, || run_on_node(&cli))
        .map_err(|e| CtlError::Sbr(e.into()))?
}

/// Runs a command that reads the node (in its mount namespace).
fn run_on_node(cli: &Cli) -> Result<u8, CtlError> {
    let mut out = std::io::stdout().lock();
    let node = Node::from_args(&cli.global)?;
    let format = cli.global.output;
    table::set_style(cli.global.no_headers, format == Format::Wide);
    let code = match &cli.command {
        CtlCommand::List(args) => list::run(&node, args, format, &mut out)?,
        CtlCommand::Show(args) => show::run(&node, args, format, &mut out)?,
        CtlCommand::Stats(args) => stats::run(&node, args, format, &mut out)?,
        CtlCommand::Check(args) => check::run(&node, args, format, &mut out)?,
        CtlCommand::Repair(args) => repair::run(&node, args, format, &mut out)?,
        CtlCommand::Gc(args) => gc::run(&node, args, format, &mut out)?,
        CtlCommand::Logs(args) => logs::run(&node, args, &mut out)?,
        CtlCommand::Completions(_) | CtlCommand::Man(_) | CtlCommand::Daemon(_) => EXIT_OK,
    };
    out.flush()?;
    Ok(code)
}

fn require_root() -> Result<(), CtlError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(CtlError::NotRoot);
    }
    Ok(())
}

/// Writes `doc` in a structured format (JSON or YAML; `stream`: one of several documents, as
/// `stats --watch` writes them: JSON on one line, YAML after `---`). Returns false, writing
/// nothing, for the formats each command renders itself (table, wide, name).
pub fn write_document(
    out: &mut dyn Write,
    format: Format,
    doc: &impl serde::Serialize,
    stream: bool,
) -> Result<bool, CtlError> {
    match format {
        Format::Json => write_json(out, doc, stream)?,
        Format::Yaml => {
            let text = serde_norway::to_string(doc)
                .map_err(|e| CtlError::Output(std::io::Error::other(e)))?;
            if stream {
                writeln!(out, "---")?;
            }
            write!(out, "{text}")?;
        }
        Format::Table | Format::Wide | Format::Name => return Ok(false),
    }
    Ok(true)
}

/// Writes `-o name`: each container id once, in order, one a line.
pub fn write_names<'a>(
    out: &mut dyn Write,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<(), CtlError> {
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if seen.insert(id) {
            writeln!(out, "{id}")?;
        }
    }
    Ok(())
}

/// Writes one JSON document (pretty, or compact on one line) and a newline.
pub fn write_json(
    out: &mut dyn Write,
    value: &impl serde::Serialize,
    compact: bool,
) -> Result<(), CtlError> {
    let text = if compact {
        serde_json::to_string(value)
    } else {
        serde_json::to_string_pretty(value)
    }
    .map_err(|e| CtlError::Output(std::io::Error::other(e)))?;
    writeln!(out, "{text}")?;
    Ok(())
}
