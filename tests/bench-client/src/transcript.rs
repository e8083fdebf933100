//! A deterministic Claude-Code-style transcript: a long system prompt, the
//! tool catalogue, and turn after turn of tool calls (Bash, Read, Grep, Edit)
//! whose results are source code, build/test logs, grep hits and git logs.
//! A few authors' emails appear (reversible redaction has work to do); no
//! credentials (the request must be forwarded, not blocked).

use std::path::PathBuf;

use anyhow::Result;
use serde_json::{json, Value};

/// xorshift64*: deterministic, no dependency, plenty for text generation.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "request", "handler", "config", "buffer", "stream", "session", "client", "route", "cache", "entry", "index",
    "parser", "token", "frame", "state", "retry", "budget", "window", "offset", "record", "schema", "batch", "queue",
    "worker", "limit", "header", "payload", "cursor", "reader", "writer", "metric", "span", "event", "policy",
];
const TYPES: &[&str] = &[
    "Request", "Config", "Session", "Frame", "Batch", "Cursor", "Policy", "Metric", "Record",
];
const METHODS: &[&str] = &[
    "parse", "flush", "insert", "lookup", "validate", "encode", "decode", "spawn", "merge",
];
const FILES: &[&str] = &[
    "src/server/handler.rs",
    "src/server/router.rs",
    "src/cache/mod.rs",
    "src/cache/lru.rs",
    "src/proto/frame.rs",
    "src/proto/codec.rs",
    "src/config.rs",
    "src/metrics.rs",
    "src/worker/pool.rs",
    "tests/integration.rs",
];
const AUTHORS: &[(&str, &str)] = &[
    ("Priya Raman", "priya.raman@globex-systems.com"),
    ("Tomasz Nowak", "t.nowak@initech-labs.net"),
    ("Aiko Tanaka", "aiko.tanaka@umbrella-devices.org"),
    ("Marcus Bell", "marcus.bell@hooli-cloud.com"),
];

fn ident(r: &mut Rng) -> String {
    format!("{}_{}", r.pick(WORDS), r.pick(WORDS))
}

fn code_file(r: &mut Rng, target: usize) -> String {
    let mut out = String::from("use std::collections::HashMap;\nuse std::sync::Arc;\n\n");
    let mut n = 1;
    while out.len() < target {
        let ty = r.pick(TYPES);
        out += &format!(
            "/// Keeps the {} of each {} until the {} is flushed.\n",
            r.pick(WORDS),
            r.pick(WORDS),
            r.pick(WORDS)
        );
        out += &format!("pub struct {ty}{n} {{\n");
        for _ in 0..3 + r.below(4) {
            out += &format!(
                "    pub {}: {},\n",
                ident(r),
                r.pick(&["u64", "usize", "String", "Vec<u8>", "Option<Arc<str>>"])
            );
        }
        out += "}\n\n";
        out += &format!(
            "impl {ty}{n} {{\n    pub fn {}(&mut self, {}: &[u8]) -> Result<usize, Error> {{\n",
            r.pick(METHODS),
            ident(r)
        );
        for _ in 0..4 + r.below(8) {
            match r.below(4) {
                0 => {
                    out += &format!(
                        "        let {} = self.{}.{}({})?;\n",
                        ident(r),
                        ident(r),
                        r.pick(METHODS),
                        r.below(4096)
                    )
                }
                1 => {
                    out += &format!(
                        "        if {} > self.{} {{\n            return Err(Error::{}Overflow);\n        }}\n",
                        ident(r),
                        ident(r),
                        r.pick(TYPES)
                    )
                }
                2 => {
                    out += &format!(
                        "        // {} the {} before the {} moves on.\n",
                        r.pick(METHODS),
                        r.pick(WORDS),
                        r.pick(WORDS)
                    )
                }
                _ => {
                    out += &format!(
                        "        self.{}.insert({}, {});\n",
                        ident(r),
                        r.below(1 << 16),
                        ident(r)
                    )
                }
            }
        }
        out += "        Ok(0)\n    }\n}\n\n";
        n += 1;
    }
    out
}

