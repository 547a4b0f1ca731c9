//! A test-only CNI plugin that records what it receives, so tests can see what a delegate got
//! (config, runtimeConfig, CNI_ARGS, prevResult, valid-attachments). It is an observation tool,
//! never a stand-in for a reference plugin.
//!
//! Config keys: `recordDir` (where to write `<COMMAND>-<CONTAINERID>-<IFNAME>.json`), `failOn`
//! (a command to fail with code 100), `sleepMs` (delay before answering), `result` (the ADD result;
//! default: the prevResult, else an empty result of the requested version).
use std::io::Read;

use serde_json::{json, Value};

fn main() {
    let mut stdin = String::new();
    let _ = std::io::stdin().read_to_string(&mut stdin);
    let conf: Value = serde_json::from_str(&stdin).unwrap_or(Value::Null);
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    let version = conf["cniVersion"].as_str().unwrap_or("1.1.0").to_string();
    if command == "VERSION" {
        println!(
            r#"{{"cniVersion":"{version}","supportedVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]}}"#
        );
        return;
    }
    if let Some(dir) = conf["recordDir"].as_str() {
        let env: serde_json::Map<String, Value> = std::env::vars()
            .filter(|(k, _)| k.starts_with("CNI_"))
            .map(|(k, v)| (k, Value::from(v)))
            .collect();
        let name = format!(
            "{command}-{}-{}.json",
            std::env::var("CNI_CONTAINERID").unwrap_or_default(),
            std::env::var("CNI_IFNAME").unwrap_or_default()
        );
        let _ = std::fs::write(
            std::path::Path::new(dir).join(name),
            json!({"env": env, "stdin": conf}).to_string(),
        );
    }
    if let Some(ms) = conf["sleepMs"].as_u64() {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    if conf["failOn"].as_str() == Some(command.as_str()) {
        println!(
            r#"{{"cniVersion":"{version}","code":100,"msg":"recorder told to fail on {command}"}}"#
        );
        std::process::exit(1);
    }
    if command == "ADD" {
        let result = conf
            .get("result")
            .cloned()
            .or_else(|| conf.get("prevResult").cloned())
            .unwrap_or_else(|| json!({"cniVersion": version, "dns": {}}));
        println!("{result}");
    }
}
