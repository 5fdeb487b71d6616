//! docker's protections, tried as an attacker inside the container would:
//! the seccomp profile, read-only and masked kernel interfaces, /sys of the
//! container's own. Each attack is shown to succeed with the protection
//! turned off (`--security-opt seccomp=unconfined`, `systempaths=unconfined`),
//! so a test that passes is not one that cannot fail.

mod common;

use common::container::until_listening;
use common::terminal::TYPE_INTO_THE_TERMINAL;
use common::{HostNs, stderr, stdout};

/// `sh -c SCRIPT` in a container without network, with extra run options.
fn sh(ns: &HostNs, options: &[&str], script: &str) -> String {
    ns.container_sh(options, script)
}

/// Each attack prints "NAME ok" or "NAME refused".
const SYSCALL_ATTACKS: &str = r#"
unshare -U true 2>/dev/null && echo "unshare ok" || echo "unshare refused"
unshare -Urm sh -c 'mount -t tmpfs tmpfs /mnt' 2>/dev/null && echo "mount ok" || echo "mount refused"
perl -e 'exit(syscall(250, 0, -3, 0) < 0 ? 1 : 0)' && echo "keyctl ok" || echo "keyctl refused"
perl -e 'my ($t, $d, $p) = ("user", "sv-test", "x"); exit(syscall(248, $t, $d, $p, 1, -2) < 0 ? 1 : 0)' && echo "add_key ok" || echo "add_key refused"
"#;

const UNCONFINED: &str = "seccomp=unconfined";

#[test]
fn the_default_seccomp_profile_refuses_namespaces_keyrings_and_mounts() {
    let Some(ns) =
        HostNs::new("the_default_seccomp_profile_refuses_namespaces_keyrings_and_mounts")
    else {
        return;
    };
    let confined = sh(&ns, &[], SYSCALL_ATTACKS);
    assert_eq!(
        confined,
        "unshare refused\nmount refused\nkeyctl refused\nadd_key refused\n"
    );
    let unconfined = sh(&ns, &["--security-opt", UNCONFINED], SYSCALL_ATTACKS);
    assert_eq!(unconfined, "unshare ok\nmount ok\nkeyctl ok\nadd_key ok\n");
    // The filter is there, and fails with docker's EPERM.
    let status = sh(
        &ns,
        &[],
        "grep Seccomp: /proc/self/status; unshare -U true 2>&1; true",
    );
    assert!(status.starts_with("Seccomp:\t2\n"), "{status}");
    assert!(status.contains("Operation not permitted"), "{status}");
}

/// Raw syscalls, each printing "NAME ok" or "NAME ERRNO": numbers the
/// profile's dispatch tells apart by range and by argument, on the x32 ABI
/// (the same architecture, numbers with bit 30 set), and past every syscall.
/// clone before unshare: perl, once in a user namespace of its own with no
/// mapping, cannot make another.
const SYSCALL_VERDICTS: &str = r#"perl -e '
use POSIX ();
sub try { my ($name, $nr, @args) = @_; my $r = syscall($nr, @args); print "$name ", ($r < 0 ? $! + 0 : "ok"), "\n"; }
sub clone_try { my $r = syscall(56, 0x10000011, 0, 0, 0, 0); POSIX::_exit(0) if $r == 0; waitpid($r, 0) if $r > 0; print "clone-newuser ", ($r < 0 ? $! + 0 : "ok"), "\n"; }
try("personality-query", 135, 0xffffffff);
try("personality-linux", 135, 0);
try("personality-read-implies-exec", 135, 0x0400000);
clone_try();
try("unshare-newuser", 272, 0x10000000);
try("keyctl-x32", 0x40000000 + 250, 0, -3, 0);
try("getpid-x32", 0x40000000 + 39);
try("past-every-syscall", 1000);
try("negative", -1);
'"#;

