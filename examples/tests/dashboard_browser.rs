//! The dashboard (`/dashboard`, feature `dashboard`) in a real headless browser: Debian's
//! `chromium` driven through `chromedriver` (WebDriver), which the test starts on a free port
//! and stops. Signing in, a program's variables, an edit by the form that the next run uses, an
//! invalid edit that shows its error and changes nothing, a rollback, a `<script>` value shown
//! as text, the recent runs, a study's plots with one point per trial, and a write by another
//! process of a fleet appearing live. Screenshots of each view go to
//! `target/dashboard-screenshots/` (not in git).

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use dspex::eval::{Dataset, Example, metric_fn};
use dspex::prelude::*;
use dspex::serve::{Server, ServerHandle};
use dspex::tune::{SearchSpace, Study, Tuner};
use dspex::{Constraints, ProgramBuilder, RunningProgram, Step, VarType, VariableSpec};
use dspex_test_redis::RedisServer;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value as Json, json};
use tokio::process::{Child, Command};

const READ: &str = "browser-read";
const ADMIN: &str = "browser-admin";
/// A value that would run if the page ever parsed values as HTML.
const SCRIPT: &str = "<script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\">";
const TRIALS: usize = 6;
/// How long the page has to show something before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// The browser and its driver, from `CHROMIUM` and `CHROMEDRIVER` or Debian's paths.
fn browser_paths() -> (String, String) {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let driver =
        std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".to_owned());
    for path in [&chromium, &driver] {
        assert!(
            std::path::Path::new(path).exists(),
            "the dashboard's browser tests need Debian's chromium and chromedriver: \
             `apt-get install -y chromium chromium-driver` (or set CHROMIUM and CHROMEDRIVER); \
             {path} is missing"
        );
    }
    (chromium, driver)
}

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(path: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let status = http.get(format!("{url}/status")).send().await;
            if let Ok(status) = status
                && let Ok(body) = status.json::<Json>().await
                && body["value"]["ready"] == true
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver never got ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, url }
    }

    /// A headless browser session at a desktop's width.
    async fn browser(&self, chromium: &str) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
            }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a browser session")
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Where the test run's screenshots go: `target/dashboard-screenshots/`.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    // target/debug/deps/<test> -> target
    let target = exe.ancestors().nth(3).expect("the target directory");
    let dir = target.join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    dir
}

fn save(name: &str, png: &[u8]) {
    std::fs::write(screenshot_dir().join(name), png).expect("the screenshot is written");
}

/// The text of the first element matching `css` (also when hidden), or `None`.
async fn text_of(client: &Client, css: &str) -> Option<String> {
    let text = client
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            vec![json!(css)],
        )
        .await
        .expect("the script runs");
    text.as_str().map(str::to_owned)
}

async fn count_of(client: &Client, css: &str) -> u64 {
    client
        .execute(
            "return document.querySelectorAll(arguments[0]).length;",
            vec![json!(css)],
        )
        .await
        .expect("the script runs")
        .as_u64()
        .expect("a count")
}

/// Waits until the element at `css` has the text `wanted`.
async fn until_text(client: &Client, css: &str, wanted: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = text_of(client, css).await;
        if text.as_deref() == Some(wanted) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css} shows {text:?}, not {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signs in on the sign-in page with `token`, by the keyboard, and waits for the programs.
async fn sign_in(client: &Client, base: &str, token: &str, screenshot: Option<&str>) {
    client
        .goto(&format!("{base}/dashboard"))
        .await
        .expect("the page loads");
    let field = client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("#token"))
        .await
        .expect("the sign-in form");
    if let Some(name) = screenshot {
        save(name, &client.screenshot().await.expect("a screenshot"));
    }
    field
        .send_keys(&(token.to_owned() + &char::from(Key::Enter).to_string()))
        .await
        .expect("typing the token");
    let shown = client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("article.variable output.value"))
        .await;
    if shown.is_err() {
        let page = text_of(client, "body").await;
        let url = client.current_url().await.map(|u| u.to_string());
        panic!("the dashboard never showed the variables; at {url:?} the page says {page:?}");
    }
}

/// Answers with its variable `x` and its `note`.
struct Guess;

impl Module for Guess {
    async fn forward(&self, _: &Fields, params: &Params) -> Result<Fields> {
        Ok(Fields::from([
            ("answer", params.get::<f64>("x")?.to_string()),
            ("note", params.get::<String>("note")?),
        ]))
    }
}

