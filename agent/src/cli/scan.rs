//! `promptwall scan`: the pipeline's detectors over a file or stdin, for
//! pre-commit hooks and for measuring detection quality.

use std::io::{Read, Write};

use crate::config::AgentConfig;
use anyhow::Context;
use promptwall_llm::detect::{Action, Detector, Finding, KINDS};

const AFTER_HELP: &str = "\
Uses the [pipeline] policy of the config file: per-kind actions, custom
detectors and allowlists apply exactly as in the proxy (the `enabled`
switch does not; scan always runs).

Output: a table with line, column, kind, category and action; with --json
one line per finding: {\"kind\",\"category\",\"start\",\"end\",\"action\"}
(start/end are byte offsets). Values are never printed unless --show.

Exit status: 1 when any finding's action is `block` (use it as a
pre-commit hook: `git diff --cached | promptwall scan -`), 0 otherwise,
2 on errors (unreadable file, invalid policy).";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct ScanArgs {
    /// File to scan, or - for stdin (default: stdin).
    pub file: Option<std::path::PathBuf>,
    /// One JSON object per finding, one per line.
    #[arg(long)]
    pub json: bool,
    /// Print the matched values too (off by default: they are secrets).
    #[arg(long)]
    pub show: bool,
    /// List the built-in detector kinds (names usable in [pipeline.actions]) and exit.
    #[arg(long)]
    pub list_kinds: bool,
}

pub async fn run(args: ScanArgs, config: &AgentConfig) -> anyhow::Result<()> {
    // Exit status is part of the interface (pre-commit): 1 means "blocked
    // finding", so errors exit 2 rather than through main's status 1.
    match scan(args, config) {
        Ok(blocked) => {
            if blocked {
                std::process::exit(1);
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Prints the findings; true when any of them is blocked by policy.
fn scan(args: ScanArgs, config: &AgentConfig) -> anyhow::Result<bool> {
    if args.list_kinds {
        let mut out = std::io::stdout().lock();
        for k in KINDS.iter() {
            writeln!(out, "{:<36} {:<7} {}", k.kind, k.category.as_str(), k.description)?;
        }
        return Ok(false);
    }
    let detector = Detector::new(&config.pipeline).context("cannot build detectors from the [pipeline] config")?;
    let bytes = read_input(args.file.as_deref())?;
    // Offsets refer to this text; invalid UTF-8 bytes become U+FFFD.
    let text = String::from_utf8_lossy(&bytes);
    let findings = detector.scan(&text);

    let mut out = std::io::stdout().lock();
    if args.json {
        for f in &findings {
            let mut line = serde_json::json!({
                "kind": &*f.kind,
                "category": f.category.as_str(),
                "start": f.start,
                "end": f.end,
                "action": f.action.as_str(),
            });
            if args.show {
                line["value"] = f.value(&text).into();
            }
            writeln!(out, "{line}")?;
        }
    } else if findings.is_empty() {
        writeln!(out, "no findings")?;
    } else {
        writeln!(out, "{}", table(&text, &findings, args.show))?;
    }
    out.flush()?;
    Ok(findings.iter().any(|f| f.action == Action::Block))
}

fn read_input(file: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
    match file {
        Some(p) if p.as_os_str() != "-" => std::fs::read(p)
            .with_context(|| format!("cannot read {}; pass an existing file or - for stdin", p.display())),
        _ => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read stdin; pipe the text in or pass a FILE")?;
            Ok(buf)
        }
    }
}

fn table(text: &str, findings: &[Finding], show: bool) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    let mut header = vec!["line", "col", "kind", "category", "action"];
    if show {
        header.push("value");
    }
    t.set_header(header);
    // Findings are sorted, so one forward pass finds every line number.
    let (mut line, mut line_start, mut pos) = (1usize, 0usize, 0usize);
    for f in findings {
        for nl in memchr_positions(&text.as_bytes()[pos..f.start]) {
            line += 1;
            line_start = pos + nl + 1;
        }
        pos = f.start;
        let col = text[line_start..f.start].chars().count() + 1;
        let mut row = vec![
            line.to_string(),
            col.to_string(),
            f.kind.to_string(),
            f.category.as_str().into(),
            f.action.as_str().into(),
        ];
        if show {
            row.push(f.value(text).replace('\n', "\\n"));
        }
        t.add_row(row);
    }
    t
}

fn memchr_positions(b: &[u8]) -> impl Iterator<Item = usize> + '_ {
    b.iter().enumerate().filter(|(_, c)| **c == b'\n').map(|(i, _)| i)
}
