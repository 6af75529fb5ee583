//! The layer rule, checked: no import runs up the stack.
//!
//! The rule has one home, the `# Layout` table at the top of `src/lib.rs`:
//! its rows run from the bottom of the stack (`trace`, then `sys`) to the
//! top, and a layer may name only the layers in the rows above its own.
//! This test reads that table from the source (so the table a reader sees
//! *is* the rule), then reads every `.rs` file under `src/<layer>` and
//! `src/<layer>.rs` and collects each `crate::<module>` path it names in
//! code (comments are skipped: a doc link is not a dependency). Any path to
//! a layer at or above the file's own row, other than its own, fails with
//! the file, line and the offending path.
//!
//! Layers in the table that do not exist yet are skipped, so the table can
//! name the stack that is being built. A top-level module that is *not* in
//! the table fails too, unless it is listed in [`NOT_LAYERS`] with a reason.
//!
//! It is a grep, not a compiler pass: a `use super::super::x` climbing out
//! of a layer would escape it. None does today; `crate::` is the house style.

use std::fs;
use std::path::{Path, PathBuf};

/// Top-level modules that are not layers, and why.
const NOT_LAYERS: &[(&str, &str)] = &[(
    "guide",
    "doc-tests only; it walks every layer through the public `connlab::` API",
)];

/// Paths `pg::protocol` must never name: it is sans-IO, bytes in and messages out.
const SANS_IO: (&str, &[&str]) = ("pg/protocol", &["reactor", "net"]);

/// Macros exported at the crate root, and the layer they belong to.
const ROOT_MACROS: &[(&str, &str)] = &[("narrate", "trace")];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The module names in the first column of the `# Layout` table, bottom first.
fn layer_table(lib_rs: &str) -> Vec<String> {
    let mut in_layout = false;
    let mut layers = Vec::new();
    for line in lib_rs.lines() {
        let Some(doc) = line.strip_prefix("//!") else { continue };
        let doc = doc.trim();
        if doc.starts_with('#') {
            in_layout = doc == "# Layout";
            continue;
        }
        if !in_layout || !doc.starts_with('|') {
            continue;
        }
        let first_cell = doc.trim_matches('|').split('|').next().unwrap_or("").trim();
        // `[`sys`]` (an intra-doc link) or `` `http` `` (a layer still being written).
        let name = first_cell
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_matches('`');
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_') && name != "module" {
            layers.push(name.to_owned());
        }
    }
    layers
}

/// Every `.rs` file of one top-level module: `src/NAME.rs` and `src/NAME/**.rs`.
fn module_files(name: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let single = src().join(format!("{name}.rs"));
    if single.is_file() {
        files.push(single);
    }
    let mut dirs = vec![src().join(name)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The top-level module each `crate::` path on a line of code names:
/// `crate::sys::fd`, `crate::{poller, sys::cvt}`, `$crate::trace::emit`,
/// `crate::narrate!` (mapped to its layer by [`ROOT_MACROS`]).
fn crate_paths(line: &str) -> Vec<String> {
    let code = line.trim_start();
    if code.starts_with("//") {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        // `crate::` inside a longer identifier (`mycrate::`) is not a path.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            found.extend(group_heads(group));
        } else {
            found.push(ident(rest).to_owned());
        }
    }
    found
        .into_iter()
        .filter(|m| !m.is_empty())
        .map(|m| match ROOT_MACROS.iter().find(|(mac, _)| *mac == m) {
            Some((_, layer)) => (*layer).to_owned(),
            None => m,
        })
        .collect()
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The first segment of each item of a `{a, b::c, d::{e, f}}` group (up to
/// its closing brace on this line).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expecting = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => expecting = true,
            c if expecting && (c.is_alphanumeric() || c == '_') => {
                heads.push(ident(&group[i..]).to_owned());
                expecting = false;
            }
            _ => {}
        }
    }
    heads
}

struct Violation(String);

/// Every path in `name`'s files that names a layer it may not.
fn violations(name: &str, allowed: impl Fn(&str) -> bool, why: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    for file in module_files(name) {
        let text = fs::read_to_string(&file).expect("a readable source file");
        for (n, line) in text.lines().enumerate() {
            for target in crate_paths(line) {
                if !allowed(&target) {
                    let shown = file.strip_prefix(src().parent().unwrap()).unwrap_or(&file).display();
                    out.push(Violation(format!(
                        "{shown}:{}: `{name}` names `crate::{target}` ({why})\n    {}",
                        n + 1,
                        line.trim()
                    )));
                }
            }
        }
    }
    out
}

fn top_level_modules() -> Vec<String> {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("pub mod ")
                .or_else(|| l.trim().strip_prefix("mod "))
        })
        .map(|l| l.trim_end_matches(';').to_owned())
        .collect()
}

#[test]
fn no_layer_imports_a_layer_above_it() {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    let table = layer_table(&lib);
    assert!(
        table.len() >= 5 && table[0] == "trace" && table[1] == "sys",
        "could not read the # Layout table of src/lib.rs (got {table:?})"
    );
    let existing = top_level_modules();
    let mut failures = Vec::new();
    for (row, name) in table.iter().enumerate() {
        if !existing.contains(name) {
            eprintln!("layer `{name}` is in the table but not in src/ yet: skipped");
            continue;
        }
        let below = &table[..row];
        let allowed =
            |target: &str| target == name || below.iter().any(|b| b == target) || !table.iter().any(|t| t == target);
        failures.extend(violations(name, allowed, "a layer at or above its own row"));
    }
    for module in &existing {
        if !table.contains(module) && !NOT_LAYERS.iter().any(|(m, _)| m == module) {
            failures.push(Violation(format!(
                "src/lib.rs: module `{module}` has no row in the # Layout table (add one, or list it in NOT_LAYERS with why)"
            )));
        }
    }
    let report: Vec<String> = failures.into_iter().map(|v| v.0).collect();
    assert!(
        report.is_empty(),
        "imports that run up the stack:\n{}",
        report.join("\n")
    );
}

#[test]
fn pg_protocol_is_sans_io() {
    let (dir, forbidden) = SANS_IO;
    let failures = violations(dir, |target| !forbidden.contains(&target), "pg::protocol is sans-IO");
    assert!(
        !module_files(dir).is_empty(),
        "src/{dir} has moved: update SANS_IO in tests/layers.rs"
    );
    let report: Vec<String> = failures.into_iter().map(|v| v.0).collect();
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn the_path_reader_sees_groups_macros_and_skips_comments() {
    assert_eq!(crate_paths("use crate::sys::{cvt, errno_of};"), ["sys"]);
    assert_eq!(
        crate_paths("use crate::{poller::{Token, Events}, sys};"),
        ["poller", "sys"]
    );
    assert_eq!(crate_paths("        crate::narrate!(\"x\");"), ["trace"]);
    assert_eq!(crate_paths("if $crate::trace::enabled() {"), ["trace"]);
    assert!(crate_paths("//! see [`crate::reactor`]").is_empty());
    assert!(crate_paths("let x = mycrate::reactor::f();").is_empty());
    let table = layer_table("//! # Layout\n//! | module | a |\n//! |---|---|\n//! | [`sys`] | x |\n//! | `http` | y |\n//! # Next\n//! | [`no`] | z |");
    assert_eq!(table, ["sys", "http"]);
}
