//! Drives the SBR library by hand, for experiments and benchmarks (not a CNI plugin):
//!
//! ```text
//! sbr-lab add   <bpffs-dir> <container-id> <netns-path> <ifname> [addr/len[@gateway] ...] [--gw4 A] [--gw6 A] [--debug]
//! sbr-lab del   <bpffs-dir> <container-id> <netns-path|-> <ifname>
//! sbr-lab check <bpffs-dir> <container-id> <netns-path> <ifname> [addr/len[@gateway] ...]
//! sbr-lab gc    <bpffs-dir> [valid-container-id ...]
//! sbr-lab show  <bpffs-dir> [container-id]
//! ```
use std::path::Path;

use anyhow::{bail, Context, Result};
use multus::sbr::{self, IfAddr, InterfaceSpec, SbrConfig};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { bail!("usage: see the source") };
    let mut cfg = SbrConfig::new(args.get(1).context("bpffs dir")?);
    let mut rest: Vec<String> = Vec::new();
    let mut it = args.iter().skip(2);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--gw4" => cfg.gateway_v4 = Some(it.next().context("--gw4 value")?.parse()?),
            "--gw6" => cfg.gateway_v6 = Some(it.next().context("--gw6 value")?.parse()?),
            "--debug" => cfg.debug = true,
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
            addresses.push(IfAddr { address: ip.parse()?, prefix_len: len.parse()?, gateway: gw });
        }
        Ok(InterfaceSpec { ifname, addresses })
    };
    match cmd.as_str() {
        "add" => {
            let t = std::time::Instant::now();
            let r = sbr::add(&cfg, &rest[0], Path::new(&rest[1]), &spec(&rest)?)?;
            eprintln!("add took {:?}", t.elapsed());
            println!("{r:#?}");
        }
        "del" => {
            let ns = (rest[1] != "-").then(|| Path::new(&rest[1]));
            let t = std::time::Instant::now();
            sbr::del(&cfg, &rest[0], ns, &rest[2])?;
            eprintln!("del took {:?}", t.elapsed());
        }
        "check" => sbr::check(&cfg, &rest[0], Path::new(&rest[1]), &spec(&rest)?)?,
        "gc" => {
            let valid: Vec<&str> = rest.iter().map(String::as_str).collect();
            println!("{:#?}", sbr::gc(&cfg, &valid)?);
        }
        "show" => {
            let ids = match rest.first() {
                Some(id) => vec![id.clone()],
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
