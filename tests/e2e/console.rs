//! The web console (issue 19) in a real browser: headless Chromium driven through
//! chromedriver (WebDriver, `fantoccini`), against the real binary with `[server.api]`.
//! One focused test: sign in with acme's token, bind a phone in the form, see the company
//! file changed on disk, place a SIPp call and see it in the live call log (ringing the new
//! phone, answered, ended), then the hunt-order, office-hours and chart pages render.
//! Screenshots of each page are saved in the test's directory; with
//! `HOTLINE_SCREENSHOTS=docs` they are also written to `docs/console-*.png`.
//!
//! Needs `chromium` and `chromium-driver` (Debian); `tests/run.sh` installs them.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hotline_e2e::*;

use crate::api::{setup, ACME_NUMBER};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
}

async fn wait_text(
    c: &Client,
    css: &str,
    needle: &str,
    timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        // textContent, not the rendered text: a page's element may be on a hidden tab.
        let v = c
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
                vec![serde_json::Value::from(css)],
            )
            .await;
        if let Ok(v) = v {
            last = v.as_str().unwrap_or_default().to_string();
            if last.contains(needle) {
                return Ok(last);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "{css}: {needle:?} not seen in {timeout:?}; last text: {last:?}"
    ))
}

#[test]
fn console_in_headless_chromium_binds_a_phone_and_shows_the_call_live() {
    let started = Instant::now();
    let (Some(browser), true) = (
        chromium(),
        std::path::Path::new("/usr/bin/chromedriver").is_file(),
    ) else {
        panic!("chromium / chromedriver missing: bash tests/run.sh installs chromium and chromium-driver");
    };
    let phone = start(Sipp::uas("uas_answer").timeout(Duration::from_secs(60)));
    let s = setup(phone.addr());
    let port = match hotline_testkit::ports::free_port() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let driver = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let _driver = match driver {
        Ok(d) => Driver(d),
        Err(e) => panic!("chromedriver: {e}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hotline_testkit::ports::is_bound(port, true) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let shots = s.hotline.dir().join("screenshots");
    let _ = std::fs::create_dir_all(&shots);
    let to_docs = std::env::var("HOTLINE_SCREENSHOTS").is_ok_and(|v| v == "docs");
    let docs = Some(hotline_testkit::paths::workspace_root().join("docs"));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("{e}"),
    };
    let sip = s.hotline.sip_addr();
    let result: Result<(), String> = rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": browser,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--lang=zh-CN"]
            }),
        );
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .map_err(|e| format!("WebDriver session: {e}"))?;
        let shot = |name: &'static str| {
            let c = c.clone();
            let shots = shots.clone();
            let docs = docs.clone();
            async move {
                let png = c.screenshot().await.map_err(|e| e.to_string())?;
                let _ = std::fs::write(shots.join(name), &png);
                if let (true, Some(d)) = (to_docs, docs) {
                    std::fs::write(d.join(name), &png).map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            }
        };
        let e = |what: &'static str| move |err: fantoccini::error::CmdError| format!("{what}: {err}");
        let w = Duration::from_secs(10);
        c.goto(&format!("http://{}/", s.api)).await.map_err(|x| x.to_string())?;
        c.find(Locator::Css("#token")).await.map_err(e("token field"))?.send_keys(&s.acme).await.map_err(e("type token"))?;
        c.find(Locator::Css("#login")).await.map_err(e("login"))?.click().await.map_err(e("click login"))?;
        c.wait().at_most(w).for_element(Locator::Css("#phones tr[data-target='acme-desk']")).await.map_err(e("phones after login"))?;
        wait_text(&c, "#live-state", "live", w).await?;

        // Bind a phone.
        c.find(Locator::Css("#bind-name")).await.map_err(e("bind-name"))?.send_keys("acme-mobile").await.map_err(e("type"))?;
        c.find(Locator::Css("#bind-phone")).await.map_err(e("bind-phone"))?.send_keys("13900001111").await.map_err(e("type"))?;
        c.find(Locator::Css("#bind-ring")).await.map_err(e("bind-ring"))?.send_keys("10s").await.map_err(e("type"))?;
        c.find(Locator::Css("#bind-submit")).await.map_err(e("bind-submit"))?.click().await.map_err(e("click bind"))?;
        c.wait().at_most(w).for_element(Locator::Css("#phones tr[data-target='acme-mobile']")).await.map_err(e("bound phone row"))?;
        wait_text(&c, "#status", "saved", w).await?;
        let file = s.acme_text();
        if !file.contains("[targets.acme-mobile]\nnumber = \"13900001111\"") || !file.contains("# the front desk") {
            return Err(format!("the company file on disk:\n{file}"));
        }
        shot("console-phones.png").await?;

        // A call while the live log is open.
        c.find(Locator::Css("#tabs button[data-tab='live']")).await.map_err(e("live tab"))?.click().await.map_err(e("click"))?;
        let r = tokio::task::spawn_blocking(move || {
            Sipp::uac("uac", sip).service(ACME_NUMBER).calls(1).duration_ms(300).timeout(Duration::from_secs(15)).run()
        })
        .await
        .map_err(|x| x.to_string())?
        .map_err(|x| x.to_string())?;
        if r.successful() != 1 {
            return Err(format!("the call:\n{}", r.summary()));
        }
        let row = wait_text(&c, "#live tbody tr.answered", "acme-mobile", w).await?;
        if !row.contains(ACME_NUMBER) {
            return Err(format!("answered row: {row}"));
        }
        wait_text(&c, "#live tbody tr.ended", "answered", w).await?;
        wait_text(&c, "#recent tbody", "acme-mobile", w).await?;
        shot("console-live.png").await?;

        c.find(Locator::Css("#tabs button[data-tab='hunt']")).await.map_err(e("hunt tab"))?.click().await.map_err(e("click"))?;
        wait_text(&c, "#plans", "acme-mobile", w).await?;
        shot("console-hunt.png").await?;
        c.find(Locator::Css("#tabs button[data-tab='hours']")).await.map_err(e("hours tab"))?.click().await.map_err(e("click"))?;
        // Paint Monday 09:00-12:00 and save: a rule in the file.
        for h in 9..12 {
            c.find(Locator::Css(&format!("#week td[data-day='mon'][data-hour='{h}']")))
                .await
                .map_err(e("grid cell"))?
                .click()
                .await
                .map_err(e("click cell"))?;
        }
        c.find(Locator::Css("#hours-save")).await.map_err(e("hours-save"))?.click().await.map_err(e("click save"))?;
        wait_text(&c, "#status", "office hours", w).await?;
        wait_text(&c, "#status", "saved", w).await?;
        let file = s.acme_text();
        if !file.contains("name = \"office-hours-1\"\nweekdays = [\"mon\"]\ntime = [\"09:00-12:00\"]") {
            return Err(format!("office hours not in the file:\n{file}"));
        }
        shot("console-hours.png").await?;
        c.find(Locator::Css("#tabs button[data-tab='lists']"))
            .await
            .map_err(e("lists tab"))?
            .click()
            .await
            .map_err(e("click"))?;
        c.find(Locator::Css("#blacklist"))
            .await
            .map_err(e("blacklist"))?
            .send_keys("1700\n0898\n13811112222")
            .await
            .map_err(e("type"))?;
        shot("console-lists.png").await?;
        c.find(Locator::Css("#tabs button[data-tab='charts']")).await.map_err(e("charts tab"))?.click().await.map_err(e("click"))?;
        wait_text(&c, "#totals", "1 calls, 1 answered", w).await?;
        shot("console-charts.png").await?;
        c.close().await.map_err(|x| x.to_string())?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\n--- hotline ---\n{}", s.hotline.stderr_tail(20));
    }
    drop(phone);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the browser test took {:?}",
        started.elapsed()
    );
}
