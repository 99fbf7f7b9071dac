//! The program of mini's `hello-world` image: docker's hello-world explains what the
//! Docker daemon did; this one shows, from inside, what the kernel did — every line it
//! prints is read from the kernel's own files, not written in advance.
//! It is compiled on its own (static, no dependencies) by labs/build.rs.

use std::fs;

fn read(p: &str) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

fn link(p: &str) -> String {
    fs::read_link(p).map(|l| l.to_string_lossy().into_owned()).unwrap_or_else(|_| "?".into())
}

fn field(text: &str, key: &str) -> String {
    text.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_string()).unwrap_or_else(|| "?".into())
}

fn main() {
    let status = read("/proc/self/status");
    let root = read("/proc/self/mountinfo").lines().find(|l| l.split(' ').nth(4) == Some("/")).unwrap_or("").to_string();
    let fstype = root.split(" - ").nth(1).and_then(|r| r.split(' ').next()).unwrap_or("?").to_string();
    let cgroup = read("/proc/self/cgroup");
    let hostname = read("/proc/sys/kernel/hostname");
    println!();
    println!("Hello from mini!");
    println!("This message shows that your installation appears to be working correctly.");
    println!();
    println!("To print it, mini asked the Linux kernel for a few things, and this program,");
    println!("looking around from the inside, can see each of them:");
    println!();
    println!(" 1. An image: mini made \"hello-world\" from a program contlab built (no registry),");
    println!("    as a one-layer image in its store, the layer extracted to a directory once.");
    println!(" 2. A root filesystem: an overlay of that layer and a writable one.");
    println!("    My / is an {fstype} mount (/proc/self/mountinfo).");
    println!(" 3. Limits: a control group of my own.");
    // The memory controller's line on cgroup v1, the one line on v2.
    let line = cgroup.lines().find(|l| l.contains(":memory:") || l.starts_with("0::")).unwrap_or("?");
    println!("    /proc/self/cgroup says {line}: \"/\", as my cgroup namespace starts");
    println!("    at my group (the host sees it as .../contlab/mini/<container ID>).");
    println!(" 4. Namespaces: my own view of processes, mounts, hostname, IPC, network.");
    println!("    I am PID {} (/proc/self/status NSpid: {}), my hostname is {},", std::process::id(), field(&status, "NSpid:"), hostname.trim());
    println!("    my PID namespace is {} and my mount namespace {}.", link("/proc/self/ns/pid"), link("/proc/self/ns/mnt"));
    println!(" 5. Less than root: capabilities CapEff {} (docker's default set),", field(&status, "CapEff:"));
    println!("    no_new_privs {}.", field(&status, "NoNewPrivs:"));
    println!(" 6. Then execve(\"/hello\"): this program. Its output went to my monitor,");
    println!("    which wrote it to the container's log and to your terminal.");
    println!();
    println!("To see every request, look at the trace mini printed, or replay it:");
    println!(" $ mini trace --by-primitive $(mini ps -lq)");
    println!();
    println!("To try something more ambitious, you can run a shell in a container:");
    println!(" $ mini run -it alpine sh");
    println!();
    println!("The lab guide (book/) takes you through each step, lab by lab.");
    println!();
}
