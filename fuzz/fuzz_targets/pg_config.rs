//! The connection-URL and environment parser (`pg::Config`), the way a user
//! or a deployment hands it text: `postgres://user:pw@host:port/db?...`
//! plus `PG*` variables.
//!
//! Input: the URL on the first line; each later line is `NAME=value`, the
//! environment the parser sees (nothing else of the real one leaks in).
//! Beyond "no panic": a parsed config prints (its `Debug` must not panic and
//! must never show the password, which is masked as `***`).
//!
//! Found on the first run: the assertion itself was naive (a password that
//! also appears in the dbname is not a leak); it now compares with the same
//! config printed without its password.
#![no_main]

use connlab::pg::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let url = lines.next().unwrap_or("");
    let env: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once('=')).collect();
    let lookup = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
    if let Ok(config) = Config::from_url_with_env(url, &lookup) {
        let Some(password) = config.password.as_ref().map(|p| p.expose().to_owned()) else {
            return;
        };
        if password.is_empty() {
            return;
        }
        // The same text may sit in another field (a dbname can contain it),
        // so compare with the config printed without its password.
        let shown = format!("{config:?}");
        let without = format!(
            "{:?}",
            Config {
                password: None,
                ..config
            }
        );
        assert_eq!(
            shown.matches(&password).count(),
            without.matches(&password).count(),
            "Debug shows the password"
        );
    }
});
