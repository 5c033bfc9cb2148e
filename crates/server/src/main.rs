//! `weather-cache-server`: the drone proxy without Node. The same flags, defaults, messages and
//! exit codes as `npx weather-cache serve` (one parser: `cli`), configured by flags,
//! `WEATHER_CACHE_*` variables and `--config FILE`; SIGINT/SIGTERM drain and exit 0, SIGHUP
//! reloads the tokens file, the certificate and the access log.

use std::process::ExitCode;

use tokio::signal::unix::{signal, SignalKind};
use weather_cache_server::cli::{self, Exit};
use weather_cache_server::serve::{print, Server};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let config = match cli::parse(cli::BINARY, &argv, &|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(exit) => return exited(&exit),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().thread_name("weather-cache").enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return exited(&Exit { code: 1, stdout: String::new(), stderr: format!("weather-cache-server: cannot start: {error}\n") }),
    };
    runtime.block_on(async {
        // Listening for the signals before the port opens: one sent as soon as the server says
        // it listens must drain it, not kill it.
        let (mut terminate, mut interrupt, mut hangup) =
            match (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup())) {
                (Ok(t), Ok(i), Ok(h)) => (t, i, h),
                _ => return exited(&Exit { code: 1, stdout: String::new(), stderr: "weather-cache-server: cannot handle signals\n".into() }),
            };
        let server = match Server::start(config, tokio::runtime::Handle::current(), Box::new(())) {
            Ok(server) => std::sync::Arc::new(server),
            Err(exit) => return exited(&exit),
        };
        loop {
            tokio::select! {
                _ = terminate.recv() => break server.shutdown("SIGTERM").await,
                _ = interrupt.recv() => break server.shutdown("SIGINT").await,
                _ = hangup.recv() => {
                    let server = server.clone();
                    let _ = tokio::task::spawn_blocking(move || server.reload()).await;
                }
            }
        }
        ExitCode::SUCCESS
    })
}

fn exited(exit: &Exit) -> ExitCode {
    print(1, &exit.stdout);
    print(2, &exit.stderr);
    ExitCode::from(u8::try_from(exit.code).unwrap_or(1))
}
