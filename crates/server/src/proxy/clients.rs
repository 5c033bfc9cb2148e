//! The clients the proxy knows by token: one (`--token`, named `default`) or a file of them
//! (`--tokens-file`: `name token` a line, `#` comments), re-read by `reload()` (SIGHUP). A
//! reload swaps the whole table at once: a removed token is refused from the next request on,
//! requests already admitted finish.
//!
//! Tokens are looked up by their SHA-256: the lookup's timing depends on digests, which say
//! nothing usable about a token, and the table holds no token at all. A client's name, never
//! its token, is what logs and metrics show. The status page's cookie holds another digest of
//! the token (`cookie_value`): it opens the status routes and nothing else, so a cookie that
//! leaks (cookies are not isolated by port) spends no budget.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use ring::digest::{digest, SHA256};

use weather_cache_core::engine::Counter;

/// A client's counters, shown in `/metrics` under its name.
#[derive(Debug, Default)]
pub struct ClientCounters {
    pub requests: Counter,
    pub limited_rate: Counter,
    pub limited_upstream: Counter,
    pub upstream_calls: Counter,
}

#[derive(Debug)]
pub struct Client {
    pub name: Arc<str>,
    pub counters: Arc<ClientCounters>,
}

type Digest = [u8; 32];

/// One loaded table.
#[derive(Default)]
struct Table {
    by_token: HashMap<Digest, Arc<Client>>,
    by_cookie: HashMap<Digest, Arc<Client>>,
}

/// Where the tokens come from.
#[derive(Clone, Debug)]
pub enum Tokens {
    None,
    Single(String),
    File(PathBuf),
}

/// The label of requests without a name (no tokens configured), and of named clients past
/// `MAX_LABELS`: the label's values stay bounded whatever the files loaded over time.
pub const ANONYMOUS: &str = "-";
pub const OTHER: &str = "(other)";
const MAX_LABELS: usize = 1_000;

pub struct Clients {
    source: Tokens,
    table: RwLock<Arc<Table>>,
    /// Every name ever loaded, so that a reload keeps a client's counters.
    counters: Mutex<Vec<(Arc<str>, Arc<ClientCounters>)>>,
    anonymous: Arc<Client>,
}

impl Clients {
    /// Loads the tokens (reads the file, if any). Errors say which line, never a token.
    pub fn load(source: Tokens) -> Result<Clients, String> {
        let anonymous = Arc::new(Client { name: ANONYMOUS.into(), counters: Arc::default() });
        let clients = Clients { source, table: RwLock::default(), counters: Mutex::default(), anonymous };
        clients.reload()?;
        Ok(clients)
    }

    /// Whether a token is required.
    pub fn required(&self) -> bool {
        !matches!(self.source, Tokens::None)
    }

    /// Re-reads the tokens file and swaps the table; on error the table stays as it was.
    /// Returns how many clients are known.
    pub fn reload(&self) -> Result<usize, String> {
        let entries = match &self.source {
            Tokens::None => Vec::new(),
            Tokens::Single(token) => {
                if token.is_empty() {
                    return Err("the token is empty".to_owned());
                }
                vec![("default".to_owned(), token.clone())]
            }
            Tokens::File(path) => read_file(path)?,
        };
        let mut table = Table::default();
        for (name, token) in &entries {
            let client = Arc::new(Client { name: name.as_str().into(), counters: self.counters_of(name) });
            table.by_token.insert(sha256(token.as_bytes()), client.clone());
            table.by_cookie.insert(sha256(cookie_value(token).as_bytes()), client);
        }
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
        Ok(entries.len())
    }

    fn counters_of(&self, name: &str) -> Arc<ClientCounters> {
        let mut known = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, counters)) = known.iter().find(|(n, _)| &**n == name) {
            return counters.clone();
        }
        if known.len() >= MAX_LABELS {
            let other = known.iter().find(|(n, _)| &**n == OTHER).map(|(_, c)| c.clone());
            return other.unwrap_or_else(|| {
                let counters = Arc::<ClientCounters>::default();
                known.push((OTHER.into(), counters.clone()));
                counters
            });
        }
        let counters = Arc::<ClientCounters>::default();
        known.push((name.into(), counters.clone()));
        counters
    }

    fn table(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The client a bearer token belongs to.
    pub fn by_token(&self, token: &[u8]) -> Option<Arc<Client>> {
        self.table().by_token.get(&sha256(token)).cloned()
    }

    /// The client a status cookie's value belongs to.
    pub fn by_cookie(&self, value: &[u8]) -> Option<Arc<Client>> {
        self.table().by_cookie.get(&sha256(value)).cloned()
    }

    /// Requests without a name (no tokens configured).
    pub fn anonymous(&self) -> &Arc<Client> {
        &self.anonymous
    }

    /// Every label value and its counters, in the order first loaded (the anonymous one first).
    pub fn labelled(&self) -> Vec<(Arc<str>, Arc<ClientCounters>)> {
        let known = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        std::iter::once((self.anonymous.name.clone(), self.anonymous.counters.clone())).chain(known.iter().cloned()).collect()
    }
}

