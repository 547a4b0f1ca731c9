//! Runs the Kubernetes API stand-in until killed, for demos and manual poking with kubectl.
//!
//! ```text
//! cargo run -p multus-tests --example kube-api-standin -- [--port 6443] [--dir DIR] [--demo]
//! kubectl --kubeconfig DIR/kubeconfig get pods,net-attach-def -A
//! ```
//!
//! `--demo` seeds a pod `default/web` asking for `macvlan-conf`, and that NAD.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use testkit::kube_api::{KubeApiServer, NadSeed, PodSeed, ServerOptions};

fn main() -> Result<()> {
    let mut options = ServerOptions {
        log_requests: true,
        ..ServerOptions::default()
    };
    let mut dir: Option<PathBuf> = None;
    let mut demo = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => options.port = args.next().context("--port needs a value")?.parse()?,
            "--dir" => dir = Some(args.next().context("--dir needs a value")?.into()),
            "--token" => options.token = Some(args.next().context("--token needs a value")?),
            "--demo" => demo = true,
            "--quiet" => options.log_requests = false,
            other => bail!("unknown argument {other:?} (expected --port N, --dir DIR, --token T, --demo, --quiet)"),
        }
    }
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("kube-api-standin-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let server = KubeApiServer::start_with(options)?;
    let kubeconfig = server.write_kubeconfig(&dir)?;
    if demo {
        server.create_pod(
            PodSeed::new("default", "web")
                .node_name("node-1")
                .annotation("k8s.v1.cni.cncf.io/networks", "macvlan-conf"),
        )?;
        server.create_nad(NadSeed::new(
            "default",
            "macvlan-conf",
            r#"{"cniVersion":"1.0.0","type":"macvlan","master":"eth0","ipam":{"type":"host-local","subnet":"10.1.1.0/24"}}"#,
        ))?;
    }
    println!(
        "serving {} ; kubeconfig {}",
        server.url(),
        kubeconfig.display()
    );
    loop {
        std::thread::park();
    }
}
