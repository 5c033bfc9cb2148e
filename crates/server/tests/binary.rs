//! The `weather-cache-server` binary as a process: what it prints and how it exits before
//! serving. (Serving itself is tested by the npm suite, which runs every serve test against
//! this binary and `npx weather-cache serve` alike; building this test builds the binary it
//! uses, target/debug/weather-cache-server.)

use std::process::Command;

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weather-cache-server"));
    command.args(args).env_remove("OPEN_WEATHER_API_KEY");
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().expect("the binary runs");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

#[test]
fn version_and_help_exit_0() {
    let (code, stdout, _) = run(&["--version"], &[]);
    assert_eq!((code, stdout), (0, format!("weather-cache-server {}\n", env!("CARGO_PKG_VERSION"))));
    let (code, stdout, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("GET /v1/status") && stdout.contains("--redis-key-prefix"));
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    let (code, _, stderr) = run(&["--prot", "80"], &[("OPEN_WEATHER_API_KEY", "k")]);
    assert_eq!(code, 2);
    assert!(stderr.starts_with("weather-cache-server: unknown option: --prot (did you mean --port?)\n"), "{stderr}");
    let (code, _, stderr) = run(&[], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("OPEN_WEATHER_API_KEY") && stderr.contains("--api-key-file"), "{stderr}");
    let (code, _, stderr) = run(&["--redis", "http://x"], &[("OPEN_WEATHER_API_KEY", "k")]);
    assert_eq!(code, 2);
    assert!(stderr.starts_with("weather-cache-server: --redis must be a redis://"), "{stderr}");
}
