//! Running a conflist the way libcni does, with real plugin processes run inside a chosen "host"
//! namespace: ADD in order with each result as the next plugin's prevResult, DEL in reverse and
//! CHECK in order with the final result as prevResult.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::CniOutput;

/// One container attachment as a runtime sees it.
#[derive(Clone, Debug)]
pub struct Runtime {
    /// Namespace the plugins run in (where bridges and host-side veths are made).
    pub host: PathBuf,
    /// Directories searched for plugins, in order.
    pub path: Vec<PathBuf>,
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_NETNS.
    pub netns: PathBuf,
    /// CNI_IFNAME.
    pub ifname: String,
}

/// A failed step of a chain: the plugin type and what it printed.
#[derive(Debug)]
pub struct Failed {
    /// The plugin type.
    pub plugin: String,
    /// Its output.
    pub out: Box<CniOutput>,
}

impl Runtime {
    /// Finds a plugin binary by type.
    pub fn find(&self, plugin_type: &str) -> PathBuf {
        self.path
            .iter()
            .map(|d| d.join(plugin_type))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("plugin {plugin_type} not found in {:?}", self.path))
    }

    /// Runs one plugin with `command` and `conf` on stdin, inside the host namespace.
    pub fn exec(&self, command: &str, conf: &Value) -> CniOutput {
        self.exec_with(command, conf, self.netns.as_path())
    }

    /// Like [`exec`](Self::exec) with another CNI_NETNS (an empty path leaves it out).
    pub fn exec_with(&self, command: &str, conf: &Value, netns: &Path) -> CniOutput {
        self.exec_via(&[], command, conf, netns)
    }

    /// Like [`exec_with`](Self::exec_with), the plugin started by `launcher` (a program and its
    /// arguments, the plugin's path appended: `nsenter ...`, `ip netns exec ...`), itself started
    /// in the host namespace.
    pub fn exec_via(
        &self,
        launcher: &[String],
        command: &str,
        conf: &Value,
        netns: &Path,
    ) -> CniOutput {
        let plugin = conf["type"].as_str().expect("plugin type");
        let binary = self.find(plugin);
        let mut cmd = match launcher.split_first() {
            Some((program, args)) => {
                let mut cmd = crate::netns::command_in(&self.host, program);
                cmd.args(args).arg(&binary);
                cmd
            }
            None => crate::netns::command_in(&self.host, &binary),
        };
        let path = std::env::join_paths(&self.path).expect("CNI_PATH");
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_PATH", path);
        if !netns.as_os_str().is_empty() {
            cmd.env("CNI_NETNS", netns);
        }
        CniOutput::capture(&mut cmd, &binary, conf.to_string().as_bytes())
    }

    /// The stdin of one plugin of `list` as libcni builds it.
    pub fn plugin_conf(list: &Value, plugin: &Value, prev: Option<&Value>) -> Value {
        let mut conf = plugin.clone();
        conf["name"] = list["name"].clone();
        conf["cniVersion"] = list["cniVersion"].clone();
        if let Some(p) = prev {
            conf["prevResult"] = p.clone();
        }
        conf
    }

    fn plugins(list: &Value) -> Vec<Value> {
        list["plugins"].as_array().cloned().expect("a conflist")
    }

    /// ADD of every plugin in order; the final result, or the first failure (the plugins before it
    /// are left as they are, as libcni leaves them).
    pub fn add(&self, list: &Value) -> Result<Value, Failed> {
        let mut prev: Option<Value> = None;
        for p in Self::plugins(list) {
            let out = self.exec("ADD", &Self::plugin_conf(list, &p, prev.as_ref()));
            if !out.status.success() {
                return Err(Failed {
                    plugin: p["type"].as_str().unwrap_or_default().into(),
                    out: Box::new(out),
                });
            }
            prev = out.json.clone();
        }
        Ok(prev.unwrap_or_else(|| json!({})))
    }

    /// DEL of every plugin in reverse with the final result; the outputs that failed.
    pub fn del(&self, list: &Value, result: Option<&Value>) -> Vec<Failed> {
        let mut failed = Vec::new();
        for p in Self::plugins(list).iter().rev() {
            let out = self.exec("DEL", &Self::plugin_conf(list, p, result));
            if !out.status.success() {
                failed.push(Failed {
                    plugin: p["type"].as_str().unwrap_or_default().into(),
                    out: Box::new(out),
                });
            }
        }
        failed
    }

    /// CHECK of every plugin in order with the final result; the first failure.
    pub fn check(&self, list: &Value, result: &Value) -> Result<(), Failed> {
        for p in Self::plugins(list) {
            let out = self.exec("CHECK", &Self::plugin_conf(list, &p, Some(result)));
            if !out.status.success() {
                return Err(Failed {
                    plugin: p["type"].as_str().unwrap_or_default().into(),
                    out: Box::new(out),
                });
            }
        }
        Ok(())
    }
}
