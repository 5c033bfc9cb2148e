//! What a failed Redis operation means, and how to say it.
//!
//! The cause decides what the tier does: a timeout, a dropped connection or a failover's answer
//! (`READONLY`, `LOADING`, `MASTERDOWN`...) means the connection is no good and is replaced (a
//! silently dead socket is only noticed this way; a demoted primary keeps answering, wrongly);
//! a key of the wrong type is that key's problem, not an outage; everything else opens the
//! circuit and waits. Messages show what Redis said when it is safe to (refused commands, full
//! memory, failovers: texts that name no argument), otherwise only the error's code.

use redis::{ErrorKind, RedisError};

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// No answer within the deadline (a slow, partitioned or black-holed server).
    Timeout,
    /// The connection failed or was refused, or could not be made.
    Connection,
    /// A failover in progress: a demoted primary, a loading replica, no primary.
    Failover,
    /// An ACL or the password refused a command.
    Refused,
    /// Memory full (`OOM` under `noeviction`).
    Full,
    /// One key holds data of another type: that key's miss, not an outage.
    Data,
    /// Anything else (a script error, an unexpected reply).
    Other,
}

/// Causes that open the circuit, in the order metrics list them.
pub const OUTAGES: [Cause; 6] =
    [Cause::Timeout, Cause::Connection, Cause::Failover, Cause::Refused, Cause::Full, Cause::Other];

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Timeout => "timeout",
            Cause::Connection => "connection",
            Cause::Failover => "failover",
            Cause::Refused => "refused",
            Cause::Full => "full",
            Cause::Data => "data",
            Cause::Other => "error",
        }
    }

    /// Whether the connection is to be replaced (made anew, the name resolved again).
    pub fn replaces_connection(self) -> bool {
        matches!(self, Cause::Timeout | Cause::Connection | Cause::Failover)
    }
}

/// Server error codes whose text is safe to show: they quote no argument of the command.
const SAFE_TEXT: [&str; 12] = [
    "NOPERM",
    "NOAUTH",
    "WRONGPASS",
    "WRONGTYPE",
    "OOM",
    "READONLY",
    "LOADING",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "BUSY",
    "NOSCRIPT",
];
/// The longest server text shown.
const MAX_TEXT: usize = 240;

pub fn classify(error: &RedisError) -> Cause {
    if error.is_timeout() {
        return Cause::Timeout;
    }
    if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal() {
        return Cause::Connection;
    }
    match error.kind() {
        ErrorKind::AuthenticationFailed => return Cause::Refused,
        ErrorKind::MasterNameNotFoundBySentinel
        | ErrorKind::NoValidReplicasFoundBySentinel
        | ErrorKind::ClusterConnectionNotFound
        | ErrorKind::EmptySentinelList => return Cause::Connection,
        _ => {}
    }
    match error.code().unwrap_or("") {
        "NOPERM" | "NOAUTH" | "WRONGPASS" => Cause::Refused,
        "READONLY" | "LOADING" | "MASTERDOWN" | "CLUSTERDOWN" | "TRYAGAIN" => Cause::Failover,
        "WRONGTYPE" => Cause::Data,
        "OOM" => Cause::Full,
        // Inside a script Redis 7.0 reports a command an ACL refuses as a plain ERR.
        "ERR" if refused_in_script(error) => Cause::Refused,
        _ => Cause::Other,
    }
}

fn refused_in_script(error: &RedisError) -> bool {
    error.detail().is_some_and(|d| d.contains("can't run this command") || d.contains("no permissions"))
}

/// What went wrong, in words (to be redacted by the caller: a server's text could hold
/// anything the operator configured).
pub fn describe(error: &RedisError) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    match error.code() {
        Some(code) if SAFE_TEXT.contains(&code) || code == "ERR" && refused_in_script(error) => {
            let text = format!("{code} {}", error.detail().unwrap_or("").trim());
            let mut end = text.len().min(MAX_TEXT);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text[..end].to_owned()
        }
        Some(code) => format!("{} ({code})", error.category()),
        None if matches!(error.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType) => {
            error.category().to_owned()
        }
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str, detail: &str) -> RedisError {
        redis::make_extension_error(code.to_owned(), Some(detail.to_owned()))
    }

    #[test]
    fn causes_and_texts() {
        let readonly = server("READONLY", "You can't write against a read only replica. script: 1, on @user_script:9.");
        assert_eq!(classify(&readonly), Cause::Failover);
        assert!(describe(&readonly).starts_with("READONLY You can't write"));
        assert_eq!(
            classify(&server("WRONGTYPE", "Operation against a key holding the wrong kind of value")),
            Cause::Data
        );
        assert_eq!(classify(&server("OOM", "command not allowed when used memory > 'maxmemory'.")), Cause::Full);
        let acl = server("ERR", "The user executing the script can't run this command or subcommand (TIME) script: 1");
        assert_eq!(classify(&acl), Cause::Refused);
        assert!(describe(&acl).contains("(TIME)"), "{}", describe(&acl));
        // Other texts can quote the command's arguments (positions): only the code is shown.
        let other = server("ERR", "unknown command 'X', with args beginning with: '48.85' '2.35'");
        assert_eq!(classify(&other), Cause::Other);
        assert!(!describe(&other).contains("48.85"), "{}", describe(&other));
        assert!(
            Cause::Timeout.replaces_connection()
                && Cause::Failover.replaces_connection()
                && !Cause::Refused.replaces_connection()
        );
    }
}