fn build_log(r: &mut Rng, target: usize) -> String {
    let mut out = String::from("   Compiling service v0.4.2 (/home/dev/service)\n");
    let mut i = 0;
    while out.len() < target {
        match r.below(5) {
            0 => out += &format!(
                "warning: unused variable: `{}`\n  --> {}:{}:{}\n   |\n{} |     let {} = {}.{}();\n   |         ^^^^ help: if this is intentional, prefix it with an underscore\n\n",
                ident(r), r.pick(FILES), r.below(900), r.below(60), r.below(900), ident(r), ident(r), r.pick(METHODS)
            ),
            1 => out += &format!("test {}::tests::{}_{} ... ok\n", r.pick(WORDS), r.pick(METHODS), ident(r)),
            2 => out += &format!(
                "2025-06-12T10:{:02}:{:02}.{:03}Z  INFO {}{{req_id={:08x}}}: served POST /api/v2/{}/{} status=200 in {}ms peer=10.{}.{}.{}\n",
                r.below(60), r.below(60), r.below(1000), ident(r), r.next() as u32, r.pick(WORDS), r.below(100000), r.below(300),
                r.below(255), r.below(255), r.below(255)
            ),
            3 => out += &format!(
                "2025-06-12T10:{:02}:{:02}.{:03}Z  WARN {}: retrying {} after {}ms (attempt {}/5)\n",
                r.below(60), r.below(60), r.below(1000), ident(r), r.pick(WORDS), r.below(2000), r.below(5) + 1
            ),
            _ => out += &format!("thread 'worker-{}' at {}:{}: {} queue depth {}\n", r.below(16), r.pick(FILES), r.below(900), r.pick(WORDS), r.below(512)),
        }
        i += 1;
        if i % 40 == 0 {
            out += &format!(
                "\ntest result: ok. {} passed; 0 failed; 2 ignored; finished in {}.{:02}s\n\n",
                r.below(300),
                r.below(9),
                r.below(100)
            );
        }
    }
    out
}

fn grep_hits(r: &mut Rng, target: usize) -> String {
    let mut out = String::new();
    while out.len() < target {
        out += &format!(
            "{}:{}:    let {} = self.{}.{}()?;\n",
            r.pick(FILES),
            r.below(900),
            ident(r),
            ident(r),
            r.pick(METHODS)
        );
    }
    out
}

fn git_log(r: &mut Rng, target: usize) -> String {
    let mut out = String::new();
    while out.len() < target {
        let (name, email) = AUTHORS[r.below(AUTHORS.len())];
        // `--format` without addresses, except for a few merge commits.
        let author = if r.below(8) == 0 {
            format!("{name} <{email}>")
        } else {
            name.to_string()
        };
        out += &format!(
            "commit {:016x}{:08x}\nAuthor: {author}\nDate:   Thu Jun 12 10:{:02}:{:02} 2025 +0200\n\n    {}: {} the {} when the {} is full\n\n",
            r.next(), r.next() as u32, r.below(60), r.below(60), r.pick(WORDS), r.pick(METHODS), r.pick(WORDS), r.pick(WORDS)
        );
    }
    out
}

fn tools() -> Value {
    let schema = |props: &[(&str, &str)]| {
        let mut p = serde_json::Map::new();
        for (name, desc) in props {
            p.insert(name.to_string(), json!({"type": "string", "description": desc}));
        }
        json!({"type": "object", "properties": p, "required": [props[0].0], "additionalProperties": false, "$schema": "http://json-schema.org/draft-07/schema#"})
    };
    type ToolDef<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let mut list = vec![];
    let defs: &[ToolDef] = &[
        ("Bash", "Executes a given bash command in a persistent shell session with optional timeout, ensuring proper handling and security measures. Before executing the command, verify the parent directory exists. Always quote file paths that contain spaces.", &[("command", "The command to execute"), ("description", "Clear, concise description of what this command does in 5-10 words")]),
        ("Read", "Reads a file from the local filesystem. You can access any file directly by using this tool. By default, it reads up to 2000 lines starting from the beginning of the file.", &[("file_path", "The absolute path to the file to read"), ("offset", "The line number to start reading from")]),
        ("Edit", "Performs exact string replacements in files. You must use your Read tool at least once in the conversation before editing. Preserve the exact indentation as it appears in the file.", &[("file_path", "The absolute path to the file to modify"), ("old_string", "The text to replace"), ("new_string", "The text to replace it with")]),
        ("Write", "Writes a file to the local filesystem. This tool will overwrite the existing file if there is one at the provided path.", &[("file_path", "The absolute path to the file to write"), ("content", "The content to write to the file")]),
        ("Grep", "A powerful search tool built on ripgrep. Supports full regex syntax. Filter files with glob parameter or type parameter.", &[("pattern", "The regular expression pattern to search for"), ("path", "File or directory to search in"), ("glob", "Glob pattern to filter files")]),
        ("Glob", "Fast file pattern matching tool that works with any codebase size. Returns matching file paths sorted by modification time.", &[("pattern", "The glob pattern to match files against"), ("path", "The directory to search in")]),
        ("TodoWrite", "Use this tool to create and manage a structured task list for your current coding session. This helps you track progress and organize complex tasks.", &[("todos", "The updated todo list")]),
        ("WebFetch", "Fetches content from a specified URL and processes it using an AI model. Takes a URL and a prompt as input.", &[("url", "The URL to fetch content from"), ("prompt", "The prompt to run on the fetched content")]),
        ("Task", "Launch a new agent to handle complex, multi-step tasks autonomously. Each agent type has specific capabilities and tools available to it.", &[("description", "A short description of the task"), ("prompt", "The task for the agent to perform"), ("subagent_type", "The type of specialized agent to use")]),
    ];
    for (name, desc, props) in defs {
        list.push(json!({"name": name, "description": desc, "input_schema": schema(props)}));
    }
    Value::Array(list)
}

