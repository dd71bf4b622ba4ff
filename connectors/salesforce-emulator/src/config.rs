//! What a Salesforce emulator starts with: the seed and size of its org, its
//! credentials, and the knobs for every behaviour the facts leave open
//! (each (?) fact is a knob here, not a constant).

use chrono::{DateTime, TimeZone, Utc};
use std::time::Duration;

/// A throwaway RSA key pair for JWT bearer tests. It protects nothing: it
/// exists only so tests can sign assertions the emulator accepts.
pub const TEST_JWT_PRIVATE_KEY_PEM: &str = "\
-----BEGIN RSA PRIVATE KEY-----
MIIEogIBAAKCAQEApLbt8d6eBJaT8ozdfFGCV/HLkyhZ60qIu4GJzQ72RPu+QNcZ
tEwqbGKEytsIS7If/+jRqRDreU/dlhaw8oSIWmEeG3DW5F089KIFKeWAZP5zajBz
1YhvZQSOhKdqLTPEMC6GhtkxTgAII2q2x8hrY3AVtRBj9t7j4mxfAvoO7rOw7K2a
EuIKfo8B8MhZkcXS3caUexnl9LkPEAb5G7vRc8jVN0f2ymtLLxvsf5NVxCnT4Dzv
dIRPjGlOJCcogWBIm8bgnaGCgqQW1gNfRIrKjoS3L7xPwGY8iWDpYFwes6EtZytH
/GC8ww0xVV8vUno8wHYIvDZc3dn926iGicIUswIDAQABAoIBACkiT9jjxeWSbx8X
A6bsuhbZWQQGgzIp2mytJGszzdebYL9TmGU40i1gCxaXzYIN2UTw8Q7+HTgd9FHr
l8PwyhZ8A2dJ7jh4emUDYzO7zy0piEwgDoVofZ0mHqtNHcxtDZUUwV7CtbfrdRzX
JQ9OY1chYiJmFfjMX++nLbESHpGIosH3artTkiYaBVttt38QugBJjt2/Ar6d1cwO
hpW4b178Wg5ucGhTEaa+CesX5mfA+0hDmO9mdDcOFcVw1ftrwDEnmPHQe22AZ5g1
3iCI/c5PFf3bKcw0iWdJCXCfKym75qSHCxrunETXaLiLK9d712Vx4a9UE80LHDxy
34JWN0ECgYEA1kXB++oXxYQCZ2P6eClIOWN6FhEBpvRoU0Cgb52jDo8Dz4ApL62R
LugEYxDVRKPJvM9eNmqCDMLAEbDMww+r2lIa9ln+v9+CJpgeFdAmf3z+yyV8BqTZ
hcfWzLn4DVS1c2bxQNRWEFkC+xDw/5uDyCRz5XIh8Gtaj9bkflMikkECgYEAxMqI
qE6XZSqpFIBaLhJTJZqPFAHINyepLFaaNw6SL7rYquspBo8ldPoZuWNTrAoedPmQ
1PGmCxxmqPDqTRoFhgKJTmde0xeye2F7KxZ6I62NBMc/WDw2TrHMC8cklt/Qtxu4
zUpRLuPo0uNyGT4ys5ATw5cSbWJFWQTJmeefAfMCgYA4GQ9Oat1KYuNWOkCrEPPN
wpOGD3HFShu+IB9g2X6FI0A2JTGjP+fQxgHQBeowDEmW2xupV30w5hPvDcCuGP4/
LFvOv4UIqvWiMRU/VL2fhxQWD3xHKQWiFs3Pz6h3pQPUcNEczfqyUPuMy8SsxwRb
c9+75IOqNBEDs5ki0ZUtgQKBgAEUu7tw8xPzMAqUyeoG374NI0wQ1nC3Hw7HSwGS
ausoM5h8wjTvBF2oIgwKp6MCSziJRmplCWx2M3oqGJ9jzTP3P5nWp4axUqGq32pV
LUaU5XlpPsfVTNcR0vUdmu3ZPOREmrdF+TwwtE60QSQyW0TxPaqNYeSH7amXhSP7
SbxRAoGAUoezRH2TzA7PeJgv9rCj0MT8zaZN0iyu8Ya7DC8GB7aR+Xi+1POgOrf+
KL1FzCk/yl9LEgzuqwZrFai3xkEWlKBoYVoELYs+EPceCcJ2hirkVClK9z2NHwjt
VJBsWlxzxJu0FBz5robwo+FRWAO8iI98aH26aXis4GszHtKz0N8=
-----END RSA PRIVATE KEY-----
";

