//! The token every form of the console carries, so that a POST made by
//! another site in the admin's browser (which cannot read the console's
//! pages) is refused. A token is the time it was made and an HMAC-SHA256
//! of that time under a key made at random when the console starts; it is
//! good for [`LIFETIME`], and no longer once the console restarts.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a page's forms stay good.
const LIFETIME: i64 = 12 * 60 * 60;

pub(super) struct Csrf {
    key: [u8; 32],
}

impl Csrf {
    pub(super) fn new() -> Result<Csrf, getrandom::Error> {
        let mut key = [0; 32];
        getrandom::fill(&mut key)?;
        Ok(Csrf { key })
    }

    /// A token made at `now` (seconds since the Unix epoch).
    pub(super) fn token(&self, now: i64) -> String {
        format!("{now}.{}", hex::encode(self.sign(now)))
    }

    /// Whether `token` was made by this console within its lifetime.
    pub(super) fn holds(&self, token: &str, now: i64) -> bool {
        let Some((made, signature)) = token.split_once('.') else {
            return false;
        };
        let Ok(made) = made.parse::<i64>() else {
            return false;
        };
        if !(now - LIFETIME..=now + 60).contains(&made) {
            return false;
        }
        let Ok(signature) = hex::decode(signature) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(made.to_string().as_bytes());
        mac.verify_slice(&signature).is_ok()
    }

    fn sign(&self, made: i64) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(made.to_string().as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_holds_for_its_lifetime_and_no_longer() {
        let csrf = Csrf::new().unwrap();
        let token = csrf.token(1_000_000);
        assert!(csrf.holds(&token, 1_000_000));
        assert!(csrf.holds(&token, 1_000_000 + LIFETIME));
        assert!(!csrf.holds(&token, 1_000_001 + LIFETIME));
    }

    #[test]
    fn a_token_of_another_console_or_altered_does_not_hold() {
        let (one, other) = (Csrf::new().unwrap(), Csrf::new().unwrap());
        let token = one.token(1_000_000);
        assert!(!other.holds(&token, 1_000_000));
        let later = token.replacen("1000000", "1000001", 1);
        assert!(!one.holds(&later, 1_000_001));
        for forged in ["", "1000000", "1000000.", "x.00", "1000000.zz"] {
            assert!(!one.holds(forged, 1_000_000), "{forged}");
        }
    }
}
