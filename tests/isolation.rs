//! Isolation from the host's filesystem, tried as an attacker inside the
//! container would (root, docker's default capabilities): writing the
//! host's files, reading the supervisor's state, reaching the old root after
//! pivot_root, using a host device. Each attack is first shown to work with
//! the protection off (`--rw-host`), so a passing test is one that can fail.
//! The rootfs is busybox-static (Debian's `busybox-static`), built per test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{HostNs, stderr};

/// A busybox rootfs with a non-root user, removed on drop.
struct Rootfs {
    dir: PathBuf,
}

impl Rootfs {
    fn new(test: &str) -> Rootfs {
        let dir = scratch(&format!("rootfs-{test}"));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        assert!(
            Path::new("/bin/busybox").exists(),
            "/bin/busybox: install busybox-static (scripts/deps)"
        );
        common::copy_executable("/bin/busybox", &bin.join("busybox"));
        let list = std::process::Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .unwrap();
        for applet in String::from_utf8(list.stdout).unwrap().lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
            }
        }
        std::fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("etc/group"),
            "root:x:0:\nalice:x:1000:\nstaff:x:50:alice\n",
        )
        .unwrap();
        Rootfs { dir }
    }

    fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory on the host's own disk (not under /tmp or /run, which
/// the container gets its own of).
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("isolation-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The rootfs's busybox runs as soon as it is copied, whatever the other
/// test threads fork meanwhile: a copy written through a descriptor of
/// ours would be held open for writing by each child forked during the
/// copy until its exec, and an exec of the copy meanwhile fails with
/// ETXTBSY. Here four threads fork children that wait 20 ms before their
/// exec; with `std::fs::copy`, 1 to 4 of the 30 copies met ETXTBSY (5
/// runs of 5), with `common::copy_executable` none.
#[test]
fn a_copied_busybox_runs_at_once_while_other_threads_fork() {
    use std::os::unix::process::CommandExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = scratch("copied-busybox");
    let stop = Arc::new(AtomicBool::new(false));
    let forkers: Vec<_> = (0..4)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut child = std::process::Command::new("true");
                    // SAFETY: the child only sleeps (nanosleep) before its exec.
                    unsafe {
                        child.pre_exec(|| {
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            Ok(())
                        })
                    };
                    if let Ok(mut child) = child.spawn() {
                        let _ = child.wait();
                    }
                }
            })
        })
        .collect();
    let failures: Vec<String> = (0..30)
        .filter_map(|i| {
            let copy = dir.join(format!("busybox-{i}"));
            common::copy_executable("/bin/busybox", &copy);
            let ran = std::process::Command::new(&copy).arg("true").status();
            match ran {
                Ok(status) if status.success() => None,
                other => Some(format!("copy {i}: {other:?}")),
            }
        })
        .collect();
    stop.store(true, Ordering::Relaxed);
    for forker in forkers {
        forker.join().unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `sh -c SCRIPT` in a container without network, with extra run options.
fn sh(ns: &HostNs, options: &[&str], script: &str) -> String {
    ns.container_sh(options, script)
}

/// Prints "ok" or "refused" for a command.
fn attempt(what: &str, command: &str) -> String {
    format!("{{ {command}; }} >/dev/null 2>&1 && echo '{what} ok' || echo '{what} refused'\n")
}

#[test]
fn the_host_filesystem_is_read_only_inside_unless_rw_host() {
    let Some(ns) = HostNs::new("the_host_filesystem_is_read_only_inside_unless_rw_host") else {
        return;
    };
    let dir = scratch("host-write");
    let file = dir.join("written");
    let script = attempt("write", &format!("echo pwned > {}", file.display()));
    assert_eq!(sh(&ns, &["--rw-host"], &script), "write ok\n");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "pwned\n");
    std::fs::remove_file(&file).unwrap();
    assert_eq!(sh(&ns, &[], &script), "write refused\n");
    assert!(!file.exists());
    // Writable where programs expect to write, but private: the host's
    // /tmp never sees it.
    let marker = format!("/tmp/sv-isolation-{}", std::process::id());
    assert_eq!(
        sh(
            &ns,
            &[],
            &attempt("tmp", &format!("touch {marker} /var/tmp/x /run/x"))
        ),
        "tmp ok\n"
    );
    assert!(!Path::new(&marker).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_supervisors_state_directory_is_out_of_reach_in_every_mode_but_rw_host() {
    let Some(ns) =
        HostNs::new("the_supervisors_state_directory_is_out_of_reach_in_every_mode_but_rw_host")
    else {
        return;
    };
    let rootfs = Rootfs::new("state");
    // Its own record is there while it runs: reading and writing both.
    let script = attempt("read", "ls /run/supervisor/containers | grep -q .")
        + &attempt("write", "touch /run/supervisor/planted");
    assert_eq!(sh(&ns, &["--rw-host"], &script), "read ok\nwrite ok\n");
    ns.ok("rm /run/supervisor/planted");
    assert_eq!(sh(&ns, &[], &script), "read refused\nwrite refused\n");
    assert_eq!(
        sh(&ns, &["--rootfs", rootfs.path()], &script),
        "read refused\nwrite refused\n"
    );
    assert!(!ns.sh("test -e /run/supervisor/planted").status.success());
    // A state directory elsewhere than /run is hidden too.
    let elsewhere = scratch("state-dir");
    let state = elsewhere.to_str().unwrap();
    let script = attempt("read", &format!("ls {state}/containers | grep -q ."))
        + &attempt("write", &format!("touch {state}/planted"));
    let with_state =
        |options: &[&str]| sh(&ns, &[&["--state-dir", state], options].concat(), &script);
    assert_eq!(with_state(&["--rw-host"]), "read ok\nwrite ok\n");
    // Else the next run refuses the directory: "planted" is not its own.
    std::fs::remove_file(elsewhere.join("planted")).unwrap();
    assert_eq!(with_state(&[]), "read refused\nwrite refused\n");
    let _ = std::fs::remove_dir_all(&elsewhere);
}

#[test]
fn after_pivot_root_no_host_path_is_reachable_but_the_volumes() {
    let Some(ns) = HostNs::new("after_pivot_root_no_host_path_is_reachable_but_the_volumes") else {
        return;
    };
    let rootfs = Rootfs::new("pivot");
    let secret = scratch("secret");
    std::fs::write(secret.join("secret"), "host secret\n").unwrap();
    let shared = scratch("shared");
    std::fs::write(shared.join("shared"), "shared\n").unwrap();
    let secret_file = secret.join("secret");
    let secret_file = secret_file.to_str().unwrap();
    let reach = [
        attempt("path", &format!("cat {secret_file}")),
        attempt("proc-root", &format!("cat /proc/1/root{secret_file}")),
        attempt("self-root", &format!("cat /proc/self/root/..{secret_file}")),
        attempt("dotdot", &format!("cat /../../..{secret_file}")),
    ]
    .concat();
    // The PID 1 init is not dumpable: /proc/1/root is closed in every mode.
    assert_eq!(
        sh(&ns, &["--rw-host"], &reach),
        "path ok\nproc-root refused\nself-root ok\ndotdot ok\n"
    );
    // Any mount point beyond the container's own.
    let mounts = attempt(
        "mounts",
        "awk '{print $5}' /proc/self/mountinfo | grep -v -e '^/$' -e '^/proc' -e '^/dev' -e '^/sys' -e '^/etc/' -e '^/data$' | grep -q .",
    );
    assert_eq!(sh(&ns, &["--rw-host"], &mounts), "mounts ok\n");
    // Not on the host: it would walk the whole disk.
    let search = attempt("find", "find / -xdev -name secret | grep -q .") + &mounts;
    let volume = format!("{}:/data:ro", shared.display());
    let pivoted = sh(
        &ns,
        &["--rootfs", rootfs.path(), "-v", &volume],
        &(reach + &search),
    );
    assert_eq!(
        pivoted,
        "path refused\nproc-root refused\nself-root refused\ndotdot refused\nfind refused\nmounts refused\n"
    );
    // What is there: the rootfs, and the volume.
    let seen = sh(
        &ns,
        &["--rootfs", rootfs.path(), "-v", &volume],
        "ls /..; cat /data/shared; grep -c ' /data ' /proc/self/mountinfo",
    );
    assert!(
        seen.starts_with("bin\ndata\ndev\netc\nproc\nsys\n"),
        "{seen}"
    );
    assert!(seen.ends_with("shared\n1\n"), "{seen}");
    let _ = std::fs::remove_dir_all(&secret);
    let _ = std::fs::remove_dir_all(&shared);
}

#[test]
fn no_device_node_made_in_the_container_opens_and_host_disks_are_absent() {
    let Some(ns) =
        HostNs::new("no_device_node_made_in_the_container_opens_and_host_disks_are_absent")
    else {
        return;
    };
    let rootfs = Rootfs::new("devices");
    let dir = scratch("devices");
    // CAP_MKNOD is in docker's default set; docker relies on the device
    // cgroup. Here nothing writable allows devices: a char node (1,3, null,
    // openable by anyone) shows it; a disk's node would be the same.
    let nodes = |root: &str| {
        [
            attempt(
                "here",
                &format!("mknod {root}/n c 1 3 && echo x > {root}/n"),
            ),
            attempt("tmp", "mknod /tmp/n c 1 3 && echo x > /tmp/n"),
            attempt("dev", "mknod /dev/n c 1 3 && echo x > /dev/n"),
            attempt("shm", "mknod /dev/shm/n c 1 3 && echo x > /dev/shm/n"),
            attempt(
                "disks",
                "ls /dev | grep -q -e '^vd' -e '^sd' -e '^nvme' -e '^loop'",
            ),
            attempt("mount", "mkdir -p /mnt && mount -t tmpfs t /mnt"),
        ]
        .concat()
    };
    let host = sh(&ns, &["--rw-host"], &nodes(dir.to_str().unwrap()));
    assert!(host.starts_with("here ok\n"), "{host}");
    let sealed = sh(&ns, &[], &nodes(dir.to_str().unwrap()));
    assert_eq!(
        sealed,
        "here refused\ntmp refused\ndev refused\nshm refused\ndisks refused\nmount refused\n"
    );
    let pivoted = sh(&ns, &["--rootfs", rootfs.path()], &nodes(""));
    assert_eq!(
        pivoted,
        "here refused\ntmp refused\ndev refused\nshm refused\ndisks refused\nmount refused\n"
    );
    // And the devices a program needs are there.
    assert_eq!(
        sh(
            &ns,
            &["--rootfs", rootfs.path()],
            "echo x > /dev/null && head -c 3 /dev/zero | wc -c && ls /dev | tr '\\n' ' '"
        ),
        "3\nfd full null ptmx pts random shm stderr stdin stdout tty urandom zero "
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_rootfs_or_volume_source_fails_with_125_naming_it_before_anything_is_created() {
    let Some(ns) = HostNs::new(
        "a_missing_rootfs_or_volume_source_fails_with_125_naming_it_before_anything_is_created",
    ) else {
        return;
    };
    for (args, says) in [
        (
            vec!["--rootfs", "/surely/not/here"],
            "invalid --rootfs /surely/not/here: No such file",
        ),
        (
            vec!["--rootfs", "/etc/hostname"],
            "invalid --rootfs /etc/hostname: not a directory",
        ),
        (
            vec!["-v", "/surely/not/here:/data"],
            "invalid --volume \"/surely/not/here:/data\": /surely/not/here: No such file",
        ),
    ] {
        let mut all = args.clone();
        all.extend(["--", "true"]);
        let out = ns.run(&all);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    // The default network: nothing created, not even the bridge or a lease.
    assert_eq!(ns.ok("ip -o link show type bridge | wc -l").trim(), "0");
    assert!(!ns.sh("test -e /run/supervisor").status.success());
}

#[test]
fn volumes_tmpfs_read_only_and_workdir_inside_the_rootfs() {
    let Some(ns) = HostNs::new("volumes_tmpfs_read_only_and_workdir_inside_the_rootfs") else {
        return;
    };
    let rootfs = Rootfs::new("volumes");
    let data = scratch("volume");
    std::fs::write(data.join("in"), "from the host\n").unwrap();
    let ro = format!("{}:/ro:ro", data.display());
    let rw = format!("{}:/rw", data.display());
    let out = sh(
        &ns,
        &[
            "--rootfs",
            rootfs.path(),
            "--read-only",
            "-v",
            &ro,
            "-v",
            &rw,
            "--tmpfs",
            "/scratch:size=1m",
            "-w",
            "/rw",
        ],
        &[
            "cat /ro/in; pwd\n",
            &attempt("ro-volume", "touch /ro/x"),
            &attempt("rw-volume", "echo out > /rw/out"),
            &attempt("root", "touch /x"),
            &attempt(
                "tmpfs",
                "touch /scratch/x && df /scratch | grep -q ' 1024 '",
            ),
            &attempt("shm", "touch /dev/shm/x"),
        ]
        .concat(),
    );
    assert_eq!(
        out,
        "from the host\n/rw\nro-volume refused\nrw-volume ok\nroot refused\ntmpfs ok\nshm ok\n"
    );
    assert_eq!(std::fs::read_to_string(data.join("out")).unwrap(), "out\n");
    // Without --read-only, the rootfs is writable.
    assert_eq!(
        sh(
            &ns,
            &["--rootfs", rootfs.path()],
            &attempt("root", "touch /x")
        ),
        "root ok\n"
    );
    // The host's root is read-only already; a volume there is writable.
    let on_host = format!("{}:/mnt", data.display());
    assert_eq!(
        sh(
            &ns,
            &["-v", &on_host],
            &attempt("rw-volume", "touch /mnt/y")
        ),
        "rw-volume ok\n"
    );
    // Its mount point in the container's own /run or /tmp is made there.
    let in_run = format!("{}:/run/app", data.display());
    let file_in_tmp = format!("{}:/tmp/deep/in.txt:ro", data.join("in").display());
    assert_eq!(
        sh(
            &ns,
            &["-v", &in_run, "-v", &file_in_tmp],
            "cat /run/app/in /tmp/deep/in.txt"
        ),
        "from the host\nfrom the host\n"
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_volume_from_the_hosts_tmp_is_mounted_though_the_containers_own_tmp_covers_it() {
    let Some(ns) = HostNs::new(
        "a_volume_from_the_hosts_tmp_is_mounted_though_the_containers_own_tmp_covers_it",
    ) else {
        return;
    };
    let data = common::unique_temp_path("isolation-tmp-volume");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in"), "from the host's /tmp\n").unwrap();
    let dir = format!("{}:/mnt:ro", data.display());
    // Its mount point in the container's own /tmp, the host's /tmp hidden.
    let file = format!("{}:/tmp/in.txt", data.join("in").display());
    let out = sh(
        &ns,
        &["-v", &dir, "-v", &file],
        &[
            "cat /mnt/in /tmp/in.txt\n",
            &attempt("ro", "touch /mnt/x"),
            &attempt("host-tmp-hidden", &format!("! test -e {}", data.display())),
        ]
        .concat(),
    );
    let _ = std::fs::remove_dir_all(&data);
    assert_eq!(
        out,
        "from the host's /tmp\nfrom the host's /tmp\nro refused\nhost-tmp-hidden ok\n"
    );
}

#[test]
fn user_by_name_or_id_sets_ids_groups_and_home_from_the_containers_own_files() {
    let Some(ns) =
        HostNs::new("user_by_name_or_id_sets_ids_groups_and_home_from_the_containers_own_files")
    else {
        return;
    };
    let rootfs = Rootfs::new("user");
    let root = ["--rootfs", rootfs.path()];
    let id = |user: &str| {
        sh(
            &ns,
            &[&root[..], &["--user", user]].concat(),
            "id; echo $HOME; grep -e CapEff -e CapPrm /proc/self/status",
        )
    };
    assert_eq!(
        id("alice"),
        "uid=1000(alice) gid=1000(alice) groups=50(staff)\n/home/alice\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
    );
    assert_eq!(
        id("1000:50"),
        "uid=1000(alice) gid=50(staff)\n/home/alice\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
    );
    assert!(id("4242").starts_with("uid=4242 gid=0(root)\n/\n"));
    // alice exists only in the rootfs: the host's /etc/passwd is not asked.
    let out = ns.run(&["--network", "none", "--user", "alice", "--", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("no user \"alice\" in the container's /etc/passwd"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn cap_drop_and_cap_add_change_the_capabilities_and_rekey_the_seccomp_profile() {
    let Some(ns) =
        HostNs::new("cap_drop_and_cap_add_change_the_capabilities_and_rekey_the_seccomp_profile")
    else {
        return;
    };
    let rootfs = Rootfs::new("caps");
    let cap_eff = |options: &[&str]| {
        sh(
            &ns,
            &[&["--rootfs", rootfs.path()], options].concat(),
            "grep CapEff /proc/self/status",
        )
    };
    assert_eq!(cap_eff(&[]), "CapEff:\t00000000a80425fb\n");
    assert_eq!(
        cap_eff(&["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"]),
        "CapEff:\t0000000000001000\n"
    );
    // docker's profile allows mount only with CAP_SYS_ADMIN: the profile
    // follows the capabilities, not docker's default set.
    let mount = attempt("mount", "mkdir -p /mnt && mount -t tmpfs t /mnt");
    let root = ["--rootfs", rootfs.path()];
    assert_eq!(sh(&ns, &root, &mount), "mount refused\n");
    assert_eq!(
        sh(
            &ns,
            &[&root[..], &["--cap-add", "SYS_ADMIN"]].concat(),
            &mount
        ),
        "mount ok\n"
    );
    let chown = attempt("chown", "touch /tmp/f && chown 1000 /tmp/f");
    assert_eq!(sh(&ns, &[], &chown), "chown ok\n");
    assert_eq!(sh(&ns, &["--cap-drop", "chown"], &chown), "chown refused\n");
}

#[test]
fn cap_add_all_beyond_the_supervisors_own_capabilities_is_refused_naming_the_missing_one() {
    let Some(ns) = HostNs::new(
        "cap_add_all_beyond_the_supervisors_own_capabilities_is_refused_naming_the_missing_one",
    ) else {
        return;
    };
    // A supervisor without CAP_SYS_MODULE (as in a container of its own).
    let run = |options: &[&str]| {
        common::run(
            ns.command("setpriv")
                .args(["--bounding-set", "-sys_module", common::SUPERVISOR])
                .args(["run", "--network", "none"])
                .args(options)
                .args(["--", "true"]),
        )
    };
    // And whatever this machine's root lacks already (this one has no
    // CAP_SYS_RESOURCE).
    let held = caps::read(None, caps::CapSet::Permitted).unwrap();
    let last: usize = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut missing: Vec<caps::Capability> = caps::all()
        .into_iter()
        .filter(|c| usize::from(c.index()) <= last)
        .filter(|c| !held.contains(c) || *c == caps::Capability::CAP_SYS_MODULE)
        .collect();
    missing.sort_by_key(|c| c.index());
    let names: Vec<String> = missing.iter().map(|c| c.to_string()).collect();
    let out = run(&["--cap-add", "ALL"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "supervisor: the container would keep {}, which the supervisor itself does not \
             have: give it to the supervisor, or leave it out (--cap-drop)\n",
            names.join(", ")
        )
    );
    let mut options = vec!["--cap-add", "ALL"];
    for name in &names {
        options.extend(["--cap-drop", name]);
    }
    let out = run(&options);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_rootfs_whose_resolv_conf_is_a_dangling_relative_symlink_gets_ours_where_it_points() {
    let Some(ns) = HostNs::new(
        "a_rootfs_whose_resolv_conf_is_a_dangling_relative_symlink_gets_ours_where_it_points",
    ) else {
        return;
    };
    // As systemd images ship it.
    let rootfs = Rootfs::new("dangling-resolv");
    std::os::unix::fs::symlink(
        "../run/systemd/resolve/stub-resolv.conf",
        rootfs.dir.join("etc/resolv.conf"),
    )
    .unwrap();
    let seen = sh(
        &ns,
        &["--rootfs", rootfs.path(), "--dns", "192.0.2.53"],
        "cat /etc/resolv.conf",
    );
    assert_eq!(seen.lines().next(), Some("nameserver 192.0.2.53"), "{seen}");
    // Made inside the rootfs, where the symlink points; the symlink stays.
    assert!(
        rootfs
            .dir
            .join("run/systemd/resolve/stub-resolv.conf")
            .is_file()
    );
    assert!(rootfs.dir.join("etc/resolv.conf").is_symlink());
}

#[test]
fn a_volume_of_another_kind_than_its_mount_point_in_the_rootfs_is_refused_before_anything_is_made()
{
    let Some(ns) = HostNs::new(
        "a_volume_of_another_kind_than_its_mount_point_in_the_rootfs_is_refused_before_anything_is_made",
    ) else {
        return;
    };
    let rootfs = Rootfs::new("volume-kind");
    let volume = format!("{}:/etc/passwd", rootfs.dir.join("bin").display());
    let out = ns.run(&["--rootfs", rootfs.path(), "-v", &volume, "--", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        stderr(&out),
        format!(
            "supervisor: invalid --volume {volume:?}: /etc/passwd is a file in the rootfs, \
             and the source a directory\n"
        )
    );
    // Not even the bridge: the network is made after the options are checked.
    assert_eq!(common::container_veths(&ns), Vec::<String>::new());
    assert!(!ns.sh("ip link show sv0").status.success());
    common::assert_no_state(&ns);
}

/// A link in the rootfs to its root (`/link -> /`, `/up -> ../..`) is
/// followed inside it, so a mount there would cover the whole tree the
/// container enters: the child failed on it with a bare "No such file or
/// directory" naming the rootfs.
#[test]
fn a_mount_on_a_link_to_the_rootfs_root_is_refused_naming_it_before_anything_is_made() {
    let Some(ns) = HostNs::new(
        "a_mount_on_a_link_to_the_rootfs_root_is_refused_naming_it_before_anything_is_made",
    ) else {
        return;
    };
    let rootfs = Rootfs::new("link-to-root");
    std::os::unix::fs::symlink("/", rootfs.dir.join("link")).unwrap();
    std::os::unix::fs::symlink("../..", rootfs.dir.join("up")).unwrap();
    let volume = format!("{}:/link", rootfs.dir.join("bin").display());
    for (option, value, target) in [("-v", volume.as_str(), "/link"), ("--tmpfs", "/up", "/up")] {
        let out = ns.run(&["--rootfs", rootfs.path(), option, value, "--", "true"]);
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        let kind = if option == "-v" { "volume" } else { "tmpfs" };
        assert_eq!(
            stderr(&out),
            format!(
                "supervisor: invalid --{kind} {value:?}: {target}: a link in the rootfs to its \
                 root, where nothing can be mounted\n"
            )
        );
    }
    // An image's file of ours (/etc/hosts…) linked to its root.
    std::os::unix::fs::symlink("/", rootfs.dir.join("etc/hosts")).unwrap();
    let out = ns.run(&["--rootfs", rootfs.path(), "--", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "supervisor: preparing {}/etc/hosts: a link in the rootfs to its root, where nothing \
             can be mounted\n",
            rootfs.path()
        )
    );
    assert_eq!(common::container_veths(&ns), Vec::<String>::new());
    assert!(!ns.sh("ip link show sv0").status.success());
    common::assert_no_state(&ns);
    // The rootfs's own directory bound on /mnt (in the test host's mount
    // namespace) is another place than its root: a mount there is fine.
    std::fs::remove_file(rootfs.dir.join("etc/hosts")).unwrap();
    std::fs::create_dir(rootfs.dir.join("mnt")).unwrap();
    ns.ok(&format!("mount --bind {0} {0}/mnt", rootfs.path()));
    let volume = format!("{}:/mnt", rootfs.dir.join("bin").display());
    let out = ns.run(&["--rootfs", rootfs.path(), "-v", &volume, "--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `-u NAME` reads the container's /etc/passwd and /etc/group from the
/// host, before it starts (`run`) or while it runs (`exec`, through
/// /proc/PID/root). Those files are the image's, or the container's own
/// writing: a link to an absolute path is followed inside the container's
/// root, never to the host's file of that name, and a FIFO (whose read
/// would never end) is refused naming it, exit 125.
#[test]
fn user_files_are_read_inside_the_containers_root_never_through_a_link_to_the_hosts() {
    let Some(ns) = HostNs::new(
        "user_files_are_read_inside_the_containers_root_never_through_a_link_to_the_hosts",
    ) else {
        return;
    };
    let host = scratch("user-files-host");
    let host_passwd = host.join("passwd");
    std::fs::write(&host_passwd, "intruder:x:4242:4242::/:/bin/sh\n").unwrap();
    let rootfs = Rootfs::new("user-links");
    let passwd = rootfs.dir.join("etc/passwd");
    let kept = std::fs::read(&passwd).unwrap();
    std::fs::remove_file(&passwd).unwrap();
    std::os::unix::fs::symlink(&host_passwd, &passwd).unwrap();
    let run = |user: &str| {
        ns.run(&[
            "--network",
            "none",
            "--rootfs",
            rootfs.path(),
            "--user",
            user,
            "--",
            "id",
            "-u",
        ])
    };
    let refused = |out: std::process::Output, user: &str, reason: &str| {
        let want = format!("supervisor: invalid --user \"{user}\": {reason}\n");
        assert_eq!((out.status.code(), stderr(&out)), (Some(125), want));
    };
    let unknown = "no user \"intruder\" in the container's /etc/passwd";
    refused(run("intruder"), "intruder", unknown);
    std::fs::remove_file(&passwd).unwrap();
    std::fs::write(&passwd, kept).unwrap();
    let group = rootfs.dir.join("etc/group");
    std::fs::remove_file(&group).unwrap();
    nix::unistd::mkfifo(&group, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let fifo = "the container's /etc/group: not a regular file";
    refused(run("alice"), "alice", fifo);
    std::fs::remove_file(&group).unwrap();
    // The container itself links its /etc/passwd to the host's file.
    let script = format!(
        "ln -sf {} /etc/passwd && echo ready && {{ read _ || true; }}",
        host_passwd.display()
    );
    let (web, _out) = ns.start(&[
        "--network",
        "none",
        "--name",
        "web",
        "--rootfs",
        rootfs.path(),
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let exec = ns
        .supervisor()
        .args(["exec", "-u", "intruder", "web", "id", "-u"])
        .output()
        .expect("spawn supervisor exec");
    refused(exec, "intruder", unknown);
    common::stop(web);
    let _ = std::fs::remove_dir_all(host);
}

#[test]
fn a_rootfs_link_through_a_missing_directory_and_up_never_has_a_host_file_made_or_emptied() {
    let Some(ns) = HostNs::new(
        "a_rootfs_link_through_a_missing_directory_and_up_never_has_a_host_file_made_or_emptied",
    ) else {
        return;
    };
    let host = scratch("link-up-host");
    std::fs::write(host.join("resolv.conf"), "precious\n").unwrap();
    // `gone/..` is no path (the kernel says ENOENT); taken as nothing, it
    // led to `out`, which leads to the host.
    let rootfs = Rootfs::new("link-up");
    std::os::unix::fs::symlink(&host, rootfs.dir.join("out")).unwrap();
    std::os::unix::fs::symlink(
        "../gone/../out/resolv.conf",
        rootfs.dir.join("etc/resolv.conf"),
    )
    .unwrap();
    std::os::unix::fs::symlink("gone/../out/made", rootfs.dir.join("work")).unwrap();
    for options in [&["--dns", "192.0.2.53"][..], &["-w", "/work/dir"][..]] {
        let out = ns.run(
            &[
                &["--network", "none", "--rootfs", rootfs.path()],
                options,
                &["--", "true"],
            ]
            .concat(),
        );
        assert_eq!(
            std::fs::read_to_string(host.join("resolv.conf")).unwrap(),
            "precious\n"
        );
        assert!(!host.join("made").exists(), "{options:?}");
        assert_eq!(
            out.status.code(),
            Some(125),
            "{options:?}: {}",
            stderr(&out)
        );
    }
    let _ = std::fs::remove_dir_all(&host);
}

/// A rootfs whose every mount point is there but those the test leaves
/// out: the supervisor then stops at `mount-point` only for them.
fn rootfs_with_mount_points(test: &str) -> Rootfs {
    let rootfs = Rootfs::new(test);
    for dir in ["proc", "dev", "sys", "mnt"] {
        std::fs::create_dir(rootfs.dir.join(dir)).unwrap();
    }
    for file in ["hosts", "hostname", "resolv.conf"] {
        std::fs::write(rootfs.dir.join("etc").join(file), "").unwrap();
    }
    rootfs
}

/// `supervisor run ARGS…`, stopped at the fault point `point` while `swap`
/// runs, then to its end.
fn run_swapping_at(ns: &HostNs, point: &str, args: &[&str], swap: impl FnOnce()) -> Output {
    let mut child = ns
        .supervisor()
        .env("SUPERVISOR_TEST_PAUSE_AT", point)
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn supervisor");
    let pid = child.id();
    common::eventually(
        &format!("the supervisor stopping at {point}"),
        Duration::from_secs(30),
        || {
            if child.try_wait().expect("try_wait").is_some() {
                panic!("{args:?} ended before {point}");
            }
            (common::process_state(pid) == Some('T')).then_some(())
        },
    );
    swap();
    // Every other mount point missing since the swap stops it again.
    common::eventually(
        &format!("the supervisor going on from {point}"),
        Duration::from_secs(30),
        || {
            // SAFETY: kill on our own child's pid, not yet reaped.
            unsafe { libc::kill(pid as i32, libc::SIGCONT) };
            std::thread::sleep(Duration::from_millis(10));
            child.try_wait().expect("try_wait")
        },
    );
    child.wait_with_output().expect("the supervisor's end")
}

/// What another writer of the rootfs does: `dir` moved aside, a symbolic
/// link to `link` in its place.
fn swap_for_link(dir: &Path, link: &Path) {
    std::fs::rename(dir, dir.with_extension("old")).unwrap();
    std::os::unix::fs::symlink(link, dir).unwrap();
}

/// runc's CVE-2021-30465 class: the supervisor is held (a fault point)
/// between finding a mount point missing and making it, while the
/// directory that holds it is swapped for a link to the host.
#[test]
fn a_rootfs_directory_swapped_for_a_link_to_the_host_while_a_mount_point_is_made_has_nothing_made_there()
 {
    let Some(ns) = HostNs::new(
        "a_rootfs_directory_swapped_for_a_link_to_the_host_while_a_mount_point_is_made_has_nothing_made_there",
    ) else {
        return;
    };
    let host = scratch("race-host");
    std::fs::write(host.join("hosts"), "precious\n").unwrap();
    let shared = scratch("race-shared");
    let volume = format!("{}:/mnt/volume", shared.display());
    let cases: [(&str, &[&str], &str); 3] = [
        ("mnt", &["-v", &volume], "volume"),
        ("mnt", &["--tmpfs", "/mnt/tmpfs"], "tmpfs"),
        ("etc", &[], "hosts"),
    ];
    for (dir, options, made) in cases {
        let rootfs = rootfs_with_mount_points(&format!("race-{made}"));
        if made == "hosts" {
            std::fs::remove_file(rootfs.dir.join("etc/hosts")).unwrap();
        }
        let args = [
            &["--network", "none", "--rootfs", rootfs.path()][..],
            options,
            &["--", "true"],
        ]
        .concat();
        let out = run_swapping_at(&ns, "mount-point", &args, || {
            swap_for_link(&rootfs.dir.join(dir), &host)
        });
        let on_host: Vec<_> = std::fs::read_dir(&host)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(on_host, ["hosts"], "{made}: {}", stderr(&out));
        assert_eq!(
            std::fs::read_to_string(host.join("hosts")).unwrap(),
            "precious\n",
            "{made}: {}",
            stderr(&out)
        );
    }
    let _ = std::fs::remove_dir_all(&host);
    let _ = std::fs::remove_dir_all(&shared);
}

/// The same swap after the mount point was made, before the container's
/// mounts: the volume is mounted on what was made, or not at all, never
/// where the link leads, on the host or elsewhere in the rootfs.
#[test]
fn a_mount_point_swapped_for_a_link_after_it_was_made_has_the_volume_mounted_on_it_or_nowhere() {
    let Some(ns) = HostNs::new(
        "a_mount_point_swapped_for_a_link_after_it_was_made_has_the_volume_mounted_on_it_or_nowhere",
    ) else {
        return;
    };
    let host = scratch("late-race-host");
    std::fs::create_dir(host.join("volume")).unwrap();
    let shared = scratch("late-race-shared");
    std::fs::write(shared.join("shared"), "shared\n").unwrap();
    let volume = format!("{}:/mnt/volume", shared.display());
    for (case, link) in [("host", host.clone()), ("decoy", PathBuf::from("decoy"))] {
        let rootfs = rootfs_with_mount_points(&format!("late-race-{case}"));
        std::fs::create_dir_all(rootfs.dir.join("decoy/volume")).unwrap();
        let args = [
            "--network",
            "none",
            "--rootfs",
            rootfs.path(),
            "-v",
            &volume,
            "--",
            "cat",
            "/mnt.old/volume/shared",
        ];
        let out = run_swapping_at(&ns, "registered", &args, || {
            swap_for_link(&rootfs.dir.join("mnt"), &link)
        });
        let refused = out.status.code() == Some(125) && stderr(&out).contains("mnt/volume");
        let on_it = out.status.success() && common::stdout(&out) == "shared\n";
        assert!(refused || on_it, "{case}: {}: {}", out.status, stderr(&out));
    }
    let _ = std::fs::remove_dir_all(&host);
    let _ = std::fs::remove_dir_all(&shared);
}

/// `supervisor run ARGS…` whose container's child is held at the child's
/// fault point `point` (on a FIFO: it cannot stop itself) while `swap`
/// runs, then to its end.
fn run_holding_child_at(ns: &HostNs, point: &str, args: &[&str], swap: impl FnOnce()) -> Output {
    let fifo = scratch(&format!("{point}-fifo")).join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let mut supervisor = ns
        .supervisor()
        .env(
            "SUPERVISOR_TEST_PAUSE_AT",
            format!("{point}:{}", fifo.display()),
        )
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn supervisor");
    // Opens once the child is there (ENXIO before): it waits until this
    // is closed.
    let held = common::eventually(
        &format!("the container's child at {point}"),
        Duration::from_secs(30),
        || {
            use std::os::unix::fs::OpenOptionsExt;
            let open = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo);
            if open.is_err() && supervisor.try_wait().expect("try_wait").is_some() {
                panic!("the supervisor ended before {point}");
            }
            open.ok()
        },
    );
    swap();
    drop(held);
    let out = supervisor.wait_with_output().expect("the supervisor's end");
    let _ = std::fs::remove_dir_all(fifo.parent().unwrap());
    out
}

/// /dev swapped for a link to the host once the child has mounted its
/// tmpfs there (held at `dev-mounted` on a FIFO), before it fills it: the
/// device nodes, directories and links go in that tmpfs, never on the host.
#[test]
fn a_dev_swapped_for_a_link_to_the_host_once_its_tmpfs_is_mounted_has_nothing_made_on_the_host() {
    let Some(ns) = HostNs::new(
        "a_dev_swapped_for_a_link_to_the_host_once_its_tmpfs_is_mounted_has_nothing_made_on_the_host",
    ) else {
        return;
    };
    let host = scratch("dev-race-host");
    let rootfs = rootfs_with_mount_points("dev-race");
    let args = ["--network", "none", "--rootfs", rootfs.path(), "--", "true"];
    let out = run_holding_child_at(&ns, "dev-mounted", &args, || {
        swap_for_link(&rootfs.dir.join("dev"), &host)
    });
    let on_host: Vec<_> = std::fs::read_dir(&host)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(on_host.is_empty(), "{on_host:?}: {}", stderr(&out));
    let _ = std::fs::remove_dir_all(&host);
}

/// `command` run in a container of `rootfs` without network, its child
/// held at `point` while `swap` runs.
fn command_held_at(
    ns: &HostNs,
    point: &str,
    rootfs: &Rootfs,
    command: &[&str],
    swap: impl FnOnce(),
) -> Output {
    let mut args = vec!["--network", "none", "--rootfs", rootfs.path(), "--"];
    args.extend_from_slice(command);
    run_holding_child_at(ns, point, &args, swap)
}

/// What `script` prints in a container of `rootfs` without network, its
/// child held at `point` while `swap` runs; its status and stderr when it
/// fails.
fn sh_held_at(
    ns: &HostNs,
    point: &str,
    rootfs: &Rootfs,
    script: &str,
    swap: impl FnOnce(),
) -> String {
    let out = command_held_at(ns, point, rootfs, &["sh", "-c", script], swap);
    if out.status.success() {
        common::stdout(&out)
    } else {
        format!("{}: {}", out.status, stderr(&out))
    }
}

/// What another writer of the rootfs does once a kernel filesystem is
/// mounted on `dir`: `dir` moved aside (the mount goes along), a plain
/// directory with plain `names` in its place, for the protections to land
/// on if they went by path.
fn move_aside_for_decoy(dir: &Path, names: &[&str]) {
    std::fs::rename(dir, dir.with_extension("old")).unwrap();
    std::fs::create_dir(dir).unwrap();
    for name in names {
        std::fs::create_dir_all(dir.join(name)).unwrap();
    }
}

/// The container's procfs moved aside once the child has entered its root
/// (held at `root-entered`: after pivot_root and its check, before the
/// protections), a decoy `proc/sys` in its place: docker's protections
/// still land on the procfs the child mounted, wherever it now is. Its
/// `sys` is read-only (opened for appending, never written: a sysctl of
/// the container's own UTS namespace all the same; refused with EROFS,
/// not any failure, ENOENT included) and its `interrupts` masked.
#[test]
fn a_proc_moved_aside_once_the_root_is_entered_keeps_its_sys_read_only_and_its_masks() {
    let Some(ns) = HostNs::new(
        "a_proc_moved_aside_once_the_root_is_entered_keeps_its_sys_read_only_and_its_masks",
    ) else {
        return;
    };
    let rootfs = rootfs_with_mount_points("proc-race");
    let script = "if failed=$( (exec 3>>/proc.old/sys/kernel/hostname) 2>&1 ); then
            echo 'sys writable'
        else
            case $failed in
                *'Read-only file system'*) echo 'sys read-only' ;;
                *) echo \"sys not opened: $failed\" ;;
            esac
        fi
        echo \"interrupts: $(wc -c </proc.old/interrupts) bytes\"";
    let out = sh_held_at(&ns, "root-entered", &rootfs, script, || {
        move_aside_for_decoy(&rootfs.dir.join("proc"), &["sys"])
    });
    assert_eq!(out, "sys read-only\ninterrupts: 0 bytes\n");
}

/// The same for the fresh sysfs (a decoy `sys/firmware` in its place):
/// its `firmware` is masked, an empty directory, wherever it now is.
/// `/sys.old` is checked to be the sysfs, and its `firmware` a directory:
/// an `ls` that fails counts no entries.
#[test]
fn a_sys_moved_aside_once_the_root_is_entered_keeps_its_masks() {
    let Some(ns) = HostNs::new("a_sys_moved_aside_once_the_root_is_entered_keeps_its_masks") else {
        return;
    };
    let rootfs = rootfs_with_mount_points("sys-race");
    let script = "test -d /sys.old/kernel || echo '/sys.old is not the sysfs'
        test -d /sys.old/firmware || echo '/sys.old/firmware is not a directory'
        echo \"firmware: $(ls -A /sys.old/firmware | wc -l) entries\"";
    let out = sh_held_at(&ns, "root-entered", &rootfs, script, || {
        move_aside_for_decoy(&rootfs.dir.join("sys"), &["firmware", "fs/cgroup"])
    });
    assert_eq!(out, "firmware: 0 entries\n");
}

/// The container's procfs, then its sysfs, moved aside once mounted (held
/// at `proc-mounted`, `sys-mounted`), a plain directory in its place: the
/// run fails (125) once the child has entered the root, before the
/// command, naming the path that is not the container's kernel
/// filesystem. Protected below its handle or not, a /proc without a
/// procfs and the procfs at another path is no container to run.
#[test]
fn a_kernel_filesystem_moved_aside_before_the_root_is_entered_fails_the_run() {
    let Some(ns) =
        HostNs::new("a_kernel_filesystem_moved_aside_before_the_root_is_entered_fails_the_run")
    else {
        return;
    };
    for (point, dir, kind) in [
        ("proc-mounted", "proc", "proc"),
        ("sys-mounted", "sys", "sysfs"),
    ] {
        let rootfs = rootfs_with_mount_points(&format!("{dir}-aside"));
        let out = command_held_at(&ns, point, &rootfs, &["echo", "ran"], || {
            move_aside_for_decoy(&rootfs.dir.join(dir), &[])
        });
        let expected = format!(
            "/{dir} is the {kind} mounted for the container: it is not (moved aside by another writer of the root?)"
        );
        assert_eq!(out.status.code(), Some(125), "{point}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&expected),
            "{point}: {}",
            stderr(&out)
        );
        assert_eq!(common::stdout(&out), "", "{point}");
    }
}

/// A tmpfs mounted in a `HostNs`'s own mount namespace (the supervisor's,
/// which never sees what the test process mounts after it was made),
/// unmounted there on drop, panic or not.
struct HostMount<'a> {
    ns: &'a HostNs,
    dir: PathBuf,
}

impl<'a> HostMount<'a> {
    /// A tmpfs on `dir` in `ns`, with a copy of `contents` in it.
    fn tmpfs_with_copy_of(ns: &'a HostNs, dir: PathBuf, contents: &Path) -> HostMount<'a> {
        let mount = HostMount { ns, dir };
        mount.ns.ok(&format!(
            "mount -t tmpfs tmpfs '{dir}' && cp -a '{contents}/.' '{dir}/'",
            dir = mount.dir.display(),
            contents = contents.display()
        ));
        mount
    }
}

impl Drop for HostMount<'_> {
    fn drop(&mut self) {
        let _ = self.ns.sh(&format!("umount -l '{}'", self.dir.display()));
    }
}

/// The rootfs swapped for a link to a mount of the host's once the child
/// has bound it onto itself (held at `root-bound`): the container's root
/// is still that bind, entered through its handle, never where the link
/// leads. The host's mount (in the supervisor's own mount namespace) is a
/// whole root of its own, marked `host-mount`: a pivot_root by path would
/// run the container there.
#[test]
fn a_rootfs_swapped_for_a_link_to_a_host_mount_once_bound_is_still_the_containers_root() {
    let Some(ns) = HostNs::new(
        "a_rootfs_swapped_for_a_link_to_a_host_mount_once_bound_is_still_the_containers_root",
    ) else {
        return;
    };
    let rootfs = rootfs_with_mount_points("root-race");
    let host = HostMount::tmpfs_with_copy_of(&ns, scratch("root-race-host"), &rootfs.dir);
    ns.ok(&format!("touch '{}/host-mount'", host.dir.display()));
    let script = "if test -e /host-mount; then echo 'the host mount'
        elif test -e /bin/busybox; then echo 'its own root'; fi";
    let out = sh_held_at(&ns, "root-bound", &rootfs, script, || {
        swap_for_link(&rootfs.dir, &host.dir)
    });
    let host_dir = host.dir.clone();
    drop(host);
    let _ = std::fs::remove_dir_all(&host_dir);
    let _ = std::fs::remove_dir_all(rootfs.dir.with_extension("old"));
    assert_eq!(out, "its own root\n");
}

/// The release binary next to the debug one the tests run, when it is no
/// older than the debug one. scripts/test builds it and says so
/// (SUPERVISOR_RELEASE_BUILT): there, missing or stale is a failure;
/// elsewhere (a targeted `cargo test`, even under CI=true) a loud skip.
fn release_binary() -> Option<PathBuf> {
    let debug = Path::new(common::SUPERVISOR);
    let release = debug.parent()?.parent()?.join("release/supervisor");
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let fresh = matches!((modified(&release), modified(debug)), (Some(r), Some(d)) if r >= d);
    if fresh {
        return Some(release);
    }
    let why = format!(
        "{} is missing or older than the debug build: scripts/test builds it",
        release.display()
    );
    if std::env::var_os("SUPERVISOR_RELEASE_BUILT").is_some_and(|v| !v.is_empty()) {
        panic!("{why}");
    }
    eprintln!("\n!!! SKIPPED the release build's test: {why} !!!\n");
    None
}

/// The release profile links differently (fat LTO, one codegen unit): a
/// `libc::statx` call of ours became a weak reference there, left at
/// address 0 by the static link, and every `run --rootfs` of the release
/// build died of SIGSEGV after pivot_root while the debug build, which the
/// other tests run, was fine. So the binary users install runs one
/// container through the whole path: its own root, its network, its exit.
#[test]
fn the_release_build_runs_a_container_in_its_own_root_filesystem() {
    let Some(ns) = HostNs::new("the_release_build_runs_a_container_in_its_own_root_filesystem")
    else {
        return;
    };
    let Some(release) = release_binary() else {
        return;
    };
    let rootfs = Rootfs::new("release");
    let out = ns
        .command(release.to_str().unwrap())
        .env("SUPERVISOR_LOOPBACK6_CGROUP", "none")
        .args(["run", "-p", "8080:8000", "--rootfs", rootfs.path(), "--"])
        .args([
            "sh",
            "-c",
            "cat /etc/hostname >/dev/null && ip -4 addr show eth0 | grep -q inet && exit 7",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
}

#[test]
fn on_a_terminal_the_command_finds_its_terminal_at_dev_console_with_or_without_a_rootfs() {
    let Some(ns) = HostNs::new("on_a_terminal_the_command_finds_its_terminal_at_dev_console")
    else {
        return;
    };
    let rootfs = Rootfs::new("console");
    // stdin, stdout and stderr on the terminal: `tty` names it by stdin,
    // and each is opened through /dev/console, the same terminal.
    let script = "tty; for fd in 0 1 2; do readlink /proc/self/fd/$fd; done; \
                  test /dev/console -ef /proc/self/fd/0 && echo same; echo x > /dev/console";
    for options in [vec![], vec!["--rootfs", rootfs.path()]] {
        let mut cmd = ns.supervisor();
        cmd.args(["run", "--network", "none"])
            .args(&options)
            .args(["--", "sh", "-c", script]);
        let mut term = common::terminal::Terminal::start(cmd);
        let seen = term.output_at_the_end().replace('\r', "");
        assert_eq!(
            term.child.wait().expect("the supervisor's status").code(),
            Some(0),
            "{options:?}: {seen}"
        );
        assert_eq!(
            seen, "/dev/console\n/dev/console\n/dev/console\n/dev/console\nsame\nx\n",
            "{options:?}"
        );
    }
}

#[test]
fn a_pty_master_on_stdin_is_input_like_any_other_and_is_not_bound_as_the_console() {
    use std::io::Write;
    let Some(ns) = HostNs::new("a_pty_master_on_stdin_is_input_like_any_other") else {
        return;
    };
    // A program driving us through a pty's master side, the slave being
    // its session's terminal (so the terminal's foreground group is ours):
    // binding the master's /dev/ptmx as the console would give the command
    // a new, unconnected terminal, and the run failed.
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = std::os::fd::AsRawFd::as_raw_fd(&pty.slave);
    let mut cmd = ns.supervisor();
    cmd.args(["run", "--network", "none", "--", "sh", "-c"])
        .arg("tty; read x; echo got $x")
        .stdin(pty.master.try_clone().expect("dup the master"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    common::terminal::in_a_session_on(&mut cmd, slave);
    let mut child = cmd.spawn().expect("spawn the supervisor");
    let mut typed = std::fs::File::from(pty.slave);
    typed.write_all(b"abc\n").expect("type on the slave");
    let status = common::eventually("the supervisor's exit", Duration::from_secs(30), || {
        child.try_wait().expect("try_wait")
    });
    let output = child.wait_with_output().expect("the supervisor's output");
    let (out, err) = (common::stdout(&output), stderr(&output));
    assert_eq!(status.code(), Some(0), "{out}{err}");
    // The slave's output processing turns the typed newline into \r\n.
    assert_eq!(out.replace('\r', ""), "not a tty\ngot abc\n");
}

#[test]
fn a_terminal_replaced_at_its_path_after_the_check_fails_the_run_rather_than_bind_what_is_there() {
    let Some(ns) = HostNs::new("a_terminal_replaced_at_its_path_after_the_check") else {
        return;
    };
    // The supervisor finds its terminal's path before the clone, stops
    // there, and meanwhile another device is bound on that path in its
    // mount namespace (the one the container's is copied from): the child,
    // cloning the path, would bind that device on /dev/console.
    let mut cmd = ns.supervisor();
    cmd.env("SUPERVISOR_TEST_PAUSE_AT", "registered")
        .args(["run", "--network", "none", "--", "sh", "-c"])
        .arg("stat -c 'console %t:%T' /dev/console");
    let mut term = common::terminal::Terminal::start(cmd);
    let sup = term.child.id();
    common::eventually("the supervisor stopping", Duration::from_secs(10), || {
        (common::process_state(sup) == Some('T')).then_some(())
    });
    let tty = std::fs::read_link(format!("/proc/{sup}/fd/0")).expect("its terminal");
    ns.ok(&format!("mount --bind /dev/null {}", tty.display()));
    // SAFETY: kill on our own child's pid, not yet reaped.
    unsafe { libc::kill(sup as i32, libc::SIGCONT) };
    let seen = term.output_at_the_end().replace('\r', "");
    let status = term.child.wait().expect("the supervisor's status");
    assert!(!seen.contains("console 1:3"), "/dev/null bound: {seen}");
    assert_eq!(status.code(), Some(125), "{seen}");
    assert!(seen.contains("no longer the terminal on stdin"), "{seen}");
}
