//! Real headless Chromium (Debian's `chromium`, installed by `scripts/prepare/monitoring-tools`)
//! for the dashboard tests of both packages: load a page, let its scripts run on virtual
//! time, and return what Chromium prints (`--dump-dom`) or writes (`--screenshot`).

#![allow(dead_code)] // each behaviour module uses its own part of this module

use std::process::Stdio;

/// Run Chromium on `args` (a URL and `--dump-dom` or `--screenshot=FILE`); its stdout.
pub fn chromium(args: &[String]) -> Vec<u8> {
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=8000",
            "--window-size=1280,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("chromium must be installed (scripts/prepare/monitoring-tools)");
    assert!(out.status.success(), "chromium failed");
    out.stdout
}

/// The page at `url` after its scripts ran, as HTML.
pub async fn dom(url: String) -> String {
    tokio::task::spawn_blocking(move || {
        String::from_utf8(chromium(&["--dump-dom".into(), url])).unwrap()
    })
    .await
    .unwrap()
}

/// A screenshot of `url` saved as `file` (a PNG); its bytes.
pub async fn screenshot(url: String, file: std::path::PathBuf) -> Vec<u8> {
    let f = file.clone();
    tokio::task::spawn_blocking(move || chromium(&[format!("--screenshot={}", f.display()), url]))
        .await
        .unwrap();
    let png = std::fs::read(&file).expect("screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    png
}

/// The number in the `data-value` attribute of the element with id `id` in `dom`.
pub fn data_value(dom: &str, id: &str) -> f64 {
    let re = regex::Regex::new(&format!(r#"id="{id}" data-value="([^"]*)""#)).unwrap();
    re.captures(dom)
        .unwrap_or_else(|| panic!("#{id} not on the page"))[1]
        .parse()
        .unwrap_or_else(|_| panic!("#{id} has no number"))
}
