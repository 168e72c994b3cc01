//! Per-vault request throttling (off by default): at most `limit` requests per 10-second window per
//! vault, as Key Vault's service limits are stated. Refused requests do not count.

use std::collections::HashMap;
use std::sync::Mutex;

/// Length of a window in seconds.
pub const WINDOW_SECS: i64 = 10;

/// Fixed-window counters keyed by vault.
#[derive(Debug)]
pub struct Throttle {
    limit: u32,
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl Throttle {
    /// A throttle admitting `limit` requests per window per vault.
    pub fn new(limit: u32) -> Self {
        Throttle { limit, windows: Mutex::new(HashMap::new()) }
    }

    /// Admits a request for `vault` at `now`, or says how many seconds to wait.
    pub fn admit(&self, vault: &str, now: i64) -> Result<(), u64> {
        let start = now - now.rem_euclid(WINDOW_SECS);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let entry = windows.entry(vault.to_string()).or_insert((start, 0));
        if entry.0 != start {
            *entry = (start, 0);
        }
        if entry.1 >= self.limit {
            return Err(u64::try_from(start + WINDOW_SECS - now).unwrap_or(1).max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        let t = Throttle::new(2);
        assert!(t.admit("a", 100).is_ok());
        assert!(t.admit("a", 101).is_ok());
        assert_eq!(t.admit("a", 103), Err(7));
        assert!(t.admit("b", 103).is_ok(), "per vault");
        assert!(t.admit("a", 110).is_ok(), "next window");
        assert_eq!(t.admit("a", 119).map_err(|s| s >= 1), Ok(()));
        assert!(t.admit("a", 119).is_err());
    }
}
