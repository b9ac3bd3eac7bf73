//! Start-up checks for the server: no non-loopback listener without authentication unless the
//! operator insists, and the banner that says whether authentication is on.

use std::net::IpAddr;

use crate::error::AuthError;

/// Whether `host` (an IP address, optionally in brackets, or a name) only accepts local
/// connections: a loopback address or `localhost`. Other names are not resolved and count as
/// reachable from elsewhere.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let name = bare.strip_suffix('.').unwrap_or(bare);
            name.eq_ignore_ascii_case("localhost")
        }
    }
}

/// Refuses to listen on a non-loopback `host` while authentication is off, unless `insecure`
/// (`--insecure`). Pass an [`IpAddr`] as `&ip.to_string()`.
pub fn check_bind(host: &str, auth_on: bool, insecure: bool) -> Result<(), AuthError> {
    if auth_on || insecure || is_loopback(host) {
        return Ok(());
    }
    Err(AuthError::InsecureBind {
        host: host.to_string(),
    })
}

/// The line the server prints (to its log, at warn level when off) at start.
pub fn startup_banner(auth_on: bool) -> &'static str {
    if auth_on {
        "authentication is ON: POST /token issues bearer tokens (users from `taxon users`); \
         prediction routes need scope `predict`, model reload and alias changes scope `admin`"
    } else {
        "AUTH IS OFF: every client that can reach this server can predict, reload models and \
         move aliases. Set --jwt-secret or TAXON_JWT_SECRET (32 bytes or more) and add users \
         with `taxon users add` to turn it on"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "localhost",
            "LocalHost.",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "0.0.0.0",
            "::",
            "[::]",
            "10.0.0.1",
            "example.com",
            "localhost.evil",
            "",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn bind_rules() {
        check_bind("127.0.0.1", false, false).unwrap();
        check_bind("0.0.0.0", true, false).unwrap();
        check_bind("0.0.0.0", false, true).unwrap();
        let err = check_bind("0.0.0.0", false, false).unwrap_err().to_string();
        for part in [
            "0.0.0.0",
            "--jwt-secret",
            "TAXON_JWT_SECRET",
            "--insecure",
            "taxon users add",
        ] {
            assert!(err.contains(part), "{part} missing from: {err}");
        }
        let ip: IpAddr = "192.168.1.5".parse().unwrap();
        assert!(check_bind(&ip.to_string(), false, false).is_err());
    }

    #[test]
    fn banners() {
        assert!(startup_banner(false).starts_with("AUTH IS OFF"));
        assert!(startup_banner(false).contains("TAXON_JWT_SECRET"));
        assert!(startup_banner(true).contains("ON"));
    }
}
