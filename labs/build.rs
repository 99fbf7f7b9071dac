//! Builds the program of mini's offline `hello-world` image (labs/hello/hello.rs): a
//! static executable, so it runs in an image that holds nothing else.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("hello/hello.rs");
    println!("cargo:rerun-if-changed={}", src.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("hello");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let target = std::env::var("TARGET").unwrap();
    let st = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
            "-C",
            "target-feature=+crt-static",
        ])
        .args(["--target", &target, "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run rustc for labs/hello/hello.rs");
    assert!(
        st.success(),
        "building labs/hello/hello.rs (a static executable) failed: a static C library (libc6-dev) is needed"
    );
}
