//! Login rate limits: one GCRA limiter keyed by user name, one keyed by client address, each
//! allowing a burst of N attempts that refills evenly over a minute. Memory stays bounded:
//! idle keys are dropped every [`SWEEP_EVERY`] attempts, IPv6 clients are keyed by their /64
//! (one host usually owns a whole /64), and past [`MAX_KEYS`] keys new names and addresses are
//! refused until old ones age out.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::users::MAX_USER_NAME;

/// Attempts between two sweeps of idle keys.
pub(crate) const SWEEP_EVERY: u64 = 1024;

/// Most keys one limiter tracks.
pub(crate) const MAX_KEYS: usize = 100_000;

/// Which limit an attempt hit, and how long until the next attempt is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limited {
    /// Too many attempts for this user name.
    User(Duration),
    /// Too many attempts from this client.
    Client(Duration),
    /// The limiter tracks too many keys (an attack from many addresses or names).
    Saturated,
}

impl Limited {
    /// Seconds to send in `Retry-After` (at least 1).
    pub(crate) fn retry_after_secs(self) -> u64 {
        match self {
            Limited::User(d) | Limited::Client(d) => d.as_secs() + u64::from(d.subsec_nanos() > 0),
            Limited::Saturated => 60,
        }
        .max(1)
    }
}

/// The two login limiters.
pub(crate) struct LoginLimits {
    users: DefaultKeyedRateLimiter<String>,
    clients: DefaultKeyedRateLimiter<IpAddr>,
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
    pub(crate) fn new(user_per_minute: u32, client_per_minute: u32) -> Self {
        Self {
            users: RateLimiter::keyed(quota(user_per_minute)),
            clients: RateLimiter::keyed(quota(client_per_minute)),
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

    /// Counts one attempt for user `name` (whether or not it exists, so a refusal does not
    /// tell which names exist).
    pub(crate) fn check_user(&self, name: &str) -> Result<(), Limited> {
        let key = user_key(name);
        if self.users.len() >= MAX_KEYS {
            self.users.retain_recent();
            if self.users.len() >= MAX_KEYS {
                return Err(Limited::Saturated);
            }
        }
        self.users
            .check_key(&key)
            .map_err(|n| Limited::User(n.wait_time_from(self.users.clock().now())))
    }

    /// Every [`SWEEP_EVERY`] attempts, drops keys whose limiter is back to a full burst.
    fn sweep(&self) {
        let n = self.attempts.fetch_add(1, Ordering::Relaxed) + 1;
        if n % SWEEP_EVERY == 0 {
            self.users.retain_recent();
            self.clients.retain_recent();
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
        let l = LoginLimits::new(3, 100);
        for _ in 0..3 {
            l.check_user("alice").unwrap();
        }
        let Err(Limited::User(wait)) = l.check_user("alice") else {
            panic!("the fourth attempt must be refused");
        };
        // One attempt refills every 20 s.
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!((1..=20).contains(&Limited::User(wait).retry_after_secs()));
        // Other names are not affected.
        l.check_user("bob").unwrap();
    }

    #[test]
    fn clients_are_counted_separately() {
        let l = LoginLimits::new(100, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        l.check_client(a).unwrap();
        l.check_client(a).unwrap();
        assert!(matches!(l.check_client(a), Err(Limited::Client(_))));
        l.check_client(b).unwrap();
    }

    #[test]
    fn ipv6_hosts_share_their_slash_64() {
        let l = LoginLimits::new(100, 1);
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
        let l = LoginLimits::new(1, 100);
        let long = "a".repeat(200);
        l.check_user(&long).unwrap();
        assert!(l.check_user(&format!("{long}b")).is_err());
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
