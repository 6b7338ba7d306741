//! Headless Chromium over WebDriver: Debian's `chromium` driven by
//! `chromium-driver`'s `chromedriver` through fantoccini.
//!
//! `Browser::start` is `None` (the test says SKIPPED and passes) when
//! either is missing, unless `CI` is set: there it panics (`scripts/test.sh`
//! installs both). Every step is hang-guarded; screenshots go to
//! `target/test-artifacts/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

use super::daemon::free_port;
use super::wait::{guard, wait_for, wait_for_sync};

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Whether we run under CI (`CI` set and not false), where a missing tool fails.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `target/test-artifacts/`, created.
pub fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("target/test-artifacts");
    dir
}

/// `chromedriver` in its own process group, killed with everything it
/// started (the browser) when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start(bin: &Path, log: &Path) -> Driver {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let log = std::fs::File::create(log).expect("driver log");
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .process_group(0)
            .spawn()
            .expect("spawn chromedriver");
        wait_for_sync("chromedriver to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's process group.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// A WebDriver session in a fresh headless Chromium profile.
pub struct Browser {
    pub b: fantoccini::Client,
    _profile: tempfile::TempDir,
    driver: Option<Driver>,
}

impl Browser {
    /// A session, its driver's log in `dir`; `None` (printed, as `test`
    /// SKIPPED) without Chromium or chromedriver outside CI.
    pub async fn start(test: &str, dir: &Path) -> Option<Browser> {
        let tools = (
            which(&["chromedriver"]),
            which(&["chromium", "chromium-browser", "google-chrome"]),
        );
        let (Some(driver_bin), Some(chromium)) = tools else {
            let why = "chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver; scripts/test.sh does)";
            assert!(!in_ci(), "{why}");
            eprintln!("SKIPPED {test}: {why}");
            return None;
        };
        let driver = Driver::start(&driver_bin, &dir.join("chromedriver.log"));
        let profile = tempfile::tempdir().expect("profile dir");
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1280,1024",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let b = guard(
            "a WebDriver session",
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{}", driver.port)),
        )
        .await
        .unwrap_or_else(|e| panic!("WebDriver session: {e}; see {}", dir.display()));
        Some(Browser {
            b,
            _profile: profile,
            driver: Some(driver),
        })
    }

    /// Ends the session and the browser.
    pub async fn close(mut self) {
        let _ = self.b.clone().close().await;
        self.driver.take();
    }
}

/// Waits for the element at `css` and clicks it.
pub async fn click_link(b: &fantoccini::Client, css: &str) {
    let e = guard(css, b.wait().for_element(Locator::Css(css)))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    e.click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// Waits (hang guard only) until `script` returns true.
pub async fn wait_until(b: &fantoccini::Client, what: &str, script: &str) {
    wait_for(what, || async {
        b.execute(script, vec![])
            .await
            .is_ok_and(|v| v == json!(true))
    })
    .await;
}

/// Saves a screenshot as `target/test-artifacts/NAME.png`; its path.
pub async fn screenshot(b: &fantoccini::Client, name: &str) -> PathBuf {
    let png = guard("screenshot", b.screenshot())
        .await
        .expect("screenshot");
    let path = artifacts().join(format!("{name}.png"));
    std::fs::write(&path, &png).expect("write screenshot");
    path
}
