//! Driving a CNI network as an engine does (libcni's order and
//! arguments), for the CNI bench and the tests that play an engine: each
//! plugin of a conflist is a process, given `CNI_COMMAND`,
//! `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS` and `CNI_PATH`,
//! its config on stdin (the plugin's object with the network's `name` and
//! `cniVersion`, `runtimeConfig` for the capabilities it declares, and
//! from the second plugin on the previous one's result as `prevResult`),
//! and answers with a result or an error as JSON on stdout. ADD runs the
//! plugins in order; DEL in reverse, each given the ADD's final result.
//!
//! Uses nothing but the standard library and serde_json: the integration
//! tests include this file by path.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Map, Value};

/// What went wrong running a plugin, naming it.
#[derive(Debug)]
pub struct PluginError {
    pub plugin: String,
    pub command: &'static str,
    pub detail: String,
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.command, self.plugin, self.detail)
    }
}

impl std::error::Error for PluginError {}

/// A network: a conflist's name, version and plugins, and where the
/// plugin binaries are.
#[derive(Debug, Clone)]
pub struct Network {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Map<String, Value>>,
    pub plugin_dirs: Vec<PathBuf>,
    /// A command the plugins run under (e.g. `nsenter --target PID --net
    /// --mount --` for an engine inside a test's node); empty: none.
    pub launcher: Vec<String>,
}

/// One container's attachment to a network.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// The runtime's capability arguments, e.g. `{"portMappings": [...]}`:
    /// each plugin gets those it declares in `capabilities`.
    pub runtime_config: Map<String, Value>,
}

impl Attachment {
    /// An attachment on `eth0` publishing `ports` (host, container) over
    /// TCP.
    pub fn publishing(container_id: &str, netns: &str, ports: &[(u16, u16)]) -> Attachment {
        let mappings: Vec<Value> = ports
            .iter()
            .map(|&(host, container)| {
                serde_json::json!({"hostPort": host, "containerPort": container, "protocol": "tcp"})
            })
            .collect();
        let mut runtime_config = Map::new();
        runtime_config.insert("portMappings".into(), Value::Array(mappings));
        Attachment {
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: "eth0".into(),
            runtime_config,
        }
    }
}

