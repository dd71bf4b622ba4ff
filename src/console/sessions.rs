//! Signed-in users of the console (`auth = "users"`): a random session id
//! in an HttpOnly, SameSite=Strict cookie, the session in memory (a restart
//! signs everyone out), good for [`LIFETIME`]. Sign-ins are limited per
//! address, so that a password cannot be guessed at speed.

use super::Viewer;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The cookie that carries the session id.
pub(super) const COOKIE: &str = "journeyd_session";
/// How long a session lasts.
const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Sign-in attempts an address may make per minute.
const ATTEMPTS_PER_MINUTE: u32 = 5;

pub(super) struct Sessions {
    open: Mutex<HashMap<String, (Viewer, Instant)>>,
    attempts: DefaultKeyedRateLimiter<IpAddr>,
}

impl Sessions {
    pub(super) fn new() -> Sessions {
        let per_minute = NonZeroU32::new(ATTEMPTS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Sessions {
            open: Mutex::new(HashMap::new()),
            attempts: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }
    }

    /// Whether `from` may try to sign in now; counts the attempt.
    pub(super) fn may_try(&self, from: IpAddr) -> bool {
        self.attempts.check_key(&from).is_ok()
    }

    /// Opens a session for `viewer`; its id, for the cookie.
    pub(super) fn open(&self, viewer: Viewer) -> Result<String, getrandom::Error> {
        let mut id = [0; 32];
        getrandom::fill(&mut id)?;
        let id = hex::encode(id);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        open.retain(|_, (_, until)| *until > now);
        open.insert(id.clone(), (viewer, now + LIFETIME));
        Ok(id)
    }

    /// Who the session `id` is, while it lasts.
    pub(super) fn get(&self, id: &str) -> Option<Viewer> {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(id)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(viewer, _)| viewer.clone())
    }

    pub(super) fn close(&self, id: &str) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

/// The `Set-Cookie` value that carries session `id` (empty to end it).
pub(super) fn cookie(id: &str) -> String {
    let age = if id.is_empty() { 0 } else { LIFETIME.as_secs() };
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}")
}

/// The session id a request's `Cookie` header carries.
pub(super) fn session_of(cookies: &str) -> Option<&str> {
    cookies
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dana() -> Viewer {
        Viewer {
            name: "dana".into(),
            admin: true,
            signed_in: true,
        }
    }

    #[test]
    fn a_session_opened_is_found_by_its_id_until_it_is_closed() {
        let sessions = Sessions::new();
        let id = sessions.open(dana()).unwrap();
        assert_eq!(sessions.get(&id).map(|v| v.name), Some("dana".into()));
        assert!(sessions.get("another").is_none());
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn an_address_may_try_five_sign_ins_a_minute() {
        let sessions = Sessions::new();
        let from: IpAddr = [127, 0, 0, 1].into();
        let tries: Vec<bool> = (0..7).map(|_| sessions.may_try(from)).collect();
        assert_eq!(tries, [true, true, true, true, true, false, false]);
        assert!(sessions.may_try([127, 0, 0, 2].into()));
    }

    #[test]
    fn the_cookie_is_http_only_and_same_site_strict() {
        let set = cookie("abc");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert_eq!(session_of("a=1; journeyd_session=abc; b=2"), Some("abc"));
        assert_eq!(session_of("a=1"), None);
    }
}
