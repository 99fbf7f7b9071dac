//! The vm tier: boot a real kernel (Debian's, under qemu) once, and run every test
//! named `guest::` of this very binary inside it, where device-mapper and pure
//! cgroup v2 exist. See tests/vm/README.md for the runner.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

fn runner() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vm/run")
}

/// `(passed, failed)` from libtest's summary lines.
fn summary(out: &str) -> Option<(u32, u32)> {
    let line = out.lines().rev().find(|l| l.starts_with("test result:"))?;
    let num = |word: &str| -> Option<u32> {
        let i = line.find(word)?;
        line[..i].trim_end().rsplit(' ').next()?.parse().ok()
    };
    Some((num(" passed")?, num(" failed")?))
}

#[test]
fn guest_suite() {
    if std::env::var_os("CONTLAB_IN_VM").is_some() {
        return; // this is the guest itself: the suite is the host's job
    }
    if std::env::var("CONTLAB_OPT_OUT").unwrap_or_default().split(',').any(|o| o == "vm") {
        crate::harness::opted_out(
            "vm",
            "the vm tier boots a kernel under qemu: device-mapper and pure cgroup v2 were not tested",
        );
        return;
    }
    let run = runner();
    assert!(run.exists(), "the vm runner {} is missing", run.display());
    let exe = std::env::current_exe().unwrap();
    // How many guest tests this binary has: the guest must run (and pass) every one.
    let list = Command::new(&exe).args(["--list", "--ignored", "guest::"]).output().unwrap();
    let expected = String::from_utf8_lossy(&list.stdout).lines().filter(|l| l.ends_with(": test")).count() as u32;
    assert!(expected > 0, "this test binary has no guest:: test to run in the VM");
    let o = Command::new(&run)
        .arg("--")
        .arg(&exe)
        .args(["--ignored", "guest::", "--test-threads=1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    if std::env::var_os("CONTLAB_BLESS").is_some() {
        bless_transcripts(&out);
    }
    let counts = summary(&out);
    // Written straight to the process's stderr (not captured by the test harness),
    // so the CI log always shows the vm tier's count.
    let line = match counts {
        Some((p, f)) => format!("vm: {p} passed, {f} failed\n"),
        None => "vm: 0 passed, 1 failed\n".to_string(),
    };
    let _ = std::io::stderr().write_all(line.as_bytes());
    assert!(o.status.success(), "the vm tier failed (status {:?}):\n{out}\n{err}", o.status.code());
    let (passed, failed) = counts.unwrap_or_else(|| panic!("no test summary from the guest:\n{out}\n{err}"));
    assert_eq!(failed, 0, "{out}");
    assert_eq!(passed, expected, "the guest ran {passed} of the {expected} guest tests:\n{out}");
}

/// Write the transcripts a blessing guest sent back (`@@transcript NAME LEN\n...`).
fn bless_transcripts(out: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("book/transcripts");
    let mut rest = out;
    while let Some(i) = rest.find(crate::book::BLESS_MARK) {
        let after = &rest[i + crate::book::BLESS_MARK.len()..];
        let Some((head, body)) = after.split_once('\n') else { break };
        let Some((name, len)) = head.rsplit_once(' ') else { break };
        let Ok(len) = len.parse::<usize>() else { break };
        let Some(text) = body.get(..len) else { break };
        std::fs::write(dir.join(format!("{name}.out")), text).unwrap();
        rest = &body[len..];
    }
}

#[test]
fn summary_parsing() {
    let s = "running 3 tests\ntest result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 40 filtered out";
    assert_eq!(summary(s), Some((3, 0)));
    assert_eq!(summary("garbage"), None);
}
