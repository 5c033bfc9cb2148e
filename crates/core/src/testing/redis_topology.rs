//! Production shapes of Redis for tier tests, from Debian's packages: a primary with a replica
//! watched by a sentinel (`redis-sentinel`), and a three-master Redis Cluster (`redis-server
//! --cluster-enabled yes`, joined by `redis-cli --cluster create`). Stopped on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::{free_port, require, temp_dir, wait_for_port, RedisServer};

/// A primary, its replica, and one sentinel (quorum 1) watching them as `service`.
pub struct SentinelSetup {
    pub primary: RedisServer,
    pub replica: RedisServer,
    pub sentinel_port: u16,
    pub service: &'static str,
    sentinel: Child,
    dir: std::path::PathBuf,
}

impl SentinelSetup {
    pub async fn start() -> SentinelSetup {
        require("redis-sentinel");
        let primary = RedisServer::start(None);
        let port = primary.port.to_string();
        let replica = RedisServer::start_with(None, &["--replicaof", "127.0.0.1", &port]);
        let sentinel_port = free_port();
        let dir = temp_dir(&format!("sentinel-{sentinel_port}"));
        let config = dir.join("sentinel.conf");
        let service = "weather";
        std::fs::write(
            &config,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {service} 127.0.0.1 {port} 1\n\
                 sentinel down-after-milliseconds {service} 1000\nsentinel failover-timeout {service} 5000\n",
                dir.display()
            ),
        )
        .unwrap();
        let sentinel = Command::new("redis-sentinel").arg(&config).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("redis-sentinel starts");
        wait_for_port(sentinel_port);
        let setup = SentinelSetup { primary, replica, sentinel_port, service, sentinel, dir };
        // Failover needs the sentinel to know the replica, and the replica to be in sync.
        setup.until(|replicas: Vec<Vec<String>>| replicas.iter().any(|r| r.windows(2).any(|w| w[0] == "flags" && w[1] == "slave"))).await;
        setup
    }

    pub fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}/{}", self.sentinel_port, self.service)
    }

    /// Waits (10 s at most) until the sentinel's view of the replicas satisfies `ready`.
    async fn until(&self, ready: impl Fn(Vec<Vec<String>>) -> bool) {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.sentinel_port)).unwrap();
        let mut sentinel = client.get_multiplexed_async_connection().await.unwrap();
        let started = Instant::now();
        loop {
            let replicas: Vec<Vec<String>> =
                redis::cmd("SENTINEL").arg("REPLICAS").arg(self.service).query_async(&mut sentinel).await.unwrap_or_default();
            if ready(replicas) {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "the sentinel never saw the replica");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SentinelSetup {
    fn drop(&mut self) {
        let _ = self.sentinel.kill();
        let _ = self.sentinel.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three masters, no replicas, every slot assigned.
pub struct Cluster {
    pub nodes: Vec<RedisServer>,
}

impl Cluster {
    pub async fn start() -> Cluster {
        require("redis-cli");
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(
                    None,
                    &["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"],
                )
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let status = create.arg("--cluster-yes").stdout(Stdio::null()).stderr(Stdio::null()).status().expect("redis-cli runs");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = Cluster { nodes };
        for node in &cluster.nodes {
            let mut admin = node.admin().await;
            let started = Instant::now();
            loop {
                let info: String = redis::cmd("CLUSTER").arg("INFO").query_async(&mut admin).await.unwrap();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(20), "the cluster never became ok");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        cluster
    }

    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes.iter().take(2).map(|n| format!("127.0.0.1:{}", n.port)).collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// Each master's key count.
    pub async fn key_counts(&self) -> Vec<u64> {
        let mut counts = Vec::new();
        for node in &self.nodes {
            counts.push(redis::cmd("DBSIZE").query_async(&mut node.admin().await).await.unwrap());
        }
        counts
    }

    /// Moves every slot of node `from` to node `to`, keys included (`redis-cli --cluster
    /// reshard`): a topology change under a running client.
    pub async fn move_all_slots(&self, from: usize, to: usize) {
        let id = |i: usize| {
            let output = Command::new("redis-cli").args(["-p", &self.nodes[i].port.to_string(), "CLUSTER", "MYID"]).output().unwrap();
            String::from_utf8(output.stdout).unwrap().trim().to_owned()
        };
        let status = Command::new("redis-cli")
            .args(["--cluster", "reshard", &format!("127.0.0.1:{}", self.nodes[from].port)])
            .args(["--cluster-from", &id(from), "--cluster-to", &id(to), "--cluster-slots", "16384", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(status.success(), "redis-cli --cluster reshard failed");
    }
}
