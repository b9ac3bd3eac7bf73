//! Login rate limits, each a GCRA limiter allowing a burst that refills evenly over a minute:
//!
//! - per client address: every attempt;
//! - per (user name, client address): every attempt, so five bad tries from one address lock
//!   that address out of that account, not the real user at another address;
//! - per user name, failures from every address: past this budget the account backs off
//!   ([`Limited::Backoff`]) for the addresses that failed, while an address that has not failed
//!   for it may still try (and a correct password from it is granted).
//!
//! Memory stays bounded:
//! idle keys are dropped every [`SWEEP_EVERY`] attempts, IPv6 clients are keyed by their /64
//! (one host usually owns a whole /64), and past [`MAX_KEYS`] keys new names and addresses are
//! refused until old ones age out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::users::MAX_USER_NAME;

/// Attempts between two sweeps of idle keys.
pub(crate) const SWEEP_EVERY: u64 = 1024;

/// Most keys one limiter tracks.
pub(crate) const MAX_KEYS: usize = 100_000;

/// Which limit an attempt hit, and how long until the next attempt is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    /// Too many attempts for this user name from this client.
    User(Duration),
    /// Too many failures for this user name from every address, and this client failed too.
    Backoff(Duration),
    /// Too many attempts from this client.
    Client(Duration),
    /// The limiter tracks too many keys (an attack from many addresses or names).
    Saturated,
}

impl Limited {
    /// The limit's name, as metrics label it: `client`, `user_client`, `user_backoff`,
    /// `saturated`.
    pub fn label(self) -> &'static str {
        match self {
            Limited::User(_) => "user_client",
            Limited::Backoff(_) => "user_backoff",
            Limited::Client(_) => "client",
            Limited::Saturated => "saturated",
        }
    }

    /// Seconds to send in `Retry-After` (at least 1).
    pub(crate) fn retry_after_secs(self) -> u64 {
        match self {
            Limited::User(d) | Limited::Backoff(d) | Limited::Client(d) => {
                d.as_secs() + u64::from(d.subsec_nanos() > 0)
            }
            Limited::Saturated => 60,
        }
        .max(1)
    }
}

/// Most addresses remembered as failing for one user name.
const MAX_FAILED_FROM: usize = 256;

/// One user name's recent failures.
#[derive(Debug)]
struct Failures {
    /// Backing off until then (for the addresses in `failed_from`).
    until: Option<Instant>,
    /// Addresses (client keys) that failed for this name.
    failed_from: Vec<IpAddr>,
    last: Instant,
}

/// The login limiters.
pub(crate) struct LoginLimits {
    users: DefaultKeyedRateLimiter<(String, IpAddr)>,
    clients: DefaultKeyedRateLimiter<IpAddr>,
    failures: DefaultKeyedRateLimiter<String>,
    failed: Mutex<HashMap<String, Failures>>,
    attempts: AtomicU64,
}

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
}

