//! The web UI end to end: `promptwall up` in explicit mode with traffic
//! from curl to the fake provider, `promptwall ui` over its audit store, and
//! a real headless Chromium (Debian's package) loading each page. The
//! numbers on the pages must equal what `promptwall audit` says about the
//! same store; the Live stream must show a new request within a second;
//! nobody without the token sees anything. Screenshots of every page land
//! in `target/ui-screenshots/`.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use promptwall_e2e::paths::{promptwall_bin, target_dir};
use promptwall_e2e::process::{curl, curl_status};
use promptwall_e2e::{start_fake, Agent, AgentConfig};
use serde_json::{json, Value};

fn aws_key() -> String {
    format!("AKIA{}", "Q3EGUX7MZPW5KD4N")
}

/// A model name a local process chose, written to attack the page.
const HOSTILE_MODEL: &str = "<img src=x onerror=\"window.__xss=1\">";

/// Sends one Messages request; returns its status and request id.
fn send(agent: &Agent, text: &str) -> (u16, String) {
    send_as(agent, "claude-sonnet-4-5", text)
}

fn send_as(agent: &Agent, model: &str, text: &str) -> (u16, String) {
    let sent = agent.send_messages(model, text, false);
    (sent.status, sent.request_id)
}

/// curl as uid/gid 65534 (nobody, in no group): a local user outside the
/// `promptwall` group. (status, body).
fn curl_as_nobody(extra: &[String], url: &str) -> (u16, String) {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "curl",
        "-sS",
        "--max-time",
        "30",
    ])
    .args(["-w", "\n%{http_code}"])
    .args(extra)
    .arg(url)
    .env("NO_PROXY", "127.0.0.1");
    let out = promptwall_e2e::process::run_bounded(&mut cmd, Duration::from_secs(60));
    out.expect_success("setpriv curl");
    let (body, code) = out
        .stdout
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or(("", out.stdout.trim()));
    (code.parse().unwrap(), body.to_string())
}

/// `promptwall ui` on a free port; dropping it stops the server.
struct UiServer {
    child: Child,
    addr: SocketAddr,
    token: String,
}

impl UiServer {
    fn start(agent: &Agent) -> UiServer {
        let mut child = Command::new(promptwall_bin())
            .arg("--config")
            .arg(&agent.config_path)
            .args(["ui", "--listen", "127.0.0.1:0", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start promptwall ui");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("promptwall ui printed no URL within 30 s");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let url = v["url"].as_str().unwrap();
        let addr = url.trim_start_matches("http://").trim_end_matches('/').parse().unwrap();
        UiServer {
            child,
            addr,
            token: v["token"].as_str().unwrap().to_string(),
        }
    }

    fn page_url(&self, page: &str) -> String {
        format!("http://{}/?token={}#/{page}", self.addr, self.token)
    }

    fn api(&self, path: &str) -> Value {
        let out = curl(&[
            "-f",
            "-H",
            &format!("authorization: Bearer {}", self.token),
            &format!("http://{}{path}", self.addr),
        ]);
        out.expect_success(path);
        serde_json::from_str(&out.stdout).unwrap()
    }
}

impl Drop for UiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/chromium");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("PROMPTWALL_REQUIRE_CLIENTS").is_none(),
        "/usr/bin/chromium is missing; run `cargo xtask setup`"
    );
    eprintln!("skipping: /usr/bin/chromium is missing (cargo xtask setup installs it)");
    None
}