async fn guesser() -> RunningProgram {
    ProgramBuilder::new("guesser")
        .signature("question -> answer, note")
        .variable(
            VariableSpec::new("x", VarType::Float, 0.5)
                .with_constraints(Constraints::range(0.0, 1.0)),
        )
        .variable(VariableSpec::new("note", VarType::String, SCRIPT))
        .step(
            Step::native("guess", "question -> answer, note", Guess)
                .bind("x")
                .bind("note"),
        )
        .build()
        .expect("the program is valid")
        .start()
        .await
        .expect("the program starts")
}

/// A study of `TRIALS` trials over `x` (best near 0.3).
async fn tuned_study() -> Study {
    let program = guesser().await;
    let study = Study::memory();
    let dev = Dataset::from_examples([Example::new().with_input("question", "?")]);
    let metric = metric_fn("near_0_3", |_: &Example, p: &Fields| {
        let answer = p.get::<&str>("answer")?.parse::<f64>().unwrap_or(1.0);
        Ok::<_, dspex::Error>(1.0 - (answer - 0.3).abs())
    });
    Tuner::new(SearchSpace::of(&program).expect("a space"), metric)
        .trials(TRIALS)
        .seed(3)
        .study(study.clone())
        .run(&program, &dev)
        .await
        .expect("the study runs");
    study
}

async fn serve() -> (ServerHandle, String) {
    let handle = Server::builder()
        .program("guess", guesser().await)
        .study("guessing", tuned_study().await)
        .token(READ)
        .admin_token(ADMIN)
        .build()
        .expect("the server's options")
        .bind("127.0.0.1:0")
        .await
        .expect("the server binds");
    let base = format!("http://{}", handle.local_addr());
    (handle, base)
}

async fn run_answer(http: &reqwest::Client, base: &str) -> Json {
    let url = format!("{base}/v1/programs/guess/run");
    support::run(http, url, READ, json!({"question": "?"})).await["outputs"]["answer"].clone()
}

async fn variable(http: &reqwest::Client, base: &str, var: &str) -> Json {
    let body: Json = http
        .get(format!("{base}/v1/programs/guess/variables"))
        .bearer_auth(READ)
        .send()
        .await
        .expect("the variables answer")
        .json()
        .await
        .expect("JSON");
    body[var].clone()
}

const X_VALUE: &str = r#"article[data-var="x"] output.value"#;
const X_INPUT: &str = "#edit-guess-x";
const X_ERROR: &str = "#error-guess-x";

