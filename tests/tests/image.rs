//! The image and what it installs: `multus-daemon install` (and the daemon's install at start)
//! copying the node's binaries into a CNI bin dir by temporary file + rename; the small
//! `multus-shim`; the multi-call binary; and the image `cargo xtask image` builds, run with podman.

use std::{
    os::unix::fs::{symlink, MetadataExt, PermissionsExt},
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use serde_json::json;
use testkit::{bins, image, podman::Podman, thick::Daemon, Node};

/// A source directory with small stand-in binaries under the thick mode's names: copies of
/// coreutils programs, each different, so the tests see which one ends where.
fn fake_source(programs: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, program) in programs {
        std::fs::copy(program, dir.path().join(name)).unwrap();
    }
    dir
}

const TRUE_EVERYWHERE: &[(&str, &str)] = &[
    ("multus", "/bin/true"),
    ("ebpf-sbr", "/bin/false"),
    ("multusctl", "/bin/echo"),
    ("multus-shim", "/bin/cat"),
];

fn install(mode: &str, dir: &Path, from: Option<&Path>) -> Output {
    let mut cmd = Command::new(bins::product("multus-daemon"));
    cmd.args(["install", "--mode", mode, "--cni-bin-dir"])
        .arg(dir);
    if let Some(from) = from {
        cmd.arg("--from").arg(from);
    }
    cmd.output().expect("run multus-daemon install")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn same_content(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn install_thick_copies_the_real_binaries_then_skips_them() {
    let dir = tempfile::tempdir().unwrap();
    // No --from: the directory of the running multus-daemon (the image's /usr/bin).
    let out = install("thick", dir.path(), None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        entries(dir.path()),
        ["ebpf-sbr", "multus", "multus-shim", "multusctl"]
    );
    for name in entries(dir.path()) {
        let installed = dir.path().join(&name);
        assert!(same_content(&installed, &bins::product(&name)), "{name}");
        let mode = std::fs::metadata(&installed).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755, "{name}");
    }
    let version = Command::new(dir.path().join("multus-shim"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("multus-shim "));
    let again = install("thick", dir.path(), None);
    assert!(again.status.success(), "{}", stderr(&again));
    let log = stderr(&again);
    assert_eq!(
        log.matches("already installed, skipped").count(),
        4,
        "{log}"
    );
    assert!(!log.contains("binary installed"), "{log}");
}

#[test]
fn install_thin_copies_no_shim() {
    let (src, dir) = (fake_source(TRUE_EVERYWHERE), tempfile::tempdir().unwrap());
    let out = install("thin", dir.path(), Some(src.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(entries(dir.path()), ["ebpf-sbr", "multus", "multusctl"]);
}

#[test]
fn install_replaces_a_binary_a_process_is_executing_by_rename() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("multusctl");
    std::fs::copy("/bin/sleep", &old).unwrap();
    let mut running = Command::new(&old)
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .expect("start the old binary");
    std::thread::sleep(Duration::from_millis(100));
    let old_inode = std::fs::metadata(&old).unwrap().ino();
    let src = fake_source(TRUE_EVERYWHERE);
    let out = install("thin", dir.path(), Some(src.path()));
    let still_running = running.try_wait().unwrap().is_none();
    let _ = running.kill();
    let _ = running.wait();
    assert!(out.status.success(), "no ETXTBSY: {}", stderr(&out));
    assert!(still_running, "the running old binary was not disturbed");
    assert!(same_content(&old, &src.path().join("multusctl")));
    assert_ne!(
        std::fs::metadata(&old).unwrap().ino(),
        old_inode,
        "a new file was renamed over the name, the old one was not written into"
    );
    assert!(!entries(dir.path()).iter().any(|e| e.contains(".tmp-")));
}

#[test]
fn install_replaces_a_planted_symlink_without_writing_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let victim = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(victim.path(), "precious").unwrap();
    symlink(victim.path(), dir.path().join("multus")).unwrap();
    let src = fake_source(TRUE_EVERYWHERE);
    let out = install("thin", dir.path(), Some(src.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(victim.path()).unwrap(), "precious");
    let target = dir.path().join("multus");
    assert!(std::fs::symlink_metadata(&target)
        .unwrap()
        .file_type()
        .is_file());
    assert!(same_content(&target, &src.path().join("multus")));
}

#[test]
fn install_failure_leaves_no_temporary_file() {
    // A CNI bin dir (1 MiB) too small for a binary (3 MiB): ENOSPC mid-write, in a private mount
    // namespace.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("src");
    std::fs::create_dir(&big).unwrap();
    for (name, _) in TRUE_EVERYWHERE {
        std::fs::write(big.join(name), vec![0x7f; 3 << 20]).unwrap();
    }
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=1m tmpfs {bin} && {daemon} install --mode thin --cni-bin-dir {bin} --from {src}; echo \"exit=$?\"; ls -A {bin}",
        bin = bin_dir.display(),
        daemon = bins::product("multus-daemon").display(),
        src = big.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("exit=1"), "{stdout}\n{}", stderr(&out));
    let listing = stdout.split("exit=1").nth(1).unwrap_or_default().trim();
    assert_eq!(listing, "", "nothing left in the bin dir: {listing}");
    assert!(
        stderr(&out).contains("No space left on device") && stderr(&out).contains("multus"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn install_refuses_a_bad_mode_or_missing_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let out = install("thicc", dir.path(), None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("neither thick nor thin"),
        "{}",
        stderr(&out)
    );
    let out = Command::new(bins::product("multus-daemon"))
        .args(["install", "--mode", "thin"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--cni-bin-dir"), "{}", stderr(&out));
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn the_daemon_installs_at_start_before_serving() {
    let node = Node::new();
    let mut daemon = Daemon::configure(&node, json!({}));
    let bin_dir = daemon.dir.path().join("host-bin");
    std::fs::create_dir(&bin_dir).unwrap();
    let log = std::fs::File::create(daemon.log_path()).unwrap();
    let mut cmd = node.ns.command(bins::product("multus-daemon"));
    cmd.arg("-config")
        .arg(daemon.config_path())
        .arg("-install-cni-bin-dir")
        .arg(&bin_dir)
        .args(["-install-mode", "thin"])
        .stderr(log);
    daemon.spawn_command(cmd);
    daemon.wait_ready(Duration::from_secs(20));
    assert_eq!(entries(&bin_dir), ["ebpf-sbr", "multus", "multusctl"]);
    let log = daemon.log();
    let installed = log
        .find("CNI binaries installed")
        .expect("installation logged");
    let serving = log.find("multus-daemon serving").expect("serving logged");
    assert!(installed < serving, "installed before serving:\n{log}");
}

#[test]
fn the_daemon_does_not_start_when_the_installation_fails() {
    let node = Node::new();
    let daemon = Daemon::configure(&node, json!({}));
    let out = node
        .ns
        .command(bins::product("multus-daemon"))
        .arg("-config")
        .arg(daemon.config_path())
        .arg("-install-cni-bin-dir")
        .arg(daemon.dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing"), "{}", stderr(&out));
    assert!(!daemon.socket().exists(), "it never served");
}

/// The crates whose functions `binary`'s symbol table names (legacy mangling:
/// `_ZN<len><crate>...`, each symbol NUL-terminated in the string table).
fn linked_crates(binary: &[u8]) -> std::collections::BTreeSet<String> {
    binary
        .split(|b| *b == 0)
        .filter_map(|sym| sym.strip_prefix(b"_ZN"))
        .filter_map(|rest| {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let len: usize = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
            let name = rest.get(digits..digits + len)?;
            Some(String::from_utf8_lossy(name).into_owned())
        })
        .collect()
}

#[test]
fn the_shim_links_no_kubernetes_client_bpf_loader_or_async_runtime() {
    let shim = linked_crates(&std::fs::read(bins::product("multus-shim")).unwrap());
    let thin = linked_crates(&std::fs::read(bins::product("multus")).unwrap());
    assert!(
        shim.contains("multus"),
        "the probe reads the shim's symbols: {shim:?}"
    );
    for krate in [
        "kube_client",
        "aya",
        "tokio",
        "hyper",
        "rustls",
        "rtnetlink",
    ] {
        assert!(
            thin.contains(krate),
            "the probe works: multus links {krate}"
        );
        assert!(!shim.contains(krate), "multus-shim links {krate}");
    }
}

#[test]
fn the_multi_call_binary_answers_to_each_name() {
    let dir = tempfile::tempdir().unwrap();
    let node_bin = bins::product("multus-node");
    for (name, first_word) in [
        ("multus", "multus "),
        ("multus-daemon", "multus-daemon "),
        ("multusctl", "multusctl "),
        ("ebpf-sbr", "ebpf-sbr "),
    ] {
        let link = dir.path().join(name);
        std::fs::hard_link(&node_bin, &link).unwrap();
        let out = Command::new(&link).arg("--version").output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(
            stdout.starts_with(first_word) && stdout.contains(env!("CARGO_PKG_VERSION")),
            "{name}: {stdout}"
        );
    }
    let out = Command::new(&node_bin).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("multus-daemon"), "{}", stderr(&out));
}

/// `podman` run in the test's private storage, from `image`'s entry point `binary`.
fn run_in_image(podman: &Podman, binary: &str, args: &str) -> (bool, String) {
    let out = podman.script(&format!(
        "podman run --rm --network none --entrypoint /usr/bin/{binary} {} {args}",
        image::reference()
    ));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_image_holds_the_built_binaries_under_their_names_within_25_mb() {
    let node = Node::new();
    let podman = Podman::new(&node);
    let built = image::build(&podman.conf_env());
    assert!(built.archive.is_file(), "{}", built.archive.display());
    // Size, label and layout, from podman.
    let reference = image::reference();
    let out = podman.script(&format!(
        "podman image inspect --format '{{{{.Size}}}} {{{{index .Labels \"org.opencontainers.image.version\"}}}} {{{{.Config.Entrypoint}}}}' {reference}\n\
         m=$(podman image mount {reference})\necho \"mount=$m\"\nstat -c '%n %i %h %a' $m/usr/bin/* | sed \"s|$m||\"\nls -A $m\npodman image unmount {reference} >/dev/null"
    ));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
    let mut lines = stdout.lines();
    let mut head = lines.next().unwrap().split_whitespace();
    let size: u64 = head.next().unwrap().parse().unwrap();
    assert!(size <= image::MAX_IMAGE_BYTES, "image is {size} bytes");
    assert_eq!(head.next(), Some(image::version()), "{stdout}");
    assert_eq!(
        head.collect::<Vec<_>>().join(" "),
        "[/usr/bin/multus-daemon]"
    );
    assert!(lines.next().unwrap().starts_with("mount="), "{stdout}");
    let files: Vec<(String, String, String)> = lines
        .by_ref()
        .take(image::BINARIES.len())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_string(),
                f[1].to_string(),
                format!("{} {}", f[2], f[3]),
            )
        })
        .collect();
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "/usr/bin/ebpf-sbr",
            "/usr/bin/multus",
            "/usr/bin/multus-daemon",
            "/usr/bin/multus-shim",
            "/usr/bin/multusctl"
        ],
        "{stdout}"
    );
    let multi_call: Vec<_> = files
        .iter()
        .filter(|f| f.0 != "/usr/bin/multus-shim")
        .collect();
    assert!(
        multi_call
            .iter()
            .all(|f| f.1 == multi_call[0].1 && f.2 == "4 755"),
        "one file, hard-linked under four names: {stdout}"
    );
    assert_eq!(lines.next(), Some("usr"), "nothing but /usr/bin: {stdout}");
    // Each binary answers --version with its own name and the build's version.
    for name in image::BINARIES {
        let (ok, text) = run_in_image(&podman, name, "--version");
        assert!(ok, "{name}: {text}");
        assert!(
            text.starts_with(&format!("{name} {}", image::version())),
            "{name}: {text}"
        );
    }
    // The image's content is the current build.
    let out = podman.script(&format!(
        "m=$(podman image mount {reference})\ncmp $m/usr/bin/multus-daemon {node}\ncmp $m/usr/bin/multus-shim {shim}\npodman image unmount {reference} >/dev/null",
        node = built.binaries_dir.join("multus-node").display(),
        shim = built.binaries_dir.join("multus-shim").display(),
    ));
    assert!(
        out.status.success(),
        "the image holds the binaries of the image profile: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    // No shell in the image.
    let (ok, text) = run_in_image(
        &podman,
        "multus-daemon",
        "install --mode thin --cni-bin-dir /nonexistent",
    );
    assert!(!ok && text.contains("/nonexistent"), "{text}");
    let out = podman.script(&format!(
        "podman run --rm --network none --entrypoint /bin/sh {reference} -c true"
    ));
    assert!(!out.status.success(), "the image has no shell");
}

#[test]
fn the_shim_tears_down_without_the_daemon_through_the_thin_binary_on_cni_path_or_fails() {
    let node = Node::new();
    let daemon = Daemon::configure(&node, json!({})); // configured, never started
    let pod = testkit::Netns::new("pod");
    let conf = daemon.shim_conf(
        "1.0.0",
        vec![testkit::confs::bridge(
            "n",
            "imgbr1",
            "10.98.0.0/24",
            "1.0.0",
            &node.ipam_dir(),
        )],
    );
    // The shim alone in its directory: the thin binary is neither beside it nor on CNI_PATH.
    let alone = tempfile::tempdir().unwrap();
    let shim = alone.path().join("multus-shim");
    std::fs::copy(bins::product("multus-shim"), &shim).unwrap();
    let del = testkit::CniCall::new(&node, "DEL", "shim-alone", Some(&pod), "eth0")
        .args("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=alone");
    let out = del.run(&node, &shim, &conf);
    assert_eq!(
        out.err_code(),
        5,
        "never success without a teardown: {}",
        out.stdout
    );
    assert!(
        out.err_msg().contains("\"multus\"") && out.err_msg().contains("CNI_PATH"),
        "{}",
        out.err_msg()
    );
    // The node's CNI bin dir (on CNI_PATH) holds it: the teardown runs.
    node.install("multus", &bins::product("multus"));
    del.run(&node, &shim, &conf).assert_ok();
}

/// The init container's memory limit in deploy/daemonset.yaml, in bytes.
fn init_container_memory_limit() -> u64 {
    let manifest = std::fs::read_to_string(bins::workspace_root().join("deploy/daemonset.yaml"))
        .expect("deploy/daemonset.yaml");
    let ds: serde_json::Value = serde_norway::from_str(&manifest).unwrap();
    let limit = ds["spec"]["template"]["spec"]["initContainers"][0]["resources"]["limits"]
        ["memory"]
        .as_str()
        .expect("the init container has a memory limit");
    let mib: u64 = limit.strip_suffix("Mi").expect("in Mi").parse().unwrap();
    mib << 20
}

#[test]
fn install_memory_does_not_grow_with_the_binaries_within_the_init_containers_limit() {
    // Binaries larger than the init container's memory limit (deploy/daemonset.yaml), installed
    // over different ones of the same size (so each is compared, then copied) by an installer
    // whose data (heap and anonymous mappings) is capped at that limit: an installer that holds a
    // whole binary in memory is OOM-killed in the init container (podman showed exit 137).
    let limit = init_container_memory_limit();
    let size = (limit + (8 << 20)) as usize;
    let (src, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let multus = std::fs::read(bins::product("multus")).unwrap();
    for name in ["multus", "ebpf-sbr", "multusctl"] {
        let mut big = multus.clone();
        big.resize(size, 0);
        std::fs::write(src.path().join(name), &big).unwrap();
        big[size - 1] = 1;
        std::fs::write(dir.path().join(name), &big).unwrap();
        std::fs::set_permissions(dir.path().join(name), PermissionsExt::from_mode(0o755)).unwrap();
    }
    let mut cmd = Command::new(bins::product("multus-daemon"));
    cmd.args(["install", "--mode", "thin", "--cni-bin-dir"])
        .arg(dir.path())
        .arg("--from")
        .arg(src.path());
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            let cap = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_DATA, &cap) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    for name in ["multus", "ebpf-sbr", "multusctl"] {
        assert!(
            same_content(&dir.path().join(name), &src.path().join(name)),
            "{name}"
        );
    }
    assert_eq!(entries(dir.path()), ["ebpf-sbr", "multus", "multusctl"]);
    // And skipped, compared within the cap, when already there.
    let again = cmd.output().unwrap();
    assert!(
        again.status.success(),
        "{:?}: {}",
        again.status,
        stderr(&again)
    );
    assert_eq!(
        stderr(&again).matches("already installed, skipped").count(),
        3
    );
}
