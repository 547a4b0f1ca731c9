//! Drives the SBR library by hand, for experiments and benchmarks (not a CNI plugin):
//!
//! ```text
//! sbr-lab add   <bpffs-dir> <container-id> <netns-path> <ifname> [addr/len[@gateway] ...] [--gw4 A] [--gw6 A] [--debug] [--mode auto|tcx|netlink]
//! sbr-lab del   <bpffs-dir> <container-id> <netns-path|-> <ifname>
//! sbr-lab check <bpffs-dir> <container-id> <netns-path> <ifname> [addr/len[@gateway] ...]
//! sbr-lab gc    <bpffs-dir> [valid-container-id ...]
//! sbr-lab show  <bpffs-dir> [container-id]
//! ```
//! `add` and `del` print their wall time and then one `phase <name> <µs>` line per phase on stderr.
use multus::cni::ContainerId;
use std::path::Path;

use anyhow::{bail, Context, Result};
use multus::sbr::{self, IfAddr, InterfaceSpec, SbrConfig};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        bail!("usage: see the source")
    };
    let mut cfg = SbrConfig::new(args.get(1).context("bpffs dir")?);
    let mut rest: Vec<String> = Vec::new();
    let mut it = args.iter().skip(2);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--gw4" => cfg.gateway_v4 = Some(it.next().context("--gw4 value")?.parse()?),
            "--gw6" => cfg.gateway_v6 = Some(it.next().context("--gw6 value")?.parse()?),
            "--debug" => cfg.debug = true,
            "--mode" => {
                cfg.attach_mode = it
                    .next()
                    .context("--mode value")?
                    .parse()
                    .map_err(anyhow::Error::msg)?
            }
            _ => rest.push(a.clone()),
        }
    }
    let spec = |rest: &[String]| -> Result<InterfaceSpec> {
        let ifname = rest.get(2).context("ifname")?.clone();
        let mut addresses = Vec::new();
        for a in rest.iter().skip(3) {
            let (cidr, gw) = match a.split_once('@') {
                Some((c, g)) => (c, Some(g.parse()?)),
                None => (a.as_str(), None),
            };
            let (ip, len) = cidr.split_once('/').context("addr/len")?;
            addresses.push(IfAddr {
                address: ip.parse()?,
                prefix_len: len.parse()?,
                gateway: gw,
            });
        }
        Ok(InterfaceSpec { ifname, addresses })
    };
    match cmd.as_str() {
        "add" => {
            let t = std::time::Instant::now();
            let r = sbr::add(
                &cfg,
                &ContainerId::parse(&rest[0])?,
                Path::new(&rest[1]),
                &spec(&rest)?,
            )?;
            let took = t.elapsed();
            let loaded = if r.loaded {
                "loaded the programs\n"
            } else {
                ""
            };
            // One write each: the process's own cost is part of what is measured.
            write_all(
                std::io::stderr(),
                format!("add took {took:?}\n{loaded}{}", phases_text(&r.phases)),
            );
            write_all(std::io::stdout(), format!("{r:#?}\n"));
        }
        "del" => {
            let ns = (rest[1] != "-").then(|| Path::new(&rest[1]));
            let t = std::time::Instant::now();
            let phases = sbr::del_timed(&cfg, &ContainerId::parse(&rest[0])?, ns, &rest[2])?;
            let took = t.elapsed();
            write_all(
                std::io::stderr(),
                format!("del took {took:?}\n{}", phases_text(&phases)),
            );
        }
        "check" => sbr::check(
            &cfg,
            &ContainerId::parse(&rest[0])?,
            Path::new(&rest[1]),
            &spec(&rest)?,
        )?,
        "gc" => {
            let valid: Vec<&str> = rest.iter().map(String::as_str).collect();
            println!("{:#?}", sbr::gc(&cfg, &valid)?);
        }
        "show" => {
            let ids = match rest.first() {
                Some(id) => vec![ContainerId::parse(id)?],
                None => sbr::pods(&cfg)?,
            };
            for id in ids {
                println!("{:#?}", sbr::inspect(&cfg, &id)?);
            }
        }
        other => bail!("unknown command {other}"),
    }
    Ok(())
}

fn write_all(mut to: impl std::io::Write, text: String) {
    let _ = to.write_all(text.as_bytes());
}

fn phases_text(phases: &[sbr::Phase]) -> String {
    phases
        .iter()
        .map(|p| format!("phase {} {}\n", p.name, p.time.as_micros()))
        .collect()
}
