//! The web UI in a real headless Chromium (Debian's `chromium` and `chromedriver`, driven
//! over WebDriver with fantoccini): chat with a scripted model, browse a table and page
//! through it, the console's live verdict and a refused run's rule, a run whose rows are
//! charted and exported, and hostile values that must render as text. Screenshots go to
//! `target/browser-screenshots/`.
//!
//! Under `CI=true` a missing browser is a failure; elsewhere the test says it skipped.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::process::{Child, Command};
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The XSS probe: if any of it ran, `window.__xss` would be set.
const HOSTILE: &str = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">";

/// Starts chromedriver on a free port and waits until it answers.
async fn chromedriver() -> (Child, String) {
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

async fn browser(driver: &str) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--no-first-run", "--disable-extensions"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a Chromium session")
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("saved");
}

async fn text_of(c: &Client, css: &str) -> String {
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
async fn wait_text(c: &Client, css: &str, want: &str) -> String {
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

async fn xss_ran(c: &Client) -> bool {
    c.execute("return window.__xss !== undefined;", vec![])
        .await
        .expect("script")
        .as_bool()
        .unwrap_or(true)
}

#[tokio::test]
async fn the_ui_in_headless_chromium() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Chromium and chromedriver are required in CI (apt-get install chromium chromium-driver)"
        );
        eprintln!("SKIPPED: install chromium and chromium-driver to run the browser test");
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    let (llm, _) = common::scripted(vec![
        json!({"choices": [{"message": {"tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "execute_query",
            "arguments": "{\"query\": \"SELECT d.name AS department, count(*) AS servers FROM servers s JOIN departments d ON d.id = s.department_id GROUP BY d.name ORDER BY servers DESC, d.name LIMIT 5\"}"}}]}}]}),
        json!({"choices": [{"message": {"content": format!("Five departments run 100 servers each. {HOSTILE}")}}]}),
    ])
    .await;
    let app = common::start_web(
        &["demo", "--listen", "127.0.0.1:0"],
        &[
            ("DBWARD_LLM_MODEL", "scripted"),
            ("DBWARD_LLM_BASE_URL", &llm),
        ],
        data.path(),
    )
    .await;
    let base = app.url.clone();
    let (_driver, driver_url) = chromedriver().await;
    let c = browser(&driver_url).await;

    // Chat: the question, the step with its SQL and rows, and the answer (hostile text in it
    // shown as text).
    c.goto(&format!("{base}/")).await.expect("chat page");
    let status = text_of(&c, "#status").await;
    assert!(status.contains("Ask a question"), "{status}");
    c.find(Locator::Css("#question"))
        .await
        .expect("question box")
        .send_keys("Which departments run the most servers?")
        .await
        .expect("typed");
    c.find(Locator::Css("#ask button"))
        .await
        .expect("Ask")
        .click()
        .await
        .expect("clicked");
    let answer = wait_text(&c, ".answer:not(.pending)", "Five departments").await;
    assert!(
        answer.contains("<script>window.__xss=1</script>"),
        "{answer}"
    );
    let step = text_of(&c, ".step").await;
    assert!(
        step.contains("execute_query") && step.contains("allowed"),
        "{step}"
    );
    assert!(step.contains("GROUP BY d.name"), "the SQL is shown: {step}");
    c.find(Locator::Css(".step .chart-toggle"))
        .await
        .expect("chart button")
        .click()
        .await
        .expect("clicked");
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css(".step svg.chart rect.bar"))
        .await
        .expect("a bar chart of the rows");
    shot(&c, "1-chat").await;
    assert!(
        !xss_ran(&c).await,
        "nothing from the model or the database ran"
    );

    // Browse: the tables, a table's columns, keys and rows; the next page.
    c.find(Locator::LinkText("Browse"))
        .await
        .expect("Browse tab")
        .click()
        .await
        .expect("clicked");
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::LinkText("servers"))
        .await
        .expect("servers listed")
        .click()
        .await
        .expect("clicked");
    let columns = text_of(&c, "#columns").await;
    assert!(
        columns.contains("hostname") && columns.contains("PK"),
        "{columns}"
    );
    let fks = text_of(&c, "#foreign-keys").await;
    assert!(fks.contains("departments"), "{fks}");
    c.find(Locator::Css("#next"))
        .await
        .expect("next page")
        .click()
        .await
        .expect("clicked");
    wait_text(&c, "#rows-heading", "Rows 51").await;
    let url = c.current_url().await.expect("url");
    assert!(url.as_str().contains("page=1"), "{url}");
    let first_id = text_of(&c, "table.result tbody tr td").await;
    assert_eq!(first_id, "51");
    shot(&c, "2-browse").await;

    // Console: the verdict while typing, a refused run with its rule.
    c.goto(&format!("{base}/console")).await.expect("console");
    let q = c.find(Locator::Css("#query")).await.expect("query box");
    q.send_keys("DELETE FROM servers").await.expect("typed");
    let verdict = wait_text(&c, "#verdict .verdict", "Refused").await;
    assert!(verdict.contains("statement.kind"), "{verdict}");
    shot(&c, "3-console-verdict").await;
    c.find(Locator::Css("#run"))
        .await
        .expect("Run")
        .click()
        .await
        .expect("clicked");
    let error = text_of(&c, "#error").await;
    assert!(
        error.contains("policy_refused") && error.contains("statement.kind"),
        "{error}"
    );
    shot(&c, "4-console-refused").await;

    // Console: a run whose rows include hostile text; the verdict says allowed; the rows
    // render as text, chart, and export as CSV.
    let q = c.find(Locator::Css("#query")).await.expect("query box");
    q.clear().await.expect("cleared");
    let sql = format!(
        "SELECT environment, count(*) AS servers, '{}' AS note FROM servers GROUP BY environment ORDER BY environment",
        HOSTILE.replace('\'', "''")
    );
    q.send_keys(&sql).await.expect("typed");
    wait_text(&c, "#verdict .verdict", "Allowed").await;
    c.find(Locator::Css("#run"))
        .await
        .expect("Run")
        .click()
        .await
        .expect("clicked");
    let meta = text_of(&c, "#result-meta").await;
    assert!(meta.contains("rows"), "{meta}");
    let note = text_of(&c, "table.result tbody tr td:nth-child(3)").await;
    assert_eq!(note, HOSTILE, "the hostile value is shown as text");
    assert!(!xss_ran(&c).await, "the hostile value did not run");
    c.find(Locator::Css(".chart-toggle"))
        .await
        .expect("chart")
        .click()
        .await
        .expect("clicked");
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css("svg.chart rect.bar"))
        .await
        .expect("bars");
    // The CSV the export button downloads, caught at URL.createObjectURL.
    let csv = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             HTMLAnchorElement.prototype.click = function () {}; \
             URL.createObjectURL = b => { b.text().then(done); return 'blob:caught'; }; \
             document.querySelector('.export').click();",
            vec![],
        )
        .await
        .expect("export");
    let csv = csv.as_str().unwrap_or_default().to_string();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "environment,servers,note", "{csv}");
    assert!(lines.len() >= 3, "{csv}");
    assert!(
        lines[1].ends_with(&format!("\"{}\"", HOSTILE.replace('"', "\"\""))),
        "quoted as CSV: {csv}"
    );
    shot(&c, "5-console-result").await;

    // Audit: this session's calls are there.
    c.goto(&format!("{base}/audit")).await.expect("audit");
    let audit = text_of(&c, "#audit").await;
    assert!(
        audit.contains("execute_query") && audit.contains("policy_refused"),
        "{audit}"
    );
    shot(&c, "6-audit").await;
    c.close().await.expect("closed");
}