#[tokio::test]
async fn the_dashboard_shows_edits_rolls_back_and_plots_in_a_real_browser() {
    let (chromium, driver_path) = browser_paths();
    let (handle, base) = serve().await;
    let driver = Driver::start(&driver_path).await;
    let client = driver.browser(&chromium).await;
    let http = reqwest::Client::new();

    sign_in(&client, &base, ADMIN, Some("login.png")).await;

    // The program, its signature and its variables.
    until_text(&client, X_VALUE, "0.5").await;
    assert_eq!(
        text_of(&client, ".program code.signature").await.as_deref(),
        Some("question: str -> answer: str, note: str")
    );
    // A `<script>` value is shown as text, and nothing of it ran.
    until_text(&client, r#"article[data-var="note"] output.value"#, SCRIPT).await;
    let ran = client
        .execute("return typeof window.pwned;", vec![])
        .await
        .expect("the script runs");
    assert_eq!(ran, json!("undefined"), "the value's markup never ran");
    assert_eq!(count_of(&client, "main script, main img").await, 0);

    // An edit by the form (typed, then Enter) is what the next run uses.
    let input = client
        .find(Locator::Css(X_INPUT))
        .await
        .expect("the edit field");
    input.clear().await.expect("clearing the field");
    input
        .send_keys(&("0.9".to_owned() + &char::from(Key::Enter).to_string()))
        .await
        .expect("typing");
    until_text(&client, X_VALUE, "0.9").await;
    assert_eq!(run_answer(&http, &base).await, json!("0.9"));
    assert_eq!(variable(&http, &base, "x").await["version"], 2);

    // The run shows in the recent runs, live, with the parameter it used.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !text_of(&client, "details.run td.params")
        .await
        .is_some_and(|params| params.contains("0.9"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run never showed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An invalid edit shows the server's error next to the field and changes nothing.
    let input = client
        .find(Locator::Css(X_INPUT))
        .await
        .expect("the edit field");
    input.clear().await.expect("clearing the field");
    input.send_keys("7").await.expect("typing");
    client
        .find(Locator::Css(
            r#"form[data-key="guess.x"] button[type="submit"]"#,
        ))
        .await
        .expect("the save button")
        .click()
        .await
        .expect("saving");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let error = loop {
        let error = text_of(&client, X_ERROR).await.unwrap_or_default();
        if !error.is_empty() {
            break error;
        }
        assert!(tokio::time::Instant::now() < deadline, "no error was shown");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(error.contains('x') && error.contains("max"), "{error}");
    assert_eq!(text_of(&client, X_VALUE).await.as_deref(), Some("0.9"));
    let x = variable(&http, &base, "x").await;
    assert_eq!(
        (x["value"].clone(), x["version"].clone()),
        (json!(0.9), json!(2))
    );
    save(
        "programs.png",
        &client
            .find(Locator::Css("#programs"))
            .await
            .expect("the section")
            .screenshot()
            .await
            .expect("a screenshot"),
    );

    // A rollback to version 1, by its button in the history.
    client
        .find(Locator::Css(
            r#"article[data-var="x"] details.history summary"#,
        ))
        .await
        .expect("the history")
        .click()
        .await
        .expect("opening the history");
    client
        .find(Locator::Css(
            r#"article[data-var="x"] tr[data-version="1"] button.rollback"#,
        ))
        .await
        .expect("the rollback button")
        .click()
        .await
        .expect("rolling back");
    until_text(&client, X_VALUE, "0.5").await;
    let x = variable(&http, &base, "x").await;
    assert_eq!(
        (x["value"].clone(), x["version"].clone()),
        (json!(0.5), json!(3))
    );
    assert_eq!(run_answer(&http, &base).await, json!("0.5"));

    // The study: one point per trial on the score plot and on each variable's plot.
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(".study .score-plot svg"))
        .await
        .expect("the study's plot");
    assert_eq!(
        count_of(&client, ".study .score-plot svg circle").await,
        TRIALS as u64
    );
    assert_eq!(
        count_of(&client, r#".study .variable-plot[data-var="x"] svg circle"#).await,
        TRIALS as u64
    );
    assert!(
        text_of(&client, ".study .best-trial")
            .await
            .is_some_and(|t| t.starts_with("Best so far: trial")),
        "the best trial is named"
    );

    // Screenshots of each view, at a desktop's width and a phone's.
    client
        .execute(
            "document.querySelectorAll('details').forEach(d => d.open = true);",
            vec![],
        )
        .await
        .expect("the script runs");
    for (section, file) in [("#runs", "runs.png"), ("#studies", "studies.png")] {
        let png = client
            .find(Locator::Css(section))
            .await
            .expect("the section")
            .screenshot()
            .await
            .expect("a screenshot");
        save(file, &png);
    }
    client
        .set_window_size(390, 844)
        .await
        .expect("a phone's width");
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .expect("the script runs");
    assert!(
        overflow.as_i64().is_some_and(|o| o <= 0),
        "the page fits a phone's width: {overflow}"
    );
    client
        .execute("window.scrollTo(0, 0);", vec![])
        .await
        .expect("the script runs");
    save(
        "phone.png",
        &client.screenshot().await.expect("a screenshot"),
    );

    client.close().await.expect("the browser closes");
    driver.stop().await;
    handle.shutdown().await.expect("the server stops");
}

#[tokio::test]
async fn a_write_by_another_process_of_the_fleet_appears_live() {
    let (chromium, driver_path) = browser_paths();
    let redis = RedisServer::start().expect("redis-server starts");
    let session = format!("dashboard-fleet-{}", std::process::id());
    let (watched, a) = support::start(&redis.url(), &session).await;
    let (writer, b) = support::start(&redis.url(), &session).await;
    let driver = Driver::start(&driver_path).await;
    let client = driver.browser(&chromium).await;

    sign_in(&client, &a, support::READ, None).await;
    let temperature = r#"article[data-var="temperature"] output.value"#;
    until_text(&client, temperature, "0.2").await;
    // The page's live stream is open before the write.
    until_text(&client, "#live", "live").await;

    let response = reqwest::Client::new()
        .put(format!("{b}/v1/programs/qa/variables/temperature"))
        .bearer_auth(support::ADMIN)
        .json(&json!({"value": 0.7}))
        .send()
        .await
        .expect("the PUT answers");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    // No reload: the page of the first process shows the second one's write.
    until_text(&client, temperature, "0.7").await;
    until_text(&client, r#"article[data-var="temperature"] .version"#, "2").await;

    client.close().await.expect("the browser closes");
    driver.stop().await;
    support::terminate(watched).await;
    support::terminate(writer).await;
}
