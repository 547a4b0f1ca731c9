//! `multusctl logs <container id | namespace/pod> [--follow]`: the aya-log records of a pod's SBR
//! programs. Programs loaded for a pod whose ebpf-sbr configuration has `"debug": true` log each
//! redirect (`sbr: if 2 -> if 3`) into a ring buffer shared by the pods that use the same
//! programs; this reads the buffer ([`crate::sbr::LogReader`]) and keeps the records of the pod's
//! namespace, with interface names added. Reading consumes the buffer: records of other pods read
//! at the same time are dropped.

use std::{collections::BTreeMap, io::Write, time::Duration};

use clap::Args;

use crate::sbr::LogReader;

use super::{model::ifnames, model::live_of, show::resolve, CtlError, Node, EXIT_OK};

/// Options of `logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// A container id (or a unique prefix of one), or a pod as namespace/name (every sandbox of
    /// the pod on this node), or with -n a pod name.
    pub target: String,
    /// Keep printing new records until interrupted.
    #[arg(short, long)]
    pub follow: bool,
}

/// One pod's reader and what its records need to be readable.
struct Source {
    label: String,
    reader: LogReader,
    names: BTreeMap<u32, String>,
}

/// Runs `logs`.
pub fn run(node: &Node, args: &LogsArgs, out: &mut dyn Write) -> Result<u8, CtlError> {
    let mut sources = Vec::new();
    for rec in resolve(node, &args.target, None)? {
        let label = rec.label();
        let Some(Ok(info)) = &rec.pins else {
            return Err(CtlError::NotFound(format!(
                "{label} has no readable SBR pins under {}: no programs log for it",
                node.sbr.bpffs_dir.display()
            )));
        };
        if !info.version.ends_with("-debug") {
            eprintln!(
                "multusctl: warning: the SBR programs of {label} were loaded without debug output: \
                 nothing is logged (set \"debug\": true in its ebpf-sbr configuration; it takes \
                 effect for pods added after)"
            );
        }
        let reader = LogReader::open(&node.sbr, &rec.id).map_err(|source| CtlError::PodSbr {
            pod: label.clone(),
            source,
        })?;
        let names = ifnames(info, live_of(&rec).as_ref());
        sources.push(Source {
            label,
            reader,
            names,
        });
    }
    loop {
        for s in &mut sources {
            for line in s.reader.drain() {
                writeln!(out, "{}  {}", s.label, readable(&line, &s.names))?;
            }
        }
        out.flush()?;
        if !args.follow {
            return Ok(EXIT_OK);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A record as people read it: `if <index>` followed by the interface's name, and without the
/// trailing `ns <cookie>` (every record shown is of the pod's namespace).
pub fn readable(line: &str, names: &BTreeMap<u32, String>) -> String {
    let line = match line.rfind(" ns ") {
        Some(i) if line[i + 4..].bytes().all(|b| b.is_ascii_digit()) => &line[..i],
        _ => line,
    };
    let mut out = Vec::new();
    let mut after_if = false;
    for word in line.split(' ') {
        out.push(word.to_string());
        if after_if {
            if let Some(name) = word.parse::<u32>().ok().and_then(|i| names.get(&i)) {
                out.push(format!("({name})"));
            }
        }
        after_if = word == "if";
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_name_their_interfaces() {
        let names = BTreeMap::from([(2, "eth0".to_string()), (3, "net1".to_string())]);
        assert_eq!(
            readable("DEBUG sbr: if 2 -> if 3 (fallback 0) ns 4097", &names),
            "DEBUG sbr: if 2 (eth0) -> if 3 (net1) (fallback 0)"
        );
        assert_eq!(readable("DEBUG if 9 ns x", &names), "DEBUG if 9 ns x");
    }
}
