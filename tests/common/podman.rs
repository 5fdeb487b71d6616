//! podman driving CNI plugins inside a throwaway host (`HostNs::for_engine`).
//!
//! Everything podman keeps lives under /run/podman-e2e, the host's private
//! tmpfs: containers.conf (`network_backend = "cni"`, our network config
//! directory, our plugin directory first then the reference plugins),
//! storage.conf (vfs, runroot and graphroot here), a busybox-static rootfs
//! for `--rootfs`, and the plugin directory where `supervisor` is a symlink
//! to the binary under test. Cgroups are disabled for containers: podman
//! then creates no `libpod_parent` directories in the machine's cgroup
//! hierarchies, and the host's pid namespace ends every conmon with the
//! test.

use std::process::{Command, Output, Stdio};

use super::{HostNs, SUPERVISOR, stderr, stdout};

/// Where podman's files live inside the host.
pub const DIR: &str = "/run/podman-e2e";
/// The busybox tree containers run on.
pub const ROOTFS: &str = "/run/podman-e2e/rootfs";

/// podman, configured for one host.
pub struct Podman<'a> {
    pub host: &'a HostNs,
}

impl<'a> Podman<'a> {
    /// Writes podman's configuration, the rootfs and the plugin directory
    /// into `host`, and the network configs `(file name, JSON)`.
    pub fn new(host: &'a HostNs, networks: &[(&str, String)]) -> Podman<'a> {
        let podman = Podman { host };
        for dir in [
            "net",
            "plugins",
            "run",
            "root",
            "tmp",
            "rootfs/bin",
            "rootfs/etc",
        ] {
            std::fs::create_dir_all(podman.file(dir)).expect("podman directories");
        }
        for dir in ["proc", "sys", "dev", "tmp"] {
            std::fs::create_dir_all(podman.file(&format!("rootfs/{dir}"))).expect("rootfs dirs");
        }
        assert!(
            std::path::Path::new("/bin/busybox").exists(),
            "/bin/busybox: install busybox-static (scripts/deps)"
        );
        super::copy_executable(
            "/bin/busybox",
            std::path::Path::new(&podman.file("rootfs/bin/busybox")),
        );
        for applet in ["sh", "nc", "echo", "cat", "sleep", "ip", "hostname", "true"] {
            std::os::unix::fs::symlink("busybox", podman.file(&format!("rootfs/bin/{applet}")))
                .expect("busybox applet link");
        }
        std::os::unix::fs::symlink(SUPERVISOR, podman.file("plugins/supervisor"))
            .expect("install the plugin as a symlink");
        std::fs::write(
            podman.file("containers.conf"),
            format!(
                "[containers]\ncgroups = \"disabled\"\n\
                 [network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{DIR}/net\"\n\
                 cni_plugin_dirs = [\"{DIR}/plugins\", \"/usr/lib/cni\"]\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\n\
                 tmp_dir = \"{DIR}/tmp\"\n"
            ),
        )
        .expect("containers.conf");
        std::fs::write(
            podman.file("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{DIR}/run\"\ngraphroot = \"{DIR}/root\"\n"
            ),
        )
        .expect("storage.conf");
        for (name, json) in networks {
            std::fs::write(podman.file(&format!("net/{name}")), json).expect("network config");
        }
        podman
    }

    /// `path` under [`DIR`] as the test sees it.
    fn file(&self, path: &str) -> String {
        self.host.path(&format!("{DIR}/{path}"))
    }

    /// `podman ARGS…` in the host.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.host.command("podman");
        cmd.env("CONTAINERS_CONF", format!("{DIR}/containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", format!("{DIR}/storage.conf"))
            .env_remove("CONTAINER_HOST")
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// `podman ARGS…`, to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("spawn podman")
    }

    /// `podman ARGS…`, which must succeed; its stdout, trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed with {}:\nstdout: {}\nstderr: {}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out).trim().to_string()
    }

    /// `podman run -d --name NAME --network NETWORK [-p P]… --rootfs … CMD…`:
    /// the container's id.
    pub fn start(&self, name: &str, network: &str, publish: &[&str], cmd: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--name", name, "--network", network];
        for p in publish {
            args.extend(["-p", p]);
        }
        args.extend(["--rootfs", ROOTFS]);
        args.extend(cmd);
        self.ok(&args)
    }

    /// `podman run --rm --network NETWORK --rootfs … CMD…`, to its end.
    pub fn run_once(&self, network: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["run", "--rm", "--network", network, "--rootfs", ROOTFS];
        args.extend(cmd);
        self.run(&args)
    }

    /// The container's address on its network, as podman reports it.
    pub fn address(&self, name: &str) -> String {
        self.ok(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            name,
        ])
    }

    /// `podman rm -f -t 0 NAME`: no grace period (nc as PID 1 ignores
    /// SIGTERM).
    pub fn remove(&self, name: &str) {
        self.ok(&["rm", "-f", "-t", "0", name]);
    }
}