#[test]
fn the_default_profile_decides_by_number_argument_and_abi_as_docker_does() {
    let Some(ns) =
        HostNs::new("the_default_profile_decides_by_number_argument_and_abi_as_docker_does")
    else {
        return;
    };
    if !cfg!(target_arch = "x86_64") {
        eprintln!("SKIP: the syscall numbers here are x86_64's");
        return;
    }
    let verdicts = |options: &[&str]| -> Vec<(String, String)> {
        sh(&ns, options, SYSCALL_VERDICTS)
            .lines()
            .map(|l| {
                let (name, verdict) = l.split_once(' ').unwrap();
                (name.to_string(), verdict.to_string())
            })
            .collect()
    };
    let confined = verdicts(&[]);
    let unconfined = verdicts(&["--security-opt", UNCONFINED]);
    let of = |list: &[(String, String)], name: &str| {
        list.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} not in {list:?}"))
    };
    let eperm = libc::EPERM.to_string();
    let enosys = libc::ENOSYS.to_string();
    // Allowed: personality's usual values.
    for name in ["personality-query", "personality-linux"] {
        assert_eq!(of(&confined, name), "ok", "{confined:?}");
    }
    // Refused with docker's EPERM, where without the filter they work
    // (or, x32's keyctl on a kernel without x32, fail otherwise).
    for name in [
        "personality-read-implies-exec",
        "unshare-newuser",
        "clone-newuser",
        "keyctl-x32",
        "past-every-syscall",
        "negative",
    ] {
        assert_eq!(of(&confined, name), eperm, "{name}: {confined:?}");
        assert_ne!(of(&unconfined, name), eperm, "{name}: {unconfined:?}");
    }
    for name in [
        "personality-read-implies-exec",
        "unshare-newuser",
        "clone-newuser",
    ] {
        assert_eq!(of(&unconfined, name), "ok", "{name}: {unconfined:?}");
    }
    for name in ["past-every-syscall", "negative"] {
        assert_eq!(of(&unconfined, name), enosys, "{name}: {unconfined:?}");
    }
    // x32's getpid is the profile's to allow: what the kernel makes of it
    // (its pid, or ENOSYS without x32) is the same with or without it.
    assert_eq!(of(&confined, "getpid-x32"), of(&unconfined, "getpid-x32"));
}

#[test]
fn ordinary_programs_run_under_the_default_profile() {
    let Some(ns) = HostNs::new("ordinary_programs_run_under_the_default_profile") else {
        return;
    };
    // fork/clone (sh, a pipeline), threads and clone3's ENOSYS fallback
    // (perl's fork), files, sockets, init's own fork.
    let script = format!(
        "mkdir /tmp/sv-x$$ && rmdir /tmp/sv-x$$ && echo a | cat \
         && perl -e 'my $p = fork; if ($p == 0) {{ exit 3 }} waitpid($p, 0); print $? >> 8, \"\\n\"' \
         && (nc -l -p 7000 & {}; echo ping | nc -N 127.0.0.1 7000)",
        until_listening(7000)
    );
    assert_eq!(sh(&ns, &[], &script), "a\n3\nping\n");
    assert_eq!(sh(&ns, &["--init"], "echo under init"), "under init\n");
}

#[test]
fn a_custom_seccomp_profile_in_dockers_format_denies_what_it_names() {
    let Some(ns) = HostNs::new("a_custom_seccomp_profile_in_dockers_format_denies_what_it_names")
    else {
        return;
    };
    let dir = ns.ok("mktemp -d /run/sv-profile.XXXXXX").trim().to_string();
    let file = format!("{dir}/no-mkdir.json");
    let profile = r#"{
      "defaultAction": "SCMP_ACT_ALLOW",
      "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
      "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    }"#;
    ns.ok(&format!("cat > {file} <<'EOF'\n{profile}\nEOF"));
    let script = "mkdir /tmp/sv-denied 2>&1; touch /tmp/sv-allowed$$ && rm /tmp/sv-allowed$$ && echo touch ok";
    let out = sh(&ns, &["--security-opt", &format!("seccomp={file}")], script);
    assert!(out.contains("Permission denied"), "{out}");
    assert!(out.ends_with("touch ok\n"), "{out}");
    // Without the profile, mkdir works: the denial is the profile's.
    let out = sh(
        &ns,
        &[],
        "mkdir /tmp/sv-d$$ && rmdir /tmp/sv-d$$ && echo mkdir ok",
    );
    assert_eq!(out, "mkdir ok\n");
}