/// The status page's cookie for `token`: a digest that cannot be turned back into the token.
pub fn cookie_value(token: &str) -> String {
    let mut input = b"weather-cache status cookie v1\n".to_vec();
    input.extend_from_slice(token.as_bytes());
    sha256(&input).iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// `name token` a line; blank lines and lines starting with `#` are skipped.
fn read_file(path: &Path) -> Result<Vec<(String, String)>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the tokens file {shown}: {e}"))?;
    parse(&text).map_err(|e| format!("the tokens file {shown}: {e}"))
}

pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut entries: Vec<(String, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, token] = fields[..] else {
            return Err(format!("line {n}: expected \"name token\" ({} fields)", fields.len()));
        };
        if name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b)) {
            return Err(format!("line {n}: a name is 1 to 64 letters, digits, '.', '_', '@' or '-'"));
        }
        if entries.iter().any(|(other, _)| other == name) {
            return Err(format!("line {n}: the name {name} is already used"));
        }
        if entries.iter().any(|(_, other)| other == token) {
            return Err(format!("line {n}: this token is already {}'s", entries.iter().find(|(_, t)| t == token).map_or("", |(n, _)| n)));
        }
        entries.push((name.to_owned(), token.to_owned()));
    }
    if entries.is_empty() {
        return Err("no tokens (every request would be refused)".to_owned());
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_tokens_and_refuses_clearly() {
        let entries = parse("# fleet A\nalpha  t0k-alpha\n\n  beta\tt0k-beta  \n#gamma t0k-gamma\n").unwrap();
        assert_eq!(entries, [("alpha".to_owned(), "t0k-alpha".to_owned()), ("beta".to_owned(), "t0k-beta".to_owned())]);
        let error = |text: &str| parse(text).unwrap_err();
        assert_eq!(error("alpha\n"), "line 1: expected \"name token\" (1 fields)");
        assert_eq!(error("a t1\nb t2 extra\n"), "line 2: expected \"name token\" (3 fields)");
        assert!(error("a/b t1\n").starts_with("line 1: a name is"));
        assert_eq!(error("a t1\na t2\n"), "line 2: the name a is already used");
        assert_eq!(error("a s3cret\nb s3cret\n"), "line 2: this token is already a's");
        assert_eq!(error("# nothing\n\n"), "no tokens (every request would be refused)");
        for text in ["a s3cret\nb s3cret\n", "a/b s3cret\n", "alpha\n"] {
            assert!(!error(text).contains("s3cret"), "no token in errors");
        }
    }

    #[test]
    fn tokens_and_cookies_name_their_client_and_a_reload_swaps_them() {
        let dir = std::env::temp_dir().join(format!("weather-cache-clients-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens");
        std::fs::write(&path, "alpha t0k-a\nbeta t0k-b\n").unwrap();
        let clients = Clients::load(Tokens::File(path.clone())).unwrap();
        assert!(clients.required());
        assert_eq!(&*clients.by_token(b"t0k-a").unwrap().name, "alpha");
        assert!(clients.by_token(b"t0k-").is_none());
        assert!(clients.by_cookie(b"t0k-a").is_none(), "the token is not a cookie");
        let cookie = cookie_value("t0k-b");
        assert!(!cookie.contains("t0k-b"));
        assert_eq!(&*clients.by_cookie(cookie.as_bytes()).unwrap().name, "beta");
        clients.by_token(b"t0k-a").unwrap().counters.requests.inc();

        std::fs::write(&path, "alpha t0k-a2\n").unwrap();
        assert_eq!(clients.reload(), Ok(1));
        assert!(clients.by_token(b"t0k-a").is_none(), "a changed token is refused at once");
        assert!(clients.by_token(b"t0k-b").is_none(), "a removed one too");
        assert_eq!(clients.by_token(b"t0k-a2").unwrap().counters.requests.get(), 1, "a name keeps its counters");

        std::fs::write(&path, "broken\n").unwrap();
        assert!(clients.reload().is_err());
        assert!(clients.by_token(b"t0k-a2").is_some(), "a failed reload keeps the table");
        std::fs::remove_dir_all(&dir).unwrap();

        let single = Clients::load(Tokens::Single("s;cret tok".into())).unwrap();
        assert_eq!(&*single.by_token(b"s;cret tok").unwrap().name, "default");
        assert!(Clients::load(Tokens::Single(String::new())).is_err());
        assert!(!Clients::load(Tokens::None).unwrap().required());
    }
}