/// The key of a client: its IPv4 address (also when mapped into IPv6), or its IPv6 /64.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// The key of a user name: names longer than any stored one share one key per prefix.
fn user_key(name: &str) -> String {
    let mut end = name.len().min(MAX_USER_NAME + 1);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

impl LoginLimits {
    pub(crate) fn new(
        user_per_minute: u32,
        client_per_minute: u32,
        user_failures_per_minute: u32,
    ) -> Self {
        Self {
            users: RateLimiter::keyed(quota(user_per_minute)),
            clients: RateLimiter::keyed(quota(client_per_minute)),
            failures: RateLimiter::keyed(quota(user_failures_per_minute)),
            failed: Mutex::new(HashMap::new()),
            attempts: AtomicU64::new(0),
        }
    }

    /// Counts one attempt from `ip`.
    pub(crate) fn check_client(&self, ip: IpAddr) -> Result<(), Limited> {
        self.sweep();
        let key = client_key(ip);
        if self.clients.len() >= MAX_KEYS {
            self.clients.retain_recent();
            if self.clients.len() >= MAX_KEYS {
                return Err(Limited::Saturated);
            }
        }
        self.clients
            .check_key(&key)
            .map_err(|n| Limited::Client(n.wait_time_from(self.clients.clock().now())))
    }

    /// Counts one attempt for user `name` from `ip` (whether or not the name exists, so a
    /// refusal does not tell which names exist), and refuses it when the name backs off and
    /// `ip` failed for it. Without an address, every attempt shares one.
    pub(crate) fn check_user(&self, name: &str, ip: Option<IpAddr>) -> Result<(), Limited> {
        let user = user_key(name);
        let client = ip.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), client_key);
        if self.users.len() >= MAX_KEYS {
            self.users.retain_recent();
            if self.users.len() >= MAX_KEYS {
                return Err(Limited::Saturated);
            }
        }
        let key = (user, client);
        self.users
            .check_key(&key)
            .map_err(|n| Limited::User(n.wait_time_from(self.users.clock().now())))?;
        let now = Instant::now();
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = failed.get(&key.0)
            && let Some(until) = f.until.filter(|&until| until > now)
            && (ip.is_none() || f.failed_from.contains(&client))
        {
            return Err(Limited::Backoff(until - now));
        }
        Ok(())
    }

    /// Records a failed login for `name` from `ip`: the address now counts as failing for the
    /// name, and past the name's failure budget the name backs off.
    pub(crate) fn failed(&self, name: &str, ip: Option<IpAddr>) {
        let user = user_key(name);
        let client = ip.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), client_key);
        let over = self
            .failures
            .check_key(&user)
            .err()
            .map(|n| n.wait_time_from(self.failures.clock().now()));
        let now = Instant::now();
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if failed.len() >= MAX_KEYS {
            failed.retain(|_, f| now.duration_since(f.last) < Duration::from_secs(60));
            if failed.len() >= MAX_KEYS {
                return;
            }
        }
        let entry = failed.entry(user).or_insert_with(|| Failures {
            until: None,
            failed_from: Vec::new(),
            last: now,
        });
        entry.last = now;
        if !entry.failed_from.contains(&client) && entry.failed_from.len() < MAX_FAILED_FROM {
            entry.failed_from.push(client);
        }
        if let Some(wait) = over {
            // Past the budget: back off for as long as a minute's worth of failures takes to
            // refill, at least the wait for the next one.
            let until = now + wait.max(Duration::from_secs(1));
            entry.until = Some(entry.until.map_or(until, |u| u.max(until)));
        }
    }

    /// Every [`SWEEP_EVERY`] attempts, drops keys whose limiter is back to a full burst.
    fn sweep(&self) {
        let n = self.attempts.fetch_add(1, Ordering::Relaxed) + 1;
        if n % SWEEP_EVERY == 0 {
            self.users.retain_recent();
            self.clients.retain_recent();
            self.failures.retain_recent();
            let now = Instant::now();
            self.failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, f| {
                    f.until.is_some_and(|u| u > now)
                        || now.duration_since(f.last) < Duration::from_secs(60)
                });
        }
    }

    /// Keys tracked (users, clients).
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> (usize, usize) {
        (self.users.len(), self.clients.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_with_a_wait() {
        let l = LoginLimits::new(3, 100, 100);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            l.check_user("alice", Some(ip)).unwrap();
        }
        let Err(Limited::User(wait)) = l.check_user("alice", Some(ip)) else {
            panic!("the fourth attempt must be refused");
        };
        // One attempt refills every 20 s.
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!((1..=20).contains(&Limited::User(wait).retry_after_secs()));
        // Other names are not affected, nor the same name from another address.
        l.check_user("bob", Some(ip)).unwrap();
        l.check_user("alice", Some("10.0.0.2".parse().unwrap()))
            .unwrap();
    }

    #[test]
    fn past_the_failure_budget_failing_addresses_back_off_and_new_ones_may_try() {
        let l = LoginLimits::new(100, 100, 3);
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let user: IpAddr = "198.51.100.9".parse().unwrap();
        for _ in 0..4 {
            l.check_user("alice", Some(attacker)).unwrap();
            l.failed("alice", Some(attacker));
        }
        assert!(matches!(
            l.check_user("alice", Some(attacker)),
            Err(Limited::Backoff(_))
        ));
        // A second attacking address fails once and is then held back too.
        l.check_user("alice", Some(other)).unwrap();
        l.failed("alice", Some(other));
        assert!(matches!(
            l.check_user("alice", Some(other)),
            Err(Limited::Backoff(_))
        ));
        // The real user's address has not failed: it may try its password.
        l.check_user("alice", Some(user)).unwrap();
        // Other names are not backing off.
        l.check_user("bob", Some(attacker)).unwrap();
    }

    #[test]
    fn clients_are_counted_separately() {
        let l = LoginLimits::new(100, 2, 100);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        l.check_client(a).unwrap();
        l.check_client(a).unwrap();
        assert!(matches!(l.check_client(a), Err(Limited::Client(_))));
        l.check_client(b).unwrap();
    }

    #[test]
    fn ipv6_hosts_share_their_slash_64() {
        let l = LoginLimits::new(100, 1, 100);
        l.check_client("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(
            l.check_client("2001:db8:1:2:ffff::9".parse().unwrap())
                .is_err()
        );
        l.check_client("2001:db8:1:3::1".parse().unwrap()).unwrap();
        assert_eq!(
            client_key("::ffff:10.1.2.3".parse().unwrap()),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn long_names_share_a_key() {
        let l = LoginLimits::new(1, 100, 100);
        let long = "a".repeat(200);
        l.check_user(&long, None).unwrap();
        assert!(l.check_user(&format!("{long}b"), None).is_err());
        assert_eq!(user_key(&"é".repeat(100)).len(), 64);
        assert_eq!(l.tracked().0, 1);
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        assert_eq!(
            Limited::User(Duration::from_millis(10)).retry_after_secs(),
            1
        );
        assert_eq!(
            Limited::Client(Duration::from_millis(2500)).retry_after_secs(),
            3
        );
        assert_eq!(Limited::Saturated.retry_after_secs(), 60);
    }
}