#[test]
fn a_bad_seccomp_profile_exits_125_naming_the_file_and_the_bad_part() {
    let Some(ns) = HostNs::new("a_bad_seccomp_profile_exits_125_naming_the_file_and_the_bad_part")
    else {
        return;
    };
    let dir = ns.ok("mktemp -d /run/sv-profile.XXXXXX").trim().to_string();
    let cases = [
        (
            r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#,
            "unknown variant `SCMP_ACT_NOTIFY`",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"}"#,
            "unknown field `listenerPath`",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
            "syscalls[0]: argument index 9",
        ),
        ("{", "EOF while parsing"),
    ];
    for (i, (profile, part)) in cases.iter().enumerate() {
        let file = format!("{dir}/bad{i}.json");
        ns.ok(&format!("cat > {file} <<'EOF'\n{profile}\nEOF"));
        let out = ns.run(&[
            "--network",
            "none",
            "--security-opt",
            &format!("seccomp={file}"),
            "true",
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&file) && err.contains(part), "{part}: {err}");
    }
    let out = ns.run(&["--security-opt", "seccomp=/surely/missing.json", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("/surely/missing.json"),
        "{}",
        stderr(&out)
    );
    let out = ns.run(&["--security-opt", "apparmor=x", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("\"apparmor=x\""), "{}", stderr(&out));
}

/// What root in the container can reach of the host's kernel settings.
const KERNEL_ATTACKS: &str = r#"
test -w /proc/sys/kernel/core_pattern && echo "core_pattern writable" || echo "core_pattern read-only"
echo 64 > /proc/sys/net/ipv4/ip_default_ttl 2>/dev/null && echo "sysctl written" || echo "sysctl refused"
test -w /proc/sysrq-trigger && echo "sysrq writable" || echo "sysrq not writable"
echo "keys: $(wc -c < /proc/keys) bytes, timer_list: $(wc -c < /proc/timer_list) bytes"
echo "acpi: $(ls -A /proc/acpi 2>/dev/null | wc -l) entries, firmware: $(ls -A /sys/firmware | wc -l) entries"
test -w /sys/class/net/lo/mtu && echo "sys writable" || echo "sys read-only"
procs=$(ls /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs 2>/dev/null | head -n 1)
test -w "$procs" && echo "cgroup writable" || echo "cgroup read-only"
"#;

#[test]
fn kernel_interfaces_are_read_only_or_masked_inside() {
    let Some(ns) = HostNs::new("kernel_interfaces_are_read_only_or_masked_inside") else {
        return;
    };
    let confined = sh(&ns, &[], KERNEL_ATTACKS);
    let lines: Vec<&str> = confined.lines().collect();
    assert_eq!(lines[0], "core_pattern read-only", "{confined}");
    assert_eq!(lines[1], "sysctl refused", "{confined}");
    assert_eq!(lines[2], "sysrq not writable", "{confined}");
    assert_eq!(lines[3], "keys: 0 bytes, timer_list: 0 bytes", "{confined}");
    assert!(lines[4].ends_with("firmware: 0 entries"), "{confined}");
    assert_eq!(lines[5], "sys read-only", "{confined}");
    assert_eq!(lines[6], "cgroup read-only", "{confined}");
    // /proc/kcore, where this kernel has it, reads nothing.
    let kcore = sh(
        &ns,
        &[],
        "test -e /proc/kcore && wc -c < /proc/kcore || echo 0",
    );
    assert_eq!(kcore.trim(), "0");

    // Turned off, each attack works: the test can fail. (Only the
    // container's own network namespace's sysctl is written; the rest
    // only asks access(2).) --rw-host: the host's /sys is otherwise
    // read-only too, with the rest of its tree.
    let open = sh(
        &ns,
        &["--security-opt", "systempaths=unconfined", "--rw-host"],
        KERNEL_ATTACKS,
    );
    let lines: Vec<&str> = open.lines().collect();
    assert_eq!(lines[0], "core_pattern writable", "{open}");
    assert_eq!(lines[1], "sysctl written", "{open}");
    assert_ne!(lines[3], "keys: 0 bytes, timer_list: 0 bytes", "{open}");
    assert_eq!(lines[5], "sys writable", "{open}");
    assert_eq!(lines[6], "cgroup writable", "{open}");
}

#[test]
fn sys_shows_the_containers_own_interfaces() {
    let Some(ns) = HostNs::new("sys_shows_the_containers_own_interfaces") else {
        return;
    };
    let list = "ls /sys/class/net | tr '\\n' ' '";
    let out = ns.run(&["--", "sh", "-c", list]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "eth0 lo ");
    assert_eq!(sh(&ns, &[], list), "lo ");
    // The host's /sys, as before: the interfaces of whichever namespace
    // mounted it (the machine's) leak in, not the container's.
    let leaked = sh(&ns, &["--security-opt", "systempaths=unconfined"], list);
    assert_ne!(leaked, "lo ");
}

#[test]
fn a_container_on_the_users_terminal_cannot_type_into_it_even_unconfined() {
    let Some(ns) =
        HostNs::new("a_container_on_the_users_terminal_cannot_type_into_it_even_unconfined")
    else {
        return;
    };
    for options in [&[][..], &["--security-opt", UNCONFINED][..]] {
        let mut cmd = ns.supervisor();
        cmd.args(["run", "--network", "none"]).args(options).args([
            "--",
            "sh",
            "-c",
            TYPE_INTO_THE_TERMINAL,
        ]);
        // Run from a shell on a terminal: the container gets that terminal.
        let seen = common::terminal::Terminal::start(cmd).output_at_the_end();
        assert!(seen.contains("typing refused"), "{options:?}: {seen:?}");
    }
}
