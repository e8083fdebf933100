//! `promptwall doctor` runs clients as root; `cd /tmp; sudo promptwall doctor`
//! must not run anything another user planted in that directory, in a
//! relative PATH entry or in a HOME that sudo kept.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn on_path(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(tool))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn plant_script(path: &Path, marker: &Path) {
    std::fs::write(path, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn doctor_runs_nothing_planted_in_the_callers_directory_path_or_home() {
    let tmp = tempfile::tempdir().unwrap();
    let markers = tmp.path().join("markers");
    let cwd = tmp.path().join("shared-tmp");
    std::fs::create_dir_all(&markers).unwrap();
    std::fs::create_dir_all(cwd.join("evil-bin")).unwrap();

    // Python imports ssl (and socket) from the script directory, which for
    // `python3 -c` is the current directory.
    for module in ["ssl", "socket"] {
        std::fs::write(
            cwd.join(format!("{module}.py")),
            format!(
                "open({:?}, 'w').close()\n",
                markers.join(format!("{module}.py")).display()
            ),
        )
        .unwrap();
    }
    // A relative PATH entry resolves against the current directory.
    for tool in ["curl", "node", "python3", "nft", "systemctl"] {
        plant_script(&cwd.join("evil-bin").join(tool), &markers.join(tool));
    }
    // sudo may keep the caller's HOME; a .curlrc there can name files to write.
    std::fs::write(
        cwd.join(".curlrc"),
        format!("stderr = \"{}\"\n", markers.join("curlrc").display()),
    )
    .unwrap();

    // Something to "handshake" with: accepts and hangs up, so every probe fails fast.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });

    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\nadmin_socket = \"{}\"\n[ca]\ndir = \"{}\"\n",
            tmp.path().join("admin.sock").display(),
            tmp.path().join("ca").display()
        ),
    )
    .unwrap();
    let real_python = on_path("python3");
    // Once with a relative PATH entry holding planted tools, once without
    // (so the real curl and python3 meet the planted .curlrc and ssl.py).
    let run = |path_var: &str| -> serde_json::Value {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_promptwall"));
        cmd.current_dir(&cwd)
            .env_clear()
            .env("PATH", path_var)
            .env("HOME", &cwd)
            .arg("--config")
            .arg(&config)
            .args(["doctor", "--json", "--no-ebpf", "--server-name", "api.anthropic.com"])
            .arg("--proxy")
            .arg(addr.to_string())
            .args(["--python", "python3"]);
        // An absolute interpreter too: isolated mode must hold for it as well.
        if let Some(py) = &real_python {
            cmd.arg("--python").arg(py);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "doctor --json ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let ran: Vec<String> = std::fs::read_dir(&markers)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            ran.is_empty(),
            "with PATH={path_var}, planted code ran as doctor's child: {ran:?}\n{doc:#}"
        );
        doc
    };
    run("evil-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let doc = run("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");

    // The probes did run (with the real tools), so the absence of markers means something.
    let outcome = |id: &str| {
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["outcome"].as_str().unwrap_or("").to_string())
    };
    if let Some(py) = &real_python {
        let id = format!("tls_python_ssl@{}", py.display());
        assert_eq!(outcome(&id).as_deref(), Some("fail"), "{id} must have run: {doc:#}");
        assert_eq!(outcome("tls_python_ssl").as_deref(), Some("fail"), "{doc:#}");
    }
    if on_path("curl").is_some() {
        assert_eq!(outcome("tls_curl").as_deref(), Some("fail"), "{doc:#}");
    }
}
