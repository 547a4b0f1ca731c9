//! Writes a benchmark's section into docs/benchmarks.md (between its markers), keeping the rest.

use std::process::Command;

use anyhow::Result;

use crate::util::{output, root};

/// Replaces (or appends) the section `name` of docs/benchmarks.md with `body`.
pub fn write_section(name: &str, body: &str) -> Result<()> {
    let path = root().join("docs").join("benchmarks.md");
    let current = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nEvery figure below was measured by the command shown with it, on the machine described with it; \
         the reference and our implementation run side by side in the same run.\n"
            .to_string()
    });
    let (start, end) = (
        format!("<!-- bench:{name}:start -->"),
        format!("<!-- bench:{name}:end -->"),
    );
    let section = format!("{start}\n{body}\n{end}");
    let updated = match (current.find(&start), current.find(&end)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{}{}", &current[..a], section, &current[b + end.len()..])
        }
        _ => format!("{}\n{}\n", current.trim_end(), section),
    };
    std::fs::create_dir_all(path.parent().unwrap_or(&root()))?;
    std::fs::write(&path, updated)?;
    println!("wrote section {name:?} of {}", path.display());
    Ok(())
}

/// One line describing the machine and the date.
pub fn machine() -> String {
    let kernel = output(Command::new("uname").arg("-r")).unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let date = output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])).unwrap_or_default();
    format!(
        "{} · kernel {} · {cpus} CPUs ({model})",
        date.trim(),
        kernel.trim()
    )
}
