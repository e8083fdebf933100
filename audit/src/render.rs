//! Output for people (comfy-table) and scripts (JSON lines, CSV). Kept in
//! the library so tests check exactly what the CLI prints.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};
use serde_json::{Map, Value};

use crate::chain::{BreakKind, PruneReport, VerifyReport};
use crate::query::{AgentSummary, TopBy, TopRow};
use crate::{AuditRecord, RoutingDetail};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Jsonl,
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, crate::AuditError> {
        match s {
            "table" => Ok(Format::Table),
            "jsonl" | "json" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            other => Err(crate::AuditError::BadFilter(format!(
                "--format {other:?}: use table, jsonl or csv"
            ))),
        }
    }
}

/// Text for a terminal: control characters (ANSI escape sequences, carriage
/// returns that overwrite a line, ...) and bidirectional overrides (which
/// reorder what the eye reads) shown as `\u{..}`. Stored rows are sanitised
/// by the writer; this also covers rows from older or foreign writers.
pub fn for_terminal(s: &str, multiline: bool) -> String {
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let escaped = crate::record::escape_controls(s, multiline);
    if !escaped.chars().any(bidi) {
        return escaped.into_owned();
    }
    escaped
        .chars()
        .map(|c| {
            if bidi(c) {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A table cell with its text made safe for a terminal.
fn cell(s: impl AsRef<str>) -> Cell {
    Cell::new(for_terminal(s.as_ref(), false))
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    t
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_else(|| "-".into())
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn right(s: String) -> Cell {
    cell(s).set_alignment(CellAlignment::Right)
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn money(v: f64) -> String {
    format!("${v:.4}")
}

/// Rows for people: the columns an auditor scans first. MACHINE only when
/// the rows come from several machines, ROUTE and UPSTREAM only when one of
/// them was routed.
pub fn records_table(records: &[AuditRecord]) -> String {
    let fleet = records
        .first()
        .is_some_and(|f| records.iter().any(|r| r.machine_id != f.machine_id));
    let routed = records.iter().any(|r| !r.route.is_empty() || !r.upstream.is_empty());
    let mut header = vec!["ID", "TIME (UTC)"];
    if fleet {
        header.push("MACHINE");
    }
    header.extend(["USER", "TOOL", "EXE", "PROVIDER"]);
    if routed {
        header.extend(["ROUTE", "UPSTREAM"]);
    }
    header.extend([
        "METHOD", "PATH", "MODEL", "STATUS", "IN", "OUT", "MS", "VERDICT", "FINDINGS", "COST",
    ]);
    let mut t = table(&header);
    for r in records {
        let mut row = vec![right(r.id.to_string()), cell(&r.ts)];
        if fleet {
            row.push(cell(&r.machine_id));
        }
        row.extend([
            cell(opt(&r.user)),
            cell(opt(&r.tool)),
            cell(r.exe.as_deref().map(basename).unwrap_or("-")),
            cell(opt(&r.provider)),
        ]);
        if routed {
            row.extend([cell(or_dash(&r.route)), cell(or_dash(&r.upstream))]);
        }
        row.extend([
            cell(opt(&r.method)),
            cell(opt(&r.path)),
            cell(opt(&r.model)),
            right(r.status.to_string()),
            right(opt(&r.input_tokens)),
            right(opt(&r.output_tokens)),
            right(format!("{:.0}", r.duration_ms)),
            cell(&r.verdict),
            cell(findings_summary(r)),
            right(r.cost_usd.map(money).unwrap_or_else(|| "-".into())),
        ]);
        t.add_row(row);
    }
    t.to_string()
}

fn findings_summary(r: &AuditRecord) -> String {
    if r.findings.is_empty() {
        return "-".into();
    }
    r.findings
        .iter()
        .map(|(k, n)| format!("{k}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One JSON object; bodies only when asked (`show`, `export`).
pub fn record_json(r: &AuditRecord, with_bodies: bool) -> Value {
    let mut v = serde_json::to_value(r).expect("record serialises");
    if !with_bodies {
        if let Value::Object(map) = &mut v {
            map.remove("request_body");
            map.remove("response_body");
        }
    }
    v
}

/// One JSON object per line, newline-terminated.
pub fn records_jsonl(records: &[AuditRecord], with_bodies: bool) -> String {
    records
        .iter()
        .map(|r| format!("{}\n", record_json(r, with_bodies)))
        .collect()
}

/// Spreadsheets run a cell that starts with `= + - @` (or a tab or carriage
/// return before one) as a formula; a model name or command line is chosen
/// by whoever sent the request. Such text cells get a leading `'`, which
/// spreadsheets show as text (OWASP's CSV injection advice). Numbers are
/// not text cells and keep their sign. Quoting is the csv crate's.
fn csv_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}").into()
    } else {
        s.into()
    }
}

fn csv_value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => csv_text(s).into_owned(),
        Value::Number(n) => n.to_string(),
        // JSON-valued columns (findings, fingerprints) start with { or [.
        other => csv_text(&other.to_string()).into_owned(),
    }
}

fn csv_rows(values: &[Map<String, Value>]) -> String {
    let Some(first) = values.first() else {
        return String::new();
    };
    let header: Vec<&String> = first.keys().collect();
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing to memory cannot fail.
    out.write_record(header.iter().map(|h| csv_text(h).into_owned()))
        .expect("in-memory CSV");
    for v in values {
        out.write_record(header.iter().map(|h| csv_value(v.get(*h).unwrap_or(&Value::Null))))
            .expect("in-memory CSV");
    }
    String::from_utf8(out.into_inner().expect("in-memory CSV")).expect("CSV of UTF-8 text is UTF-8")
}

fn objects<T: serde::Serialize>(items: impl IntoIterator<Item = T>) -> Vec<Map<String, Value>> {
    items
        .into_iter()
        .map(|i| match serde_json::to_value(i).expect("serialises") {
            Value::Object(m) => m,
            _ => unreachable!("structs serialise to objects"),
        })
        .collect()
}

/// CSV with a header line; JSON-valued columns (findings) as JSON text.
pub fn records_csv(records: &[AuditRecord], with_bodies: bool) -> String {
    let maps: Vec<Map<String, Value>> = records
        .iter()
        .map(|r| match record_json(r, with_bodies) {
            Value::Object(m) => m,
            _ => unreachable!(),
        })
        .collect();
    csv_rows(&maps)
}

pub fn records(records: &[AuditRecord], format: Format) -> String {
    match format {
        Format::Table => records_table(records),
        Format::Jsonl => records_jsonl(records, false),
        Format::Csv => records_csv(records, false),
    }
}

/// "12 cursor / 8 claude-code / 4 aider" style overview.
pub fn agents(rows: &[AgentSummary], format: Format) -> String {
    match format {
        Format::Jsonl => rows
            .iter()
            .map(|r| format!("{}\n", serde_json::to_string(r).expect("serialises")))
            .collect(),
        Format::Csv => csv_rows(&objects(rows)),
        Format::Table => {
            let mut t = table(&[
                "TOOL",
                "REQUESTS",
                "USERS",
                "MACHINES",
                "FIRST SEEN (UTC)",
                "LAST SEEN (UTC)",
            ]);
            for r in rows {
                t.add_row(vec![
                    cell(r.tool.as_deref().unwrap_or("(unattributed)")),
                    right(r.requests.to_string()),
                    right(r.users.to_string()),
                    right(r.machines.to_string()),
                    cell(&r.first_seen),
                    cell(&r.last_seen),
                ]);
            }
            t.to_string()
        }
    }
}

pub fn top(by: TopBy, rows: &[TopRow], format: Format) -> String {
    match format {
        Format::Jsonl => rows
            .iter()
            .map(|r| format!("{}\n", serde_json::to_string(r).expect("serialises")))
            .collect(),
        Format::Csv => csv_rows(&objects(rows)),
        Format::Table => {
            let key = by.name().to_uppercase();
            let mut t = table(&[
                &key,
                "REQUESTS",
                "IN TOKENS",
                "OUT TOKENS",
                "EST. COST",
                "BLOCKED",
                "REDACTED",
            ]);
            for r in rows {
                t.add_row(vec![
                    cell(r.key.as_deref().unwrap_or("(unknown)")),
                    right(r.requests.to_string()),
                    right(r.input_tokens.to_string()),
                    right(r.output_tokens.to_string()),
                    right(money(r.cost_usd)),
                    right(r.blocked.to_string()),
                    right(r.redacted.to_string()),
                ]);
            }
            t.to_string()
        }
    }
}

/// `show`: every field, one per line; the routing detail as its own
/// section (attempts as a table); bodies last.
pub fn record_detail(r: &AuditRecord) -> String {
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    let Value::Object(mut map) = record_json(r, false) else {
        unreachable!()
    };
    let routing = r.routing_detail();
    if let Some(Ok(_)) = &routing {
        map.remove("routing");
    }
    for (k, v) in map {
        let text = match v {
            Value::Null => "-".to_string(),
            Value::String(s) => s,
            other => other.to_string(),
        };
        t.add_row(vec![cell(k), cell(text)]);
    }
    let mut out = t.to_string();
    out.push('\n');
    if let Some(Ok(detail)) = &routing {
        out.push_str(&routing_detail(detail));
    }
    for (name, body) in [
        ("request body (as the provider saw it)", &r.request_body),
        ("response body", &r.response_body),
    ] {
        match body {
            Some(b) => out.push_str(&format!("\n--- {name} ---\n{}\n", for_terminal(b, true))),
            None => out.push_str(&format!(
                "\n--- {name}: not captured (audit.capture_bodies is off, or purged by retention) ---\n"
            )),
        }
    }
    out
}

/// The `--- routing ---` section of `show`: models, translation, notes,
/// and the attempts in order.
pub fn routing_detail(d: &RoutingDetail) -> String {
    let mut out = String::from("\n--- routing ---\n");
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    t.add_row(vec![cell("requested model"), cell(opt(&d.requested_model))]);
    t.add_row(vec![cell("upstream model"), cell(opt(&d.upstream_model))]);
    let translation = match &d.translation {
        Some(tr) => format!("{} -> {}", tr.from, tr.to),
        None => "none".into(),
    };
    t.add_row(vec![cell("translation"), cell(translation)]);
    for note in &d.notes {
        t.add_row(vec![cell("note"), cell(note)]);
    }
    out.push_str(&t.to_string());
    out.push('\n');
    if d.attempts.is_empty() {
        return out;
    }
    let mut a = table(&["#", "UPSTREAM", "MODEL", "STATUS", "MS", "OUTCOME"]);
    for (i, attempt) in d.attempts.iter().enumerate() {
        a.add_row(vec![
            right((i + 1).to_string()),
            cell(&attempt.upstream),
            cell(or_dash(&attempt.model)),
            right(opt(&attempt.status)),
            right(format!("{:.1}", attempt.ms)),
            cell(&attempt.outcome),
        ]);
    }
    out.push_str("attempts:\n");
    out.push_str(&a.to_string());
    out.push('\n');
    out
}

/// " (install 1a2b…)" for chains of stores with an install id.
fn install_suffix(install_id: &str) -> String {
    if install_id.is_empty() {
        String::new()
    } else {
        format!(" (install {})", for_terminal(install_id, false))
    }
}

pub fn verify(report: &VerifyReport) -> String {
    let mut out = String::new();
    for m in &report.machines {
        let machine = format!(
            "{}{}",
            for_terminal(&m.machine_id, false),
            install_suffix(&m.install_id)
        );
        match &m.first_break {
            None => out.push_str(&format!(
                "machine {machine}: chain intact ({} rows checked{})\n",
                m.rows_checked,
                if m.pruned_rows > 0 {
                    format!(", {} pruned before the checkpoint", m.pruned_rows)
                } else {
                    String::new()
                }
            )),
            Some(b) => out.push_str(&format!(
                "machine {machine}: CHAIN BROKEN at row {} ({}): {}\n",
                b.id,
                match b.kind {
                    BreakKind::Edited => "edited",
                    BreakKind::Deleted => "deleted",
                    BreakKind::Inserted => "inserted",
                    BreakKind::Conflict => "conflict",
                },
                for_terminal(&b.detail, false)
            )),
        }
    }
    if report.machines.is_empty() {
        out.push_str("audit store is empty: nothing to verify\n");
    }
    for q in &report.quarantined {
        out.push_str(&format!(
            "row {} of machine {}: QUARANTINED, not in central store {} (rejected{}: {}); \
             a copy is kept in this store's audit_quarantine table, see also `promptwall audit show {}`\n",
            q.id,
            for_terminal(&q.machine_id, false),
            for_terminal(&q.central, false),
            q.sqlstate
                .as_deref()
                .map(|c| format!(" with SQLSTATE {c}"))
                .unwrap_or_default(),
            for_terminal(&q.reason, false),
            q.id
        ));
    }
    out
}

pub fn prune(reports: &[PruneReport]) -> String {
    if reports.is_empty() {
        return "nothing to prune\n".into();
    }
    reports
        .iter()
        .map(|r| {
            format!(
                "machine {}{}: pruned {} rows; chain continues from checkpoint at row {}\n",
                for_terminal(&r.machine_id, false),
                install_suffix(&r.install_id),
                r.deleted,
                r.checkpoint_id
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_with_separators_read_back_intact_and_formulas_stay_text() {
        let row = AuditRecord {
            id: 7,
            cmdline: Some("a,b \"quoted\"\nnext line".into()),
            model: Some("=HYPERLINK(\"x\")".into()),
            input_tokens: Some(-3),
            ..Default::default()
        };
        let text = records_csv(&[row], false);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header = reader.headers().unwrap().clone();
        let record = reader.records().next().unwrap().unwrap();
        let cell = |name: &str| &record[header.iter().position(|h| h == name).unwrap()];
        assert_eq!(cell("id"), "7");
        assert_eq!(cell("cmdline"), "a,b \"quoted\"\nnext line");
        assert_eq!(cell("model"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("input_tokens"), "-3", "numbers keep their sign");
        assert_eq!(cell("findings"), "{}");
    }

    fn routed_row() -> AuditRecord {
        AuditRecord {
            id: 9,
            verdict: "allowed".into(),
            route: "claude-via-openai".into(),
            upstream: "openai/main".into(),
            routing: Some(
                RoutingDetail {
                    requested_model: Some("claude-x".into()),
                    upstream_model: Some("gpt-y".into()),
                    translation: Some(crate::TranslationRecord {
                        from: "anthropic.messages".into(),
                        to: "openai.chat".into(),
                    }),
                    notes: vec!["top_k dropped: \u{1b}[31m".into()],
                    attempts: vec![
                        crate::Attempt {
                            upstream: "openai/main".into(),
                            model: "gpt-y".into(),
                            status: Some(429),
                            ms: 12.5,
                            outcome: "retry: 429, Retry-After 30 s".into(),
                        },
                        crate::Attempt {
                            upstream: "openai/backup".into(),
                            model: "gpt-y".into(),
                            status: None,
                            ms: 3.0,
                            outcome: "connect: refused".into(),
                        },
                    ],
                }
                .to_json(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn the_list_shows_route_and_upstream_columns_only_when_a_row_was_routed() {
        let plain = AuditRecord {
            id: 1,
            ..Default::default()
        };
        let table = records_table(std::slice::from_ref(&plain));
        assert!(!table.contains("ROUTE") && !table.contains("UPSTREAM"), "{table}");
        let table = records_table(&[plain, routed_row()]);
        assert!(table.contains("ROUTE") && table.contains("UPSTREAM"), "{table}");
        let line = table
            .lines()
            .find(|l| l.contains("claude-via-openai"))
            .expect("routed row");
        assert!(line.contains("openai/main"), "{table}");
    }

    #[test]
    fn show_prints_the_routing_detail_with_its_attempts_as_a_table() {
        let text = record_detail(&routed_row());
        assert!(!text.contains('\u{1b}'), "{text}");
        let section = text.split("--- routing ---").nth(1).expect("routing section");
        for expected in [
            "claude-x",
            "gpt-y",
            "anthropic.messages -> openai.chat",
            "top_k dropped: \\u{1b}[31m",
        ] {
            assert!(section.contains(expected), "{expected}: {text}");
        }
        let attempt = section
            .lines()
            .find(|l| l.contains("openai/main"))
            .expect("first attempt");
        for cell in ["gpt-y", "429", "12.5", "retry: 429, Retry-After 30 s"] {
            assert!(attempt.contains(cell), "{cell}: {attempt}");
        }
        let refused = section.lines().find(|l| l.contains("openai/backup")).unwrap();
        assert!(
            refused.contains(" - ") && refused.contains("connect: refused"),
            "{refused}"
        );
        let head = text.split("--- routing ---").next().unwrap();
        assert!(
            head.lines()
                .any(|l| l.contains("route") && l.contains("claude-via-openai"))
                && head
                    .lines()
                    .any(|l| l.contains("upstream") && l.contains("openai/main")),
            "{head}"
        );
        assert!(!head.contains("\"attempts\""), "the raw JSON is not repeated: {head}");
    }

    #[test]
    fn show_prints_routing_text_it_cannot_read_as_is_and_unrouted_rows_without_a_section() {
        let mut r = AuditRecord {
            routing: Some("not a detail".into()),
            ..Default::default()
        };
        let text = record_detail(&r);
        assert!(
            text.lines()
                .any(|l| l.contains("routing") && l.contains("not a detail")),
            "{text}"
        );
        assert!(!text.contains("--- routing ---"));
        r.routing = None;
        assert!(!record_detail(&r).contains("--- routing ---"));
    }

    #[test]
    fn json_output_carries_the_routing_fields_and_the_detail_text_as_stored() {
        let r = routed_row();
        let v = record_json(&r, false);
        assert_eq!(v["route"], "claude-via-openai");
        assert_eq!(v["upstream"], "openai/main");
        assert_eq!(v["routing"].as_str(), r.routing.as_deref());
        let plain = record_json(&AuditRecord::default(), false);
        assert_eq!((&plain["route"], &plain["routing"]), (&Value::from(""), &Value::Null));
    }
}