/// The public half of [`TEST_JWT_PRIVATE_KEY_PEM`].
pub const TEST_JWT_PUBLIC_KEY_PEM: &str = "\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApLbt8d6eBJaT8ozdfFGC
V/HLkyhZ60qIu4GJzQ72RPu+QNcZtEwqbGKEytsIS7If/+jRqRDreU/dlhaw8oSI
WmEeG3DW5F089KIFKeWAZP5zajBz1YhvZQSOhKdqLTPEMC6GhtkxTgAII2q2x8hr
Y3AVtRBj9t7j4mxfAvoO7rOw7K2aEuIKfo8B8MhZkcXS3caUexnl9LkPEAb5G7vR
c8jVN0f2ymtLLxvsf5NVxCnT4DzvdIRPjGlOJCcogWBIm8bgnaGCgqQW1gNfRIrK
joS3L7xPwGY8iWDpYFwes6EtZytH/GC8ww0xVV8vUno8wHYIvDZc3dn926iGicIU
swIDAQAB
-----END PUBLIC KEY-----
";

/// Everything [`super::SalesforceEmulator::start`] needs. `Default` gives a
/// small org (40 opportunities) with a Developer Edition's daily limit.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Drives every choice of the seeded data: the same seed, the same org.
    pub seed: u64,
    /// "Now" for the seeded data; the clock runs on from it in real time.
    pub now: DateTime<Utc>,
    pub sizes: SeedSizes,
    pub credentials: Credentials,
    pub knobs: Knobs,
    /// One extra opportunity sits in this custom stage, whose name needs
    /// escaping in SOQL (default `Won't Close \ Parked`); `None` leaves it out.
    pub odd_stage: Option<String>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            now: Utc
                .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
                .single()
                .expect("a valid literal date"),
            sizes: SeedSizes::default(),
            credentials: Credentials::default(),
            knobs: Knobs::default(),
            odd_stage: Some("Won't Close \\ Parked".into()),
        }
    }
}

impl EmulatorConfig {
    /// The default org with `n` opportunities and the other objects in
    /// proportion.
    pub fn with_opportunities(n: usize) -> Self {
        Self {
            sizes: SeedSizes::for_opportunities(n),
            ..Self::default()
        }
    }
}

/// How much seeded data the org holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedSizes {
    pub opportunities: usize,
    pub accounts: usize,
    pub contacts: usize,
    pub leads: usize,
    /// Active users; at least 6 so every team is staffed.
    pub users: usize,
}

impl SeedSizes {
    pub fn for_opportunities(n: usize) -> Self {
        Self {
            opportunities: n,
            accounts: n.div_ceil(2).max(1),
            contacts: n * 2,
            leads: n,
            users: 8,
        }
    }
}

impl Default for SeedSizes {
    fn default() -> Self {
        Self::for_opportunities(40)
    }
}

/// The connected app and the user it acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The connected app's consumer key (`iss` of a JWT assertion).
    pub client_id: String,
    pub client_secret: String,
    /// The first refresh token; later ones replace it when tokens rotate.
    pub refresh_token: String,
    /// The integration user (`sub` of a JWT assertion).
    pub username: String,
    /// The PEM public key JWT assertions must verify against.
    pub jwt_public_key_pem: String,
    /// The 18-character org id, used in the token response's `id` URL.
    pub org_id: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Self {
            client_id: "3MVG9emulated.consumer.key".into(),
            client_secret: "emulated-consumer-secret".into(),
            refresh_token: "5Aep861emulated.refresh.token.0".into(),
            username: "integration@journeyd.example.com".into(),
            jwt_public_key_pem: TEST_JWT_PUBLIC_KEY_PEM.into(),
            org_id: "00D000000000001AAA".into(),
        }
    }
}

