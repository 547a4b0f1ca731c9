//! Rules about the workspace itself, read from `cargo metadata`.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// Crates whose build needs the nightly toolchain, rust-src and bpf-linker: the BPF programs
/// themselves, and every crate whose build script compiles them.
const NEEDS_BPF_TOOLCHAIN: &[&str] = &["multus-ebpf", "multus-userspace", "multus-tests"];

/// The host tuple, as rustc names it (the workspace builds for it).
fn host_tuple() -> String {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string()
}

fn metadata() -> Value {
    let out = Command::new(env!("CARGO"))
        .current_dir(testkit::bins::workspace_root())
        .args(["metadata", "--format-version", "1", "--filter-platform"])
        .arg(host_tuple())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// The names of every package `root` depends on, transitively, through normal and build
/// dependencies (what building `root`'s binary builds).
fn build_closure(meta: &Value, root: &str) -> BTreeSet<String> {
    let packages = meta["packages"].as_array().expect("packages");
    let name_of: HashMap<&str, &str> = packages
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let nodes = meta["resolve"]["nodes"].as_array().expect("resolve.nodes");
    let by_id: HashMap<&str, &Value> = nodes
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let root_id = name_of
        .iter()
        .find(|(_, n)| **n == root)
        .map(|(id, _)| *id)
        .expect("the root package is in the workspace");
    let mut seen = BTreeSet::new();
    let mut todo = vec![root_id];
    while let Some(id) = todo.pop() {
        let Some(node) = by_id.get(id) else { continue };
        for dep in node["deps"].as_array().into_iter().flatten() {
            let kinds = dep["dep_kinds"].as_array().into_iter().flatten();
            let builds = kinds
                .map(|k| k["kind"].as_str())
                .any(|k| k.is_none() || k == Some("build"));
            let Some(dep_id) = dep["pkg"].as_str() else { continue };
            if builds && seen.insert(name_of[dep_id].to_string()) {
                todo.push(dep_id);
            }
        }
    }
    seen
}

/// `cargo xtask setup` must be able to run on a machine without rust-src and bpf-linker: the
/// xtask binary depends on nothing whose build needs them.
#[test]
fn xtask_builds_without_the_bpf_toolchain() {
    let meta = metadata();
    let closure = build_closure(&meta, "xtask");
    let bad: Vec<&&str> = NEEDS_BPF_TOOLCHAIN
        .iter()
        .filter(|n| closure.contains(**n))
        .collect();
    assert!(
        bad.is_empty(),
        "xtask depends on {bad:?}, whose build needs the nightly toolchain, rust-src and bpf-linker; \
         `cargo xtask setup` could not run on a new machine (reach them through the `tasks` binary)"
    );
    // The rule holds for what is in the closure, not only for the names above: no crate xtask
    // builds runs the BPF builder from its build script.
    let packages = meta["packages"].as_array().expect("packages");
    for p in packages.iter().filter(|p| {
        p["name"]
            .as_str()
            .is_some_and(|n| closure.contains(n) || n == "xtask")
    }) {
        let builds_bpf = p["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["name"] == "multus-ebpf-builder" && d["kind"] == "build");
        assert!(
            !builds_bpf,
            "{} builds the BPF programs in its build script and xtask depends on it",
            p["name"]
        );
    }
}

/// The check above can fail: the test kit (which xtask used to depend on) is in the closure
/// of the crates that do build the BPF programs.
#[test]
fn the_rule_sees_a_dependency_that_needs_the_bpf_toolchain() {
    let meta = metadata();
    assert!(build_closure(&meta, "multus-tests").contains("multus-userspace"));
}

/// The repository stands alone: no file of it points to the project's shared material outside the
/// repository (a user of the repository does not have it).
#[test]
fn no_file_points_outside_the_repository() {
    let root = testkit::bins::workspace_root();
    let out = Command::new("git")
        .current_dir(&root)
        .args(["ls-files", "-z"])
        .output()
        .expect("git ls-files runs");
    assert!(out.status.success(), "git ls-files failed");
    let needles = ["../shared", "shared/research", "shared/toolchain", "shared/seeds"];
    let mut found = Vec::new();
    for name in out.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let rel = String::from_utf8_lossy(name).to_string();
        let Ok(text) = std::fs::read_to_string(root.join(&rel)) else { continue };
        for (no, line) in text.lines().enumerate() {
            if needles.iter().any(|n| line.contains(n)) && !line.contains("needles") {
                found.push(format!("{rel}:{}: {line}", no + 1));
            }
        }
    }
    assert!(found.is_empty(), "files point outside the repository:\n{}", found.join("\n"));
}
