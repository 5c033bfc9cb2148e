//! The proxy's threads: a multi-thread tokio runtime owned by a thread of its own, so that the
//! proxy outlives its handle (a dropped `Proxy`, a garbage-collected JS object) and runs until
//! `exit`, like a listening `net.Server`.

use std::sync::Arc;
use std::thread;

use tokio::runtime::{Builder, Handle};
use tokio::sync::watch;

pub(super) struct ProxyRuntime {
    handle: Handle,
    /// `true` stops the runtime. Its owner thread holds a clone of the sender, so that dropping
    /// this value is not taken for an exit.
    exit: Arc<watch::Sender<bool>>,
}

impl ProxyRuntime {
    pub fn start(threads: usize) -> std::io::Result<ProxyRuntime> {
        let mut builder = Builder::new_multi_thread();
        builder.worker_threads(threads.max(1)).thread_name("weather-cache-proxy").enable_all();
        let runtime = builder.build()?;
        let handle = runtime.handle().clone();
        let exit = Arc::new(watch::channel(false).0);
        let (owned, mut exited) = (exit.clone(), exit.subscribe());
        thread::Builder::new().name("weather-cache-proxy-owner".into()).spawn(move || {
            runtime.block_on(async move {
                let _ = exited.wait_for(|&exit| exit).await;
            });
            // Here, not on the caller's thread: dropping a runtime waits for its workers.
            drop(runtime);
            drop(owned);
        })?;
        Ok(ProxyRuntime { handle, exit })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Stops the runtime; tasks still there are dropped.
    pub fn exit(&self) {
        self.exit.send_replace(true);
    }
}
