//! The docs include code from the source; this test keeps them honest.
//!
//! A page in `docs/` never pastes code. It names a region of a source file,
//!
//! ```text
//! <!-- include: src/poller/epoll.rs:wait -->
//! <!-- /include -->
//! ```
//!
//! and the region is the lines between `// ANCHOR: wait` and
//! `// ANCHOR_END: wait` in that file (mdBook's anchor syntax, so the pages
//! also work with `{{#include}}` if the book is ever built with mdBook).
//!
//! `cargo test --test docs_include` fails when a block between the two
//! markers differs from the source region, naming the page and the anchor;
//! `UPDATE_DOCS=1 cargo test --test docs_include` rewrites the blocks. So the
//! code a reader sees in the docs is the code that compiled and ran.

use std::fs;
use std::path::{Path, PathBuf};

const OPEN: &str = "<!-- include: ";
const CLOSE: &str = "<!-- /include -->";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The lines of `file` between `ANCHOR: name` and `ANCHOR_END: name`,
/// without the marker lines, nested markers, or the common indentation.
fn anchor_region(file: &Path, name: &str) -> Result<String, String> {
    let text = fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let start_marker = format!("ANCHOR: {name}");
    let end_marker = format!("ANCHOR_END: {name}");
    let mut inside = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("//") && trimmed.ends_with(&start_marker) {
            inside = true;
            continue;
        }
        if trimmed.starts_with("//") && trimmed.ends_with(&end_marker) {
            if !inside {
                break;
            }
            let indent = lines
                .iter()
                .filter(|l: &&&str| !l.trim().is_empty())
                .map(|l| l.len() - l.trim_start().len())
                .min()
                .unwrap_or(0);
            let body: Vec<&str> = lines
                .iter()
                .map(|l| if l.len() >= indent { &l[indent..] } else { "" })
                .collect();
            return Ok(body.join("\n"));
        }
        if inside && !(trimmed.starts_with("// ANCHOR") && trimmed.contains(':')) {
            lines.push(line);
        }
    }
    Err(format!(
        "{}: no region `// ANCHOR: {name}` … `// ANCHOR_END: {name}`",
        file.display()
    ))
}

/// Rebuild one markdown page with every include block refreshed.
fn render(page: &Path) -> Result<String, String> {
    let text = fs::read_to_string(page).map_err(|e| format!("{}: {e}", page.display()))?;
    let mut out = String::with_capacity(text.len());
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        let Some(spec) = line.trim().strip_prefix(OPEN).and_then(|rest| rest.strip_suffix("-->")) else {
            continue;
        };
        let spec = spec.trim();
        let (file, anchor) = spec
            .rsplit_once(':')
            .ok_or_else(|| format!("{}: include `{spec}` should be `path:anchor`", page.display()))?;
        let region = anchor_region(&repo_root().join(file), anchor)?;
        // Skip the old block up to the closing marker.
        let mut closed = false;
        for old in lines.by_ref() {
            if old.trim() == CLOSE {
                closed = true;
                break;
            }
        }
        if !closed {
            return Err(format!("{}: include `{spec}` has no `{CLOSE}`", page.display()));
        }
        out.push_str("```rust\n");
        out.push_str(&region);
        out.push_str("\n```\n");
        out.push_str(CLOSE);
        out.push('\n');
    }
    Ok(out)
}

#[test]
fn docs_include_blocks_match_the_source() {
    let docs = repo_root().join("docs");
    let update = std::env::var_os("UPDATE_DOCS").is_some();
    let mut stale = Vec::new();
    let mut pages: Vec<PathBuf> = fs::read_dir(&docs)
        .expect("docs/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    for page in pages {
        let current = fs::read_to_string(&page).expect("page is readable");
        let fresh = match render(&page) {
            Ok(fresh) => fresh,
            Err(e) => panic!("{e}"),
        };
        if fresh != current {
            if update {
                fs::write(&page, fresh).expect("page is writable");
            } else {
                stale.push(page.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "these docs quote code that changed; run `UPDATE_DOCS=1 cargo test --test docs_include`: {stale:?}"
    );
}
