fn main() {
    redis_tools();
}

/// The shared tier's tests run real Redis servers (Debian's `redis-server`, `redis-sentinel`,
/// `redis-cli`). `cargo test` can only report a test as skipped if it is `#[ignore]`d when it is
/// compiled, so this is where a missing binary is noticed: the tests that need it are compiled
/// as ignored (`cargo test` lists them as `ignored`, with the reason), never as a silent pass.
/// Under `CI` nothing is ignored: there a missing binary fails the test that needs it.
fn redis_tools() {
    println!("cargo:rerun-if-env-changed=CI");
    println!("cargo:rerun-if-env-changed=PATH");
    for (tool, cfg) in [
        ("redis-server", "redis_server_missing"),
        ("redis-sentinel", "redis_sentinel_missing"),
        ("redis-cli", "redis_cli_missing"),
    ] {
        println!("cargo:rustc-check-cfg=cfg({cfg})");
        match find(tool) {
            // Rebuilt if the binary changes (or goes away).
            Some(path) => println!("cargo:rerun-if-changed={}", path.display()),
            None => {
                // A path that does not exist makes cargo run this script again on every build,
                // so that installing the tool is noticed without a `cargo clean`.
                println!("cargo:rerun-if-changed=.{tool}-is-not-installed");
                if std::env::var_os("CI").is_none() {
                    println!("cargo:rustc-cfg={cfg}");
                    println!("cargo:warning={tool} is not installed: the tests that need it are compiled as ignored (apt-get install redis-server redis-sentinel redis-tools)");
                }
            }
        }
    }
}

fn find(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(tool)).find(|candidate| candidate.is_file())
}
