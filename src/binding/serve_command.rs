//! `npx weather-cache serve`: the npm CLI hands its argv here, to the same parser and server as
//! the `weather-cache-server` binary (weather-cache-server's `cli` and `serve`), so the two
//! cannot drift. JS only relays signals (`shutdown`, `reload`).

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Env;
use napi_derive::napi;

use weather_cache_server::cli::{self, Exit};
use weather_cache_server::serve::Server;

/// A `serve` run: either it ended at once (`exitCode` set: help, version, a usage error), or
/// the server listens (`url`) until `shutdown`.
#[napi]
pub struct ServeCommand {
    server: Option<Arc<Server>>,
    exit: Option<Exit>,
}

#[napi]
impl ServeCommand {
    /// Set when the command ended without serving: 0 for `--help` / `--version`, 2 for a usage
    /// error (`stdout` / `stderr` hold what to print).
    #[napi(getter)]
    pub fn exit_code(&self) -> Option<i32> {
        self.exit.as_ref().map(|e| e.code)
    }

    #[napi(getter)]
    pub fn stdout(&self) -> String {
        self.exit.as_ref().map_or_else(String::new, |e| e.stdout.clone())
    }

    #[napi(getter)]
    pub fn stderr(&self) -> String {
        self.exit.as_ref().map_or_else(String::new, |e| e.stderr.clone())
    }

    /// Where it listens, while serving.
    #[napi(getter)]
    pub fn url(&self) -> Option<String> {
        self.server.as_ref().map(|s| s.url().to_owned())
    }

    /// SIGINT / SIGTERM: drains (`--drain-delay`), lets requests in flight finish (10 s at
    /// most), closes the cache; resolves when done.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn shutdown<'e>(&self, env: &'e Env, signal: String) -> Result<PromiseRaw<'e, ()>> {
        let server = self.server.clone();
        env.spawn_future(async move {
            if let Some(server) = server {
                server.shutdown(&signal).await;
            }
            Ok(())
        })
    }

    /// SIGHUP: rereads the tokens file and the certificate, reopens the access log (says how
    /// it went on stderr).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn reload<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let server = self.server.clone();
        env.spawn_future(async move {
            if let Some(server) = server {
                let _ = tokio::task::spawn_blocking(move || server.reload()).await;
            }
            Ok(())
        })
    }
}

/// Runs `weather-cache serve` with `argv` (what follows `serve`) and the process's environment.
#[napi(catch_unwind)]
pub fn serve_command(env: &Env, argv: Vec<String>) -> Result<ServeCommand> {
    let config = match cli::parse(cli::NPM, &argv, &|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(exit) => return Ok(ServeCommand { server: None, exit: Some(exit) }),
    };
    // A strong threadsafe function: Node stays alive while the server runs.
    let noop = env.create_function_from_closure::<(), (), _>("weatherServeAlive", |_| Ok(()))?;
    let alive: ThreadsafeFunction<(), (), (), Status, false, false> =
        noop.build_threadsafe_function().callee_handled::<false>().weak::<false>().build()?;
    let runtime = napi::bindgen_prelude::within_runtime_if_available(tokio::runtime::Handle::current);
    Ok(match Server::start(config, runtime, Box::new(alive)) {
        Ok(server) => ServeCommand { server: Some(Arc::new(server)), exit: None },
        Err(exit) => ServeCommand { server: None, exit: Some(exit) },
    })
}
