//! Aligned text tables and the small formatting helpers of the table output.

use std::{
    io::Write,
    sync::atomic::{AtomicBool, Ordering},
};

/// `--no-headers` and `-o wide`: one command line's setting for every table it prints.
static NO_HEADERS: AtomicBool = AtomicBool::new(false);
static WIDE: AtomicBool = AtomicBool::new(false);

/// Sets how tables are written: without their header line, and wide (full container ids).
pub fn set_style(no_headers: bool, wide: bool) {
    NO_HEADERS.store(no_headers, Ordering::Relaxed);
    WIDE.store(wide, Ordering::Relaxed);
}

/// Whether tables are wide (`-o wide`).
pub fn is_wide() -> bool {
    WIDE.load(Ordering::Relaxed)
}

/// Table cells are padded to the widest cell of their column; the last column is not padded.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Writes the table, each line prefixed with `indent`.
    pub fn write(&self, out: &mut dyn Write, indent: &str) -> std::io::Result<()> {
        let cols = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let mut s = String::from(indent);
            for (i, width) in widths.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                s.push_str(c);
                if i + 1 < cols {
                    s.push_str(&" ".repeat(width - c.chars().count() + 2));
                }
            }
            s.trim_end().to_string()
        };
        if !NO_HEADERS.load(Ordering::Relaxed) {
            writeln!(out, "{}", line(&self.headers))?;
        }
        for r in &self.rows {
            writeln!(out, "{}", line(r))?;
        }
        Ok(())
    }
}

/// How container ids are shown in tables (ids are 64 hex characters with CRI runtimes; `show`
/// accepts any unique prefix): the first 13 characters, all of them with `-o wide`.
pub fn short_id(id: &str) -> String {
    if is_wide() {
        return id.to_string();
    }
    id.chars().take(13).collect()
}

/// `-` for an empty or missing value.
pub fn or_dash(s: Option<impl Into<String>>) -> String {
    s.map(Into::into)
        .filter(|s: &String| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}

/// Unix seconds as an RFC 3339 UTC time (`@<seconds>` beyond year 9999).
pub fn utc(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| format!("@{secs}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_686_827), "2026-11-26T09:53:47Z");
    }

    #[test]
    fn columns_align() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["xyz".into(), "1".into()]);
        let mut out = Vec::new();
        t.write(&mut out, "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(String::from_utf8_lossy(&out), "A    LONGER\nxyz  1\n");
    }
}