/// A real headless Chromium, driven over the DevTools protocol (a page's
/// WebSocket: `Page.navigate`, `Runtime.evaluate`, `Page.captureScreenshot`).
struct Chrome {
    child: Child,
    socket: std::cell::RefCell<tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>>,
    next_id: std::cell::Cell<u64>,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

impl Chrome {
    fn launch(chromium: &Path, shots: PathBuf) -> Chrome {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(chromium)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
            .args(["--remote-debugging-port=0", "--window-size=1280,900"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start chromium");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let browser_ws = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("chromium never said where DevTools listens");
        let port = browser_ws
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let targets: Value = serde_json::from_str(&curl(&[&format!("http://{port}/json/list")]).stdout).unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let (socket, _) =
            tungstenite::connect(page["webSocketDebuggerUrl"].as_str().unwrap()).expect("DevTools socket");
        Chrome {
            child,
            socket: socket.into(),
            next_id: 1.into(),
            shots,
            _profile: profile,
        }
    }

    /// One DevTools command; its result (events in between are skipped).
    fn call(&self, method: &str, params: Value) -> Value {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let mut socket = self.socket.borrow_mut();
        socket
            .send(tungstenite::Message::text(
                json!({"id": id, "method": method, "params": params}).to_string(),
            ))
            .unwrap();
        loop {
            let msg = socket.read().expect("DevTools socket closed");
            let Ok(text) = msg.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    fn eval(&self, js: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": js, "returnByValue": true}));
        r["result"]["value"].clone()
    }

    /// Opens `url`, waits for its page's data, saves a screenshot named
    /// `name`, and returns the DOM.
    fn open(&self, url: &str, name: &str) -> String {
        self.call("Page.navigate", json!({ "url": url }));
        let page = url.rsplit("#/").next().unwrap().split('/').next().unwrap();
        let ready = format!("document.querySelector(\"main[data-ready='yes'][data-page='{page}']\") !== null");
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.eval(&ready) != Value::Bool(true) {
            assert!(
                Instant::now() < deadline,
                "{url} never finished loading: {}",
                self.eval("location.href + ' ' + (document.querySelector('main') || {}).outerHTML")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.screenshot(name);
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .unwrap()
            .to_string()
    }

    fn screenshot(&self, name: &str) {
        use base64::Engine as _;
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number shown in the card with this id.
fn card(dom: &str, id: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no card {id} in {dom}"));
    let rest = &dom[at..];
    let n = rest.find("class=\"n\">").unwrap() + "class=\"n\">".len();
    rest[n..n + rest[n..].find('<').unwrap()].to_string()
}

/// Digits of a formatted number ("1,234" → 1234).
fn digits(s: &str) -> i64 {
    s.chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn pages_agree_with_the_cli_live_is_prompt_and_strangers_are_refused() {
    let Some(chromium) = chromium() else { return };
    let fake = start_fake(false);
    let agent = Agent::start(&AgentConfig::explicit_to(&fake));
    assert_eq!(send(&agent, "hello one").0, 200);
    assert_eq!(send(&agent, "hello two").0, 200);
    let (status, redacted_id) = send(&agent, "write to jane.roe@acme-corp.io");
    assert_eq!(status, 200);
    assert_eq!(send(&agent, &format!("key {}", aws_key())).0, 422);
    assert_eq!(send(&agent, &format!("again {}", aws_key())).0, 422);
    send_as(&agent, HOSTILE_MODEL, "hello from a hostile process");
    let rows = agent.wait_audit_rows(6);
    assert!(
        rows.iter().any(|r| r.model.as_deref() == Some(HOSTILE_MODEL)),
        "{rows:#?}"
    );

    let ui = UiServer::start(&agent);
    // A local user outside the group (nobody): refused without the token,
    // with a wrong one, or with an identity header from an address that is
    // not a trusted proxy; let in with the token. Root is let in as itself.
    for extra in [
        vec![],
        vec!["-H".to_string(), "cookie: pw_ui=guess".to_string()],
        vec!["-H".to_string(), "x-forwarded-user: mallory".to_string()],
    ] {
        let (status, body) = curl_as_nobody(&extra, &format!("http://{}/api/rows", ui.addr));
        assert_eq!(status, 401, "{extra:?}: {body}");
        assert!(!body.contains("claude"), "{body}");
    }
    let (status, _) = curl_as_nobody(&[], &format!("http://{}/", ui.addr));
    assert_eq!(status, 401);
    let bearer = vec!["-H".to_string(), format!("authorization: Bearer {}", ui.token)];
    let (status, body) = curl_as_nobody(&bearer, &format!("http://{}/api/me", ui.addr));
    assert_eq!(status, 200, "{body}");
    let (status, me) = curl_status(&[&format!("http://{}/api/me", ui.addr)]);
    assert_eq!(status, 200, "root, from this host, needs no token: {me}");
    assert!(me.contains("\"viewer\":\"root\""), "{me}");
    // ... but not through a page of another site: DNS rebinding (the
    // attacker's name re-pointed at 127.0.0.1, so root's browser sends it
    // here) and a cross-site request both need the token.
    let (status, body) = curl_status(&[
        "-H",
        &format!("host: attacker.example:{}", ui.addr.port()),
        &format!("http://{}/api/rows", ui.addr),
    ]);
    assert_eq!(status, 401, "a rebound name got root's view: {body}");
    assert!(!body.contains("claude"), "{body}");
    let (status, _) = curl_status(&[
        "-H",
        "sec-fetch-site: cross-site",
        &format!("http://{}/api/rows", ui.addr),
    ]);
    assert_eq!(status, 401, "a cross-site request got root's view");

    let shots = target_dir().join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let chrome = Chrome::launch(&chromium, shots);

    // Agents: the same numbers as `promptwall audit agents`.
    let cli: Vec<Value> = agent
        .cli(&["audit", "agents", "--json"])
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let cli_requests: i64 = cli.iter().map(|a| a["requests"].as_i64().unwrap()).sum();
    let dom = chrome.open(&ui.page_url("agents"), "agents");
    assert_eq!(digits(&card(&dom, "agents-requests")), cli_requests, "{cli:?}");
    assert!(dom.contains(">curl<"), "the tool is listed: {dom}");

    // Spend: tokens equal `promptwall audit top --by tool`.
    let top: Vec<Value> = agent
        .cli(&["audit", "top", "--by", "tool", "--json"])
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let input: i64 = top.iter().map(|r| r["input_tokens"].as_i64().unwrap()).sum();
    let dom = chrome.open(&ui.page_url("spend"), "spend");
    assert_eq!(digits(&card(&dom, "spend-input")), input);
    assert_eq!(digits(&card(&dom, "spend-requests")), rows.len() as i64);
    assert!(dom.contains("<svg"), "a chart, not a dump");
    assert!(dom.contains("&lt;img src=x"), "the hostile model name is shown as text");
    assert_eq!(
        chrome.eval("window.__xss === undefined"),
        Value::Bool(true),
        "it never ran"
    );

    // Protection: two blocks of one key make one repeated fingerprint.
    let dom = chrome.open(&ui.page_url("protection"), "protection");
    assert_eq!(digits(&card(&dom, "prot-blocked")), 2);
    assert_eq!(digits(&card(&dom, "prot-redacted")), 1);
    assert_eq!(digits(&card(&dom, "prot-repeated")), 1);
    assert!(!dom.contains(&aws_key()), "never the secret");

    // Request detail: identity and verdict of the redacted request, never
    // the address it had.
    let row = rows
        .iter()
        .find(|r| r.rest["request_id"] == redacted_id.as_str())
        .unwrap();
    let machine = row.rest["machine_id"].as_str().unwrap();
    let dom = chrome.open(&ui.page_url(&format!("request/{machine}/{}", row.id)), "request");
    assert!(dom.contains(&redacted_id), "{dom}");
    assert!(dom.contains("v-redacted"), "{dom}");
    assert!(dom.contains(">curl<"), "the tool: {dom}");
    if let Some(user) = &row.user {
        assert!(dom.contains(&format!(">{user}<")), "the user {user}: {dom}");
    }
    assert!(!dom.contains("jane.roe"), "{dom}");

    // Live: the backlog in the page, then a new request shown within 1 s
    // of its answer, by the page itself.
    chrome.open(&ui.page_url("live"), "live");
    let shown = || {
        chrome
            .eval("document.querySelectorAll('#live tbody tr').length")
            .as_u64()
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while shown() < rows.len() as u64 {
        assert!(
            Instant::now() < deadline,
            "the backlog never filled the page: {}",
            shown()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, new_id) = send(&agent, "hello live");
    let answered = Instant::now();
    let probe = format!("!!document.querySelector('#live tr[data-request-id=\"{new_id}\"]')");
    while chrome.eval(&probe) != Value::Bool(true) {
        assert!(
            answered.elapsed() < Duration::from_secs(5),
            "the new request never appeared on the Live page"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    let waited = answered.elapsed();
    assert!(waited < Duration::from_secs(1), "the Live page took {waited:?}");
    chrome.screenshot("live");
    let stream = LiveStream::open(&ui);
    stream.wait_for(|data| data.contains(&new_id), "the new row on the raw stream");

    let dom = chrome.open(&ui.page_url("setup"), "setup");
    assert!(dom.contains("Install on a new machine"), "{dom}");
    // The doctor's checks, run from the page: a row per check, each with its outcome.
    chrome.eval("document.querySelector('#run-doctor').click()");
    let deadline = Instant::now() + Duration::from_secs(120);
    while chrome.eval("document.querySelector('#doctor').dataset.state") == json!("running") {
        assert!(Instant::now() < deadline, "the checks never finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        chrome.eval("document.querySelector('#doctor').dataset.state"),
        json!("done"),
        "{}",
        chrome.eval("document.querySelector('#doctor').outerHTML")
    );
    let checks = chrome.eval(
        "[...document.querySelectorAll('#doctor tbody tr')].map(r => [...r.cells].slice(0, 2).map(c => c.textContent))",
    );
    let checks = checks.as_array().expect("check rows");
    let outcome = |id: &str| {
        checks
            .iter()
            .find(|r| r[0] == json!(id))
            .map(|r| r[1].as_str().unwrap().to_string())
    };
    assert_eq!(outcome("ebpf_attach").as_deref(), Some("skip"), "{checks:?}");
    assert!(outcome("agent").is_some(), "{checks:?}");
    chrome.screenshot("setup");
    assert_eq!(
        ui.api("/api/rows?limit=500")["rows"].as_array().unwrap().len(),
        rows.len() + 1
    );
}

/// `/api/live` read as a raw SSE stream, lines handed over as they come.
struct LiveStream {
    lines: mpsc::Receiver<String>,
    _socket: TcpStream,
}

impl LiveStream {
    fn open(ui: &UiServer) -> LiveStream {
        let mut socket = TcpStream::connect(ui.addr).unwrap();
        write!(
            socket,
            "GET /api/live?since=1h HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\naccept: text/event-stream\r\n\r\n",
            ui.addr, ui.token
        )
        .unwrap();
        let reader = socket.try_clone().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        LiveStream { lines, _socket: socket }
    }

    fn wait_for(&self, want: impl Fn(&str) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{what} never arrived on /api/live"));
            if let Some(data) = line.strip_prefix("data: ") {
                if want(data) {
                    return;
                }
            }
        }
    }
}