impl Network {
    /// A network from a conflist's text.
    pub fn from_conflist(text: &str, plugin_dirs: &[&Path]) -> Result<Network, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("conflist: {e}"))?;
        let field = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("conflist: no \"{name}\""))
        };
        let plugins = value
            .get("plugins")
            .and_then(Value::as_array)
            .ok_or("conflist: no \"plugins\" array")?
            .iter()
            .map(|p| {
                p.as_object()
                    .cloned()
                    .ok_or("conflist: a plugin is not an object")
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Network {
            name: field("name")?,
            cni_version: field("cniVersion")?,
            plugins,
            plugin_dirs: plugin_dirs.iter().map(|d| d.to_path_buf()).collect(),
            launcher: Vec::new(),
        })
    }

    /// ADD through every plugin in order: the final result.
    pub fn add(&self, attachment: &Attachment) -> Result<Value, PluginError> {
        let mut previous: Option<Value> = None;
        for plugin in &self.plugins {
            let result = self.exec("ADD", plugin, attachment, previous.as_ref())?;
            previous = Some(result);
        }
        Ok(previous.unwrap_or(Value::Null))
    }

    /// DEL through every plugin in reverse, each given `added` (the ADD's
    /// result, as libcni caches it) when there is one.
    pub fn del(&self, attachment: &Attachment, added: Option<&Value>) -> Result<(), PluginError> {
        for plugin in self.plugins.iter().rev() {
            self.exec("DEL", plugin, attachment, added)?;
        }
        Ok(())
    }

    /// The config one plugin reads on stdin.
    pub fn plugin_config(
        &self,
        plugin: &Map<String, Value>,
        attachment: &Attachment,
        previous: Option<&Value>,
    ) -> Value {
        let mut config = plugin.clone();
        config.insert("name".into(), Value::String(self.name.clone()));
        config.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        let declared = plugin.get("capabilities").and_then(Value::as_object);
        let runtime: Map<String, Value> = attachment
            .runtime_config
            .iter()
            .filter(|(cap, _)| {
                declared.is_some_and(|d| d.get(*cap).and_then(Value::as_bool) == Some(true))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !runtime.is_empty() {
            config.insert("runtimeConfig".into(), Value::Object(runtime));
        }
        if let Some(previous) = previous {
            config.insert("prevResult".into(), previous.clone());
        }
        Value::Object(config)
    }

    /// Runs one plugin: its parsed stdout (Null when it printed nothing).
    fn exec(
        &self,
        command: &'static str,
        plugin: &Map<String, Value>,
        attachment: &Attachment,
        previous: Option<&Value>,
    ) -> Result<Value, PluginError> {
        let kind = plugin
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let fail = |detail: String| PluginError {
            plugin: kind.clone(),
            command,
            detail,
        };
        let program = self
            .plugin_dirs
            .iter()
            .map(|d| d.join(&kind))
            .find(|p| p.exists())
            .ok_or_else(|| fail("not found in the plugin directories".into()))?;
        let cni_path =
            std::env::join_paths(&self.plugin_dirs).map_err(|e| fail(format!("CNI_PATH: {e}")))?;
        let config = self.plugin_config(plugin, attachment, previous).to_string();
        let mut cmd = match self.launcher.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(&program);
                cmd
            }
            None => Command::new(&program),
        };
        let mut child = cmd
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &attachment.container_id)
            .env("CNI_NETNS", &attachment.netns)
            .env("CNI_IFNAME", &attachment.ifname)
            .env("CNI_ARGS", "")
            .env("CNI_PATH", cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("starting {}: {e}", program.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(config.as_bytes())
                .map_err(|e| fail(format!("writing its config: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| fail(format!("waiting: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(fail(format!(
                "{}: {} {}",
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        if stdout.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&stdout).map_err(|e| fail(format!("its result: {e}: {stdout}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFLIST: &str = r#"{"cniVersion":"1.0.0","name":"n","plugins":[
        {"type":"bridge","bridge":"b0","ipam":{"type":"host-local"}},
        {"type":"portmap","capabilities":{"portMappings":true,"other":false}}]}"#;

    fn network() -> Network {
        Network::from_conflist(CONFLIST, &[Path::new("/x")]).unwrap()
    }

    #[test]
    fn each_plugin_gets_the_networks_name_and_version_and_only_the_capabilities_it_declares() {
        let net = network();
        let mut att = Attachment::publishing("c1", "/run/netns/c1", &[(8080, 8000)]);
        att.runtime_config
            .insert("other".into(), Value::String("x".into()));
        let first = net.plugin_config(&net.plugins[0], &att, None);
        assert_eq!(first["name"], "n");
        assert_eq!(first["cniVersion"], "1.0.0");
        assert_eq!(first["bridge"], "b0");
        assert!(first.get("runtimeConfig").is_none());
        assert!(first.get("prevResult").is_none());
        let prev = serde_json::json!({"ips": []});
        let second = net.plugin_config(&net.plugins[1], &att, Some(&prev));
        assert_eq!(
            second["runtimeConfig"],
            serde_json::json!({"portMappings": [{"hostPort": 8080, "containerPort": 8000, "protocol": "tcp"}]})
        );
        assert_eq!(second["prevResult"], prev);
    }

    #[test]
    fn a_conflist_without_plugins_is_refused_naming_what_is_missing() {
        let err = Network::from_conflist(r#"{"cniVersion":"1.0.0","name":"n"}"#, &[]).unwrap_err();
        assert!(err.contains("plugins"), "{err}");
        let err = Network::from_conflist(r#"{"plugins":[]}"#, &[]).unwrap_err();
        assert!(err.contains("name"), "{err}");
    }
}
