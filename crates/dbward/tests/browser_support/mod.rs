//! What the browser tests share: chromedriver and a headless Chromium session
//! (fantoccini over WebDriver), screenshots to `target/browser-screenshots/`, waiting for
//! text, axe-core (vendored in `tests/assets`) and the layout check at 1,366 and 390 px.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::process::{Child, Command};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The XSS probe: if any of it ran, `window.__xss` would be set.
pub const HOSTILE: &str = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">";

/// Starts chromedriver on a free port and waits until it answers.
pub async fn chromedriver() -> (Child, String) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (child, url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start listening");
}

pub async fn browser(driver: &str) -> Client {
    browser_with(driver, &[]).await
}

pub async fn browser_with(driver: &str, extra: &[&str]) -> Client {
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--no-first-run",
        "--disable-extensions",
    ];
    args.extend_from_slice(extra);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": CHROMIUM, "args": args }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a Chromium session")
}

pub fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

pub async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("saved");
}

pub async fn text_of(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} appears: {e}"))
        .text()
        .await
        .expect("text")
}

/// Waits until the element matching `css` has text containing `want`.
pub async fn wait_text(c: &Client, css: &str, want: &str) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            last = e.text().await.unwrap_or_default();
            if last.contains(want) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never showed {want:?}; last: {last:?}");
}

/// axe-core, injected into each page by WebDriver (the page's CSP does not apply to it).
pub const AXE: &str = include_str!("../assets/axe.min.js");

/// Runs axe-core on the current page; panics listing any serious or critical violation.
pub async fn assert_accessible(c: &Client, page: &str) {
    c.execute(AXE, vec![]).await.expect("axe-core loads");
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             axe.run(document, { resultTypes: ['violations'] }).then(r => done(r.violations \
               .filter(v => v.impact === 'serious' || v.impact === 'critical') \
               .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')))) \
               .catch(e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .expect("axe runs");
    let found: Vec<String> = serde_json::from_value(found).expect("a list");
    assert!(found.is_empty(), "{page}: {found:#?}");
}

/// At 1,366 and at 390 px wide: no horizontal scrolling of the page itself (tables
/// scroll inside their boxes), and no serious axe-core violation; a screenshot of each.
pub async fn check_layouts(c: &Client, page: &str) {
    for width in [1366u32, 390] {
        c.set_window_size(width, 900).await.expect("resized");
        tokio::time::sleep(Duration::from_millis(150)).await;
        let overflow = c
            .execute(
                "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];",
                vec![],
            )
            .await
            .expect("widths");
        let (scroll, client) = (
            overflow[0].as_u64().unwrap_or(0),
            overflow[1].as_u64().unwrap_or(0),
        );
        assert!(
            scroll <= client,
            "{page} at {width} px scrolls sideways: {scroll} > {client}"
        );
        shot(c, &format!("{page}-{width}")).await;
    }
    assert_accessible(c, page).await;
    c.set_window_size(1366, 900).await.expect("resized");
}

/// Replaces the console editor's text by typing `sql` into it.
pub async fn type_sql(c: &Client, sql: &str) {
    c.execute("window.dbwardEditor.setValue('');", vec![])
        .await
        .expect("cleared");
    let editor = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".cm-content"))
        .await
        .expect("the editor");
    editor.click().await.expect("focused");
    editor.send_keys(sql).await.expect("typed");
    let typed = c
        .execute("return window.dbwardEditor.getValue();", vec![])
        .await
        .expect("value");
    assert_eq!(typed.as_str(), Some(sql), "the editor holds what was typed");
    c.execute(
        "document.querySelectorAll('.cm-tooltip-autocomplete').forEach(t => t.remove());",
        vec![],
    )
    .await
    .expect("completion closed");
}

pub async fn xss_ran(c: &Client) -> bool {
    c.execute("return window.__xss !== undefined;", vec![])
        .await
        .expect("script")
        .as_bool()
        .unwrap_or(true)
}

/// Whether the browser test can run here; under `CI=true` it must.
pub fn browser_present() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "Chromium and chromedriver are required in CI (apt-get install chromium chromium-driver)"
    );
    eprintln!("SKIPPED: install chromium and chromium-driver to run the browser test");
    false
}