fn system_prompt(r: &mut Rng) -> Value {
    let mut text = String::from("You are Claude Code, Anthropic's official CLI for Claude. You are an interactive CLI tool that helps users with software engineering tasks. Use the instructions below and the tools available to you to assist the user.\n\n");
    while text.len() < 12_000 {
        text += &format!(
            "# {} {}\n- When you {} a {}, first {} the surrounding {} and follow its conventions.\n- Never assume a {} is available; check the {} first.\n\n",
            r.pick(METHODS), r.pick(WORDS), r.pick(METHODS), r.pick(WORDS), r.pick(METHODS), r.pick(WORDS), r.pick(WORDS), r.pick(WORDS)
        );
    }
    json!([{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}])
}

/// One assistant tool call and its result of about `size` bytes.
fn turn(r: &mut Rng, n: usize, size: usize) -> [Value; 2] {
    let id = format!("toolu_01{:020}", n);
    let (call, result) = match r.below(5) {
        0 => (
            json!({"name": "Read", "input": {"file_path": format!("/home/dev/service/{}", r.pick(FILES))}}),
            code_file(r, size),
        ),
        1 => (
            json!({"name": "Bash", "input": {"command": "cargo test --workspace 2>&1 | tail -400", "description": "Run the test suite"}}),
            build_log(r, size),
        ),
        2 => (
            json!({"name": "Grep", "input": {"pattern": format!("{}\\(", r.pick(METHODS)), "path": "src"}}),
            grep_hits(r, size),
        ),
        3 => (
            json!({"name": "Bash", "input": {"command": "git log -n 40", "description": "Recent history"}}),
            git_log(r, size),
        ),
        _ => {
            let file = r.pick(FILES);
            let old = code_file(r, size / 3);
            let new = old.replace("Ok(0)", "Ok(written)");
            (
                json!({"name": "Edit", "input": {"file_path": format!("/home/dev/service/{file}"), "old_string": old, "new_string": new}}),
                format!("The file /home/dev/service/{file} has been updated."),
            )
        }
    };
    let mut tool_use = json!({"type": "tool_use", "id": id});
    tool_use
        .as_object_mut()
        .unwrap()
        .extend(call.as_object().unwrap().clone());
    let assistant = json!({"role": "assistant", "content": [
        {"type": "text", "text": format!("Let me {} the {} next to see how the {} is handled.", r.pick(METHODS), r.pick(WORDS), r.pick(WORDS))},
        tool_use,
    ]});
    let user = json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": result}]});
    [assistant, user]
}

pub struct Transcript {
    /// The request body of the turn with ~`bytes` of history.
    pub first: Vec<u8>,
    /// The same history plus one more tool call and a ~5 KB result.
    pub next: Vec<u8>,
}

pub fn generate(bytes: usize, next_turn_bytes: usize) -> Transcript {
    let mut r = Rng::new(0x5eed_c0de);
    let mut messages = vec![json!({"role": "user", "content": [{"type": "text", "text":
        "The nightly build of the ingest service fails since the cache refactor. Priya (priya.raman@globex-systems.com) \
         reported it; please find the cause, fix it, and run the tests."}]})];
    let system = system_prompt(&mut r);
    let tools = tools();
    let body = |messages: &Vec<Value>| {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": true, "system": system, "tools": tools,
               "messages": messages, "metadata": {"user_id": "user_bench_session_0001"}})
        .to_string()
        .into_bytes()
    };
    let mut n = 0;
    let mut approx = body(&messages).len();
    while approx < bytes {
        let size = 2_000 + r.below(14_000);
        messages.extend(turn(&mut r, n, size));
        approx += size + 400;
        n += 1;
    }
    let first = body(&messages);
    messages.extend(turn(&mut r, n, next_turn_bytes));
    let next = body(&messages);
    Transcript { first, next }
}

#[derive(clap::Args, Debug)]
pub struct TranscriptArgs {
    #[arg(long, default_value_t = 1 << 20)]
    pub bytes: usize,
    #[arg(long, default_value_t = 5 * 1024)]
    pub next_turn_bytes: usize,
    /// Output directory for first.json and next.json.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn write(args: TranscriptArgs) -> Result<Value> {
    let t = generate(args.bytes, args.next_turn_bytes);
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("first.json"), &t.first)?;
    std::fs::write(args.out.join("next.json"), &t.next)?;
    Ok(json!({"first_bytes": t.first.len(), "next_bytes": t.next.len()}))
}
