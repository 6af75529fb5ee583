//! The connection-URL and environment parser (`pg::Config`), the way a user
//! or a deployment hands it text: `postgres://user:pw@host:port/db?...`
//! plus `PG*` variables.
//!
//! Input: the URL on the first line; each later line is `NAME=value`, the
//! environment the parser sees (nothing else of the real one leaks in).
//! Beyond "no panic": a parsed config prints (its `Debug` must not panic and
//! must never show the password, which is masked as `***`).
//!
//! The check is that the printed config does not depend on the password:
//! printed again with another password, it is the same text. (Two simpler
//! checks were wrong, and the fuzzer said so within minutes: "the password
//! is not a substring of the output" fails when the dbname contains the
//! same text, and when the password is `*`, a substring of the mask.)
#![no_main]

use connlab::pg::config::Password;
use connlab::pg::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let url = lines.next().unwrap_or("");
    let env: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once('=')).collect();
    let lookup = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
    if let Ok(config) = Config::from_url_with_env(url, &lookup) {
        if config.password.is_none() {
            return;
        }
        // The printed config must not depend on the password at all: the
        // same config with another password prints the same.
        let shown = format!("{config:?}");
        let other = Config {
            password: Some(Password::new("another secret")),
            ..config
        };
        assert_eq!(shown, format!("{other:?}"), "Debug shows the password");
    }
});
