//! Process attribution: enrich what the redirect layer recorded (pid, uid,
//! comm) from /proc, and name the tool behind a request for the audit row.

use std::path::Path;

use http::HeaderMap;

use crate::origin::ClientIdentity;

/// Fills exe, cmdline, loginuid, user names and container id from `/proc/<pid>`.
/// Missing files (the process already exited) leave fields as they are.
pub fn enrich(identity: &mut ClientIdentity) {
    enrich_from(Path::new("/proc"), identity)
}

/// Like [`enrich`] with another procfs root (tests).
pub fn enrich_from(proc_root: &Path, identity: &mut ClientIdentity) {
    let Some(pid) = identity.pid else { return };
    let dir = proc_root.join(pid.to_string());
    if identity.exe.is_none() {
        identity.exe = std::fs::read_link(dir.join("exe")).ok().map(|p| {
            let s = p.to_string_lossy().into_owned();
            s.strip_suffix(" (deleted)").map(str::to_string).unwrap_or(s)
        });
    }
    if identity.cmdline.is_none() {
        identity.cmdline = std::fs::read(dir.join("cmdline"))
            .ok()
            .and_then(|raw| parse_cmdline(&raw));
    }
    if identity.comm.is_none() {
        identity.comm = std::fs::read_to_string(dir.join("comm"))
            .ok()
            .map(|s| s.trim_end().to_string());
    }
    if identity.uid.is_none() || identity.gid.is_none() {
        if let Ok(status) = std::fs::read_to_string(dir.join("status")) {
            let (uid, gid) = parse_status_ids(&status);
            identity.uid = identity.uid.or(uid);
            identity.gid = identity.gid.or(gid);
        }
    }
    if identity.login_uid.is_none() {
        identity.login_uid = std::fs::read_to_string(dir.join("loginuid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            // (uid_t)-1 means "not set" (daemons, containers).
            .filter(|uid| *uid != u32::MAX);
    }
    if identity.user.is_none() {
        // The human behind sudo when known, else the socket's uid.
        identity.user = identity.login_uid.or(identity.uid).and_then(user_name);
    }
    if identity.container_id.is_none() {
        identity.container_id = std::fs::read_to_string(dir.join("cgroup"))
            .ok()
            .and_then(|s| container_id(&s));
    }
    if let (Some(id), None) = (&identity.container_id, &identity.container_name) {
        let info = crate::containers::ContainerRecords::cached(id);
        identity.container_name = info.name;
        identity.container_image = info.image;
    }
}

/// NUL-separated argv joined with spaces; empty for kernel threads.
pub fn parse_cmdline(raw: &[u8]) -> Option<String> {
    let parts: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Real uid and gid from `/proc/<pid>/status`.
pub fn parse_status_ids(status: &str) -> (Option<u32>, Option<u32>) {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    (field("Uid:"), field("Gid:"))
}

/// Container id from `/proc/<pid>/cgroup`: docker-<id>.scope, cri-containerd-<id>.scope,
/// libpod-<id>.scope, or cgroupfs-style /docker/<id>.
pub fn container_id(cgroup: &str) -> Option<String> {
    for line in cgroup.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or(line);
        for segment in path.split('/').rev() {
            let name = segment.strip_suffix(".scope").unwrap_or(segment);
            for prefix in ["docker-", "cri-containerd-", "libpod-", "crio-"] {
                if let Some(id) = name.strip_prefix(prefix) {
                    if is_container_hex(id) {
                        return Some(id.to_string());
                    }
                }
            }
        }
        let segments: Vec<&str> = path.split('/').collect();
        for pair in segments.windows(2) {
            if matches!(pair[0], "docker" | "containerd" | "libpod") && is_container_hex(pair[1]) {
                return Some(pair[1].to_string());
            }
        }
    }
    None
}

fn is_container_hex(id: &str) -> bool {
    id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// User name for `uid` via the system's NSS (getpwuid_r).
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: zeroed passwd is a valid out-parameter; buffers outlive the call.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, pw_name points into buf and is NUL-terminated.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Claude Code's native binary, which also sends requests with a bare
/// `Bun/x` user agent (pre-connect HEAD, event logging): the npm package
/// (`@anthropic-ai/claude-code[-linux-x64]/…`) or the native installer's
/// `~/.local/share/claude/versions/<version>`.
fn is_claude_install(exe: &str) -> bool {
    exe.contains("/@anthropic-ai/claude-code") || exe.contains("/claude/versions/")
}

/// The audit id of the tool behind a request: `claude-code`, `codex`,
/// `gemini-cli`, `opencode`, `copilot-cli`, `cursor`, `aider`, `continue`,
/// `cline`, `python-sdk`, `node-sdk`, `curl` or `unknown`.
/// Tool-specific signals win over generic SDK ones (the tools use the SDKs).
pub fn identify_tool(identity: Option<&ClientIdentity>, headers: &HeaderMap) -> &'static str {
    let ua = header(headers, "user-agent");
    let ua_lower = ua.to_ascii_lowercase();
    let exe = identity.and_then(|i| i.exe.as_deref()).unwrap_or("");
    let exe_name = basename(exe).to_ascii_lowercase();
    let cmdline = identity
        .and_then(|i| i.cmdline.as_deref())
        .unwrap_or("")
        .to_ascii_lowercase();
    let comm = identity
        .and_then(|i| i.comm.as_deref())
        .unwrap_or("")
        .to_ascii_lowercase();
    let title = header(headers, "x-title").to_ascii_lowercase();
    let referer = header(headers, "http-referer").to_ascii_lowercase();

    if headers.contains_key("x-claude-code-session-id")
        || ua_lower.starts_with("claude-cli/")
        || ua_lower.contains("claude-code")
        || exe_name == "claude"
        || exe_name == "claude.exe"
        || is_claude_install(exe)
        || cmdline.contains("@anthropic-ai/claude-code")
    {
        return "claude-code";
    }
    let originator = header(headers, "originator").to_ascii_lowercase();
    if originator.starts_with("codex")
        || ua_lower.starts_with("codex")
        || exe_name == "codex"
        || exe_name.starts_with("codex-")
        || cmdline.contains("@openai/codex")
    {
        return "codex";
    }
    // Gemini CLI relaunches itself as `node … .bin/gemini …`: its user agent
    // (`GeminiCLI-tui/0.61.0/…`) and header name it either way.
    if ua_lower.starts_with("geminicli")
        || headers.contains_key("x-gemini-api-privileged-user-id")
        || cmdline.contains("@google/gemini-cli")
        || cmdline_program_is(&cmdline, "gemini")
    {
        return "gemini-cli";
    }
    if ua_lower.starts_with("opencode/") || exe_name == "opencode" || exe_name == "opencode.exe" {
        return "opencode";
    }
    if ua_lower.starts_with("copilot/")
        || ua_lower.contains("copilot-cli")
        || exe_name == "copilot"
        || cmdline.contains("@github/copilot")
    {
        return "copilot-cli";
    }
    if title == "cline" || referer.contains("cline.bot") || ua_lower.contains("cline") || cmdline.contains("claude-dev")
    {
        return "cline";
    }
    if title == "continue" || ua_lower.contains("continue/") || cmdline.contains("continue.continue") {
        return "continue";
    }
    if ua_lower.contains("cursor") || exe_name.contains("cursor") || comm.contains("cursor") {
        return "cursor";
    }
    if ua_lower.contains("litellm") || ua_lower.contains("aider") || exe_name == "aider" || cmdline.contains("aider") {
        return "aider";
    }
    if ua_lower.starts_with("curl/") || exe_name == "curl" {
        return "curl";
    }
    let lang = header(headers, "x-stainless-lang").to_ascii_lowercase();
    if lang == "python" || ua_lower.starts_with("anthropic/python") || ua_lower.starts_with("openai/python") {
        return "python-sdk";
    }
    if lang == "js" || ua_lower.starts_with("anthropic/js") || ua_lower.starts_with("openai/js") {
        return "node-sdk";
    }
    if exe_name.starts_with("python") {
        return "python-sdk";
    }
    if matches!(exe_name.as_str(), "node" | "bun" | "deno") {
        return "node-sdk";
    }
    "unknown"
}

/// Whether the script an interpreter runs (argv[1]) is `name`:
/// `node --max-old-space-size=… /…/.bin/gemini -p …`.
fn cmdline_program_is(cmdline: &str, name: &str) -> bool {
    cmdline
        .split_whitespace()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .is_some_and(|script| basename(script) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn process(exe: &str, cmdline: &str) -> ClientIdentity {
        ClientIdentity {
            exe: Some(exe.into()),
            cmdline: Some(cmdline.into()),
            ..Default::default()
        }
    }

    #[test]
    fn tools_from_headers() {
        let cases: &[(&[(&'static str, &'static str)], &str)] = &[
            (
                &[
                    ("user-agent", "claude-cli/2.1.113 (external, cli)"),
                    ("x-stainless-lang", "js"),
                ],
                "claude-code",
            ),
            (
                &[("x-claude-code-session-id", "abc"), ("user-agent", "Bun/1.2")],
                "claude-code",
            ),
            (&[("originator", "codex_exec"), ("user-agent", "reqwest")], "codex"),
            (&[("originator", "codex_cli_rs")], "codex"),
            (
                &[("user-agent", "litellm/1.50.0"), ("x-stainless-lang", "python")],
                "aider",
            ),
            (&[("x-title", "Cline"), ("x-stainless-lang", "js")], "cline"),
            (&[("x-title", "Continue")], "continue"),
            (&[("user-agent", "curl/8.5.0")], "curl"),
            (
                &[
                    ("x-stainless-lang", "python"),
                    ("user-agent", "Anthropic/Python 0.40.0"),
                ],
                "python-sdk",
            ),
            (&[("user-agent", "OpenAI/Python 1.55.0")], "python-sdk"),
            (
                &[("x-stainless-lang", "js"), ("user-agent", "OpenAI/JS 4.70.0")],
                "node-sdk",
            ),
            (&[("user-agent", "Mozilla/5.0")], "unknown"),
        ];
        for (pairs, want) in cases {
            let h = headers(pairs);
            assert_eq!(identify_tool(None, &h), *want, "headers {pairs:?}");
        }
    }

    #[test]
    fn gemini_cli_opencode_and_copilot_cli_are_named_by_headers_or_process() {
        let gemini = headers(&[(
            "user-agent",
            "GeminiCLI-tui/0.61.0/gemini-2.5-pro (linux; x64; terminal)",
        )]);
        assert_eq!(identify_tool(None, &gemini), "gemini-cli");
        let relaunched = process(
            "/usr/bin/node",
            "/usr/bin/node --max-old-space-size=12052 /opt/npm/node_modules/.bin/gemini --skip-trust -p hi",
        );
        assert_eq!(identify_tool(Some(&relaunched), &headers(&[])), "gemini-cli");
        let sdk_script = process("/usr/bin/node", "/usr/bin/node /home/me/gemini-notes.js");
        assert_eq!(identify_tool(Some(&sdk_script), &headers(&[])), "node-sdk");
        let opencode = headers(&[(
            "user-agent",
            "opencode/1.18.33 ai-sdk/provider-utils/4.0.40 runtime/bun/1.3.14",
        )]);
        assert_eq!(identify_tool(None, &opencode), "opencode");
        let opencode_exe = process("/opt/npm/node_modules/opencode-ai/bin/opencode", "opencode run hi");
        assert_eq!(identify_tool(Some(&opencode_exe), &headers(&[])), "opencode");
        let copilot = process(
            "/usr/bin/node",
            "node /opt/npm/node_modules/@github/copilot/index.js -p hi",
        );
        assert_eq!(identify_tool(Some(&copilot), &headers(&[])), "copilot-cli");
    }

    #[test]
    fn tools_from_process_when_headers_say_nothing() {
        let none = HeaderMap::new();
        assert_eq!(
            identify_tool(Some(&process("/home/a/.local/bin/claude", "claude -p hi")), &none),
            "claude-code"
        );
        assert_eq!(
            identify_tool(
                Some(&process(
                    "/usr/bin/node",
                    "node /usr/lib/node_modules/@openai/codex/bin/codex.js"
                )),
                &none
            ),
            "codex"
        );
        let bun = headers(&[("user-agent", "Bun/1.4.4")]);
        for exe in [
            "/opt/npm/node_modules/@anthropic-ai/claude-code/bin/claude.exe",
            "/opt/npm/node_modules/@anthropic-ai/claude-code-linux-x64/claude",
            "/home/a/.local/share/claude/versions/2.1.330",
        ] {
            assert_eq!(
                identify_tool(Some(&process(exe, "claude -p hi")), &bun),
                "claude-code",
                "{exe}"
            );
        }
        assert_eq!(
            identify_tool(Some(&process("/usr/bin/bun", "bun run app.ts")), &bun),
            "node-sdk"
        );
        assert_eq!(
            identify_tool(Some(&process("/usr/bin/python3.12", "python3 /usr/bin/aider")), &none),
            "aider"
        );
        assert_eq!(
            identify_tool(Some(&process("/opt/cursor/cursor", "cursor")), &none),
            "cursor"
        );
        assert_eq!(
            identify_tool(Some(&process("/usr/bin/curl", "curl https://x")), &none),
            "curl"
        );
        assert_eq!(
            identify_tool(Some(&process("/usr/bin/python3", "python3 app.py")), &none),
            "python-sdk"
        );
        assert_eq!(
            identify_tool(Some(&process("/usr/bin/node", "node app.js")), &none),
            "node-sdk"
        );
        assert_eq!(identify_tool(Some(&process("/usr/bin/wget", "wget")), &none), "unknown");
    }

    #[test]
    fn python_sdk_inside_aider_is_aider() {
        let h = headers(&[("x-stainless-lang", "python"), ("user-agent", "OpenAI/Python 1.55.0")]);
        assert_eq!(
            identify_tool(Some(&process("/usr/bin/python3", "python3 -m aider")), &h),
            "aider"
        );
    }

    #[test]
    fn container_ids_from_cgroup_paths() {
        let id = "4f1c2a9e8b7d6c5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f";
        for text in [
            format!("0::/system.slice/docker-{id}.scope\n"),
            format!("0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-{id}.scope\n"),
            format!("0::/machine.slice/libpod-{id}.scope/container\n"),
            format!("12:memory:/docker/{id}\n"),
        ] {
            assert_eq!(container_id(&text).as_deref(), Some(id), "{text}");
        }
        assert_eq!(container_id("0::/user.slice/user-1000.slice/session-2.scope\n"), None);
    }

    #[test]
    fn cmdline_and_status_parsing() {
        assert_eq!(
            parse_cmdline(b"curl\0-s\0https://x\0").as_deref(),
            Some("curl -s https://x")
        );
        assert_eq!(parse_cmdline(b""), None);
        let status = "Name:\tcurl\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\n";
        assert_eq!(parse_status_ids(status), (Some(1000), Some(100)));
    }

    #[test]
    fn enriches_the_current_process() {
        let mut id = ClientIdentity {
            pid: Some(std::process::id()),
            ..Default::default()
        };
        enrich(&mut id);
        let exe = std::env::current_exe().unwrap();
        assert_eq!(id.exe.as_deref(), Some(exe.to_str().unwrap()));
        assert!(id.cmdline.is_some());
        let uid = unsafe { libc::getuid() };
        assert_eq!(id.uid, Some(uid));
        if uid == 0 && id.login_uid.is_none() {
            assert_eq!(id.user.as_deref(), Some("root"));
        }
    }

    #[test]
    fn root_has_a_name() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
    }
}
