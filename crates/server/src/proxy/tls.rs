//! TLS for the proxy (`--tls-cert`, `--tls-key`): rustls on ring, as everywhere else here.
//! HTTP/2 and HTTP/1.1 are offered by ALPN. `reload()` (SIGHUP) reads the files again and
//! swaps the configuration: connections made from then on use the new certificate, open ones
//! keep theirs (nothing is dropped); files that do not load leave the old one in place.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// TLS sessions remembered for resumption (a drone that reconnects skips the key exchange).
const SESSION_CACHE: usize = 4_096;

pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    configs: RwLock<Configs>,
}

struct Configs {
    serving: Arc<ServerConfig>,
    /// HTTP/1.1 only, for the raw 503 a refused connection gets.
    refusing: Arc<ServerConfig>,
}

impl Configs {
    fn load(cert: &Path, key: &Path) -> Result<Configs, String> {
        let serving = server_config(cert, key)?;
        let mut refusing = (*serving).clone();
        refusing.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Configs { serving, refusing: Arc::new(refusing) })
    }
}

impl Tls {
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<Tls, String> {
        let configs = RwLock::new(Configs::load(&cert, &key)?);
        Ok(Tls { cert, key, configs })
    }

    /// The configuration new connections get.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.configs.read().unwrap_or_else(PoisonError::into_inner).serving.clone()
    }

    /// The configuration a refused connection gets.
    pub fn refusal(&self) -> Arc<ServerConfig> {
        self.configs.read().unwrap_or_else(PoisonError::into_inner).refusing.clone()
    }

    pub fn reload(&self) -> Result<(), String> {
        let configs = Configs::load(&self.cert, &self.key)?;
        *self.configs.write().unwrap_or_else(PoisonError::into_inner) = configs;
        Ok(())
    }
}

fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    // The message never shows the key's contents, only what went wrong reading it.
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not make a TLS configuration: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
    // Stateless resumption too (TLS 1.3 tickets), with a key rotated by rustls.
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| format!("TLS: {e}"))?;
    Ok(Arc::new(config))
}