/// Behaviour the facts leave open, changeable at runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    /// Metered calls allowed per day; `None` = unlimited. Default 15,000,
    /// a Developer Edition org's allocation (facts 1.5).
    pub daily_limit: Option<u64>,
    /// Largest `Sforce-Query-Options: batchSize` honoured, and the default
    /// page size (facts 1.3: 2,000).
    pub max_batch_size: usize,
    /// Smallest `batchSize` honoured (facts 1.3: 200); smaller asks are
    /// raised to it.
    pub min_batch_size: usize,
    /// Child rows a parent's sub-query result carries before it is cut
    /// with `done: false` and its own `nextRecordsUrl` (facts 1.3 say a
    /// child result may carry one, not where the cut falls (?); default 200).
    pub child_batch_size: usize,
    /// Whether a sub-query that finds no child renders as `null` (what
    /// Salesforce does, general knowledge (?)) rather than as an empty
    /// result `{totalSize: 0, done: true, records: []}`.
    pub empty_subquery_null: bool,
    /// Records per sObject Collections call (facts 1.4: 200).
    pub collections_max: usize,
    /// How long an access token lives; Salesforce's session length is
    /// org-configured (?), default 2 h.
    pub token_ttl: Duration,
    /// Whether a refresh hands back a new refresh token and retires the
    /// old one (?; off by default, as Salesforce keeps refresh tokens).
    pub rotate_refresh_tokens: bool,
    /// API versions served under `/services/data/vXX.X/`.
    pub api_versions: Vec<String>,
    /// The `instance_url` the token response names; `None` = this server.
    /// Lets a test hand out a foreign host.
    pub instance_url: Option<String>,
    /// The `aud` a JWT assertion must carry; `None` = this server's base
    /// URL (`http://127.0.0.1:<port>`) or `https://login.salesforce.com`.
    pub jwt_audience: Option<String>,
    /// How far back getDeleted may start (facts 1.3: 15 days).
    pub deleted_window: Duration,
    /// Whether an upsert that updates answers 200 with a body (newer API
    /// versions) rather than 204 (?); applies to the single-record upsert.
    pub upsert_update_returns_body: bool,
    /// Whether a long text area (`Description`) in a `WHERE` or `ORDER BY`
    /// is refused with 400 `INVALID_FIELD`, as Salesforce does (facts
    /// 6.10); off only to show what a client that relies on it would do.
    pub refuse_long_text_filters: bool,
    /// `Some(delay)`: an sObject Collections write commits its rows one at
    /// a time, `delay` before each, in a task of its own that goes on when
    /// the client disconnects, and answers once every row is done. A
    /// client that gives up (or dies) mid-way leaves the server finishing
    /// the rest, as Salesforce does with a request already running.
    /// `None` (the default): every row at once.
    pub detached_row_delay: Option<Duration>,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            daily_limit: Some(15_000),
            max_batch_size: 2_000,
            min_batch_size: 200,
            child_batch_size: 200,
            empty_subquery_null: true,
            collections_max: 200,
            token_ttl: Duration::from_secs(2 * 3600),
            rotate_refresh_tokens: false,
            api_versions: [
                "v58.0", "v59.0", "v60.0", "v61.0", "v62.0", "v63.0", "v64.0",
            ]
            .map(String::from)
            .to_vec(),
            instance_url: None,
            jwt_audience: None,
            deleted_window: Duration::from_secs(15 * 24 * 3600),
            upsert_update_returns_body: true,
            refuse_long_text_filters: true,
            detached_row_delay: None,
        }
    }
}
