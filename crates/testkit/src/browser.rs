//! Headless Chromium for end-to-end tests.
//!
//! [`Browser::launch`] starts Debian's Chromium (`/usr/bin/chromium`, or the
//! `CHROMIUM` environment variable, or `chromium` on `PATH`) with a fixed,
//! short list of flags ([`CHROMIUM_FLAGS`]) and a fresh profile directory,
//! and opens one tab at 1280×900. The helpers — [`Browser::goto`],
//! [`Browser::fill`], [`Browser::click`],
//! [`Browser::click_and_wait_for_navigation`], [`Browser::wait_for`],
//! [`Browser::text_of`], [`Browser::current_url`], [`Browser::screenshot`]
//! and a few more — wait up to [`TIMEOUT`] and fail with a message that
//! names the step, the page's URL and the start of its text, after saving a
//! `failure-…` screenshot and the page's HTML into [`artifacts_dir`].
//!
//! When Chromium is missing the tests are skipped with one line on stderr,
//! except under `CI=true`, where that is a failure: CI must never pass with
//! the browser tests silently skipped.
//!
//! The Chromium process is killed when the [`Browser`] is dropped, so a
//! failing (panicking) test does not leave it running; call
//! [`Browser::close`] at the end of a test for a graceful exit.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::dom::SetFileInputFilesParams;
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::input::InsertTextParams;
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, CaptureScreenshotParams, Viewport,
};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::handler::viewport::Viewport as PageViewport;
use chromiumoxide::{BrowserConfig, Page};
use futures::StreamExt;
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;

/// How long any one step may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// How long Chromium may take to start.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Between two looks at the page while waiting.
const POLL: Duration = Duration::from_millis(50);

/// Where Debian installs Chromium.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// The command that installs what the browser tests need.
pub const INSTALL_HINT: &str = "apt-get install -y chromium fonts-wqy-zenhei";

/// Exactly the flags Chromium gets (besides the per-browser
/// `--user-data-dir`, the window size and the DevTools port the driver
/// needs).
pub const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// The desktop viewport every tab starts with, in CSS pixels.
pub const DESKTOP: (u32, u32) = (1280, 900);

/// A phone-sized viewport (an iPhone 12–15), in CSS pixels, at 2× density.
pub const PHONE: (u32, u32) = (390, 844);

/// `<workspace>/target/e2e-artifacts` (or `$CARGO_TARGET_DIR/e2e-artifacts`;
/// a relative `CARGO_TARGET_DIR` is taken from the workspace root), created
/// if needed.
pub fn artifacts_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace.join(dir)
            }
        }
        _ => workspace.join("target"),
    };
    let dir = target.join("e2e-artifacts");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

/// The Chromium to run: `$CHROMIUM` when set (a path, or a name looked up
/// on `PATH`), else `/usr/bin/chromium`, else `chromium` on `PATH`. The
/// error says where it looked.
pub fn find_chromium() -> Result<PathBuf, String> {
    if let Some(wanted) = std::env::var_os("CHROMIUM").filter(|v| !v.is_empty()) {
        let wanted = PathBuf::from(wanted);
        let found = if wanted.components().count() > 1 {
            wanted.is_file().then(|| wanted.clone())
        } else {
            on_path(&wanted)
        };
        return found.ok_or_else(|| format!("CHROMIUM={} does not exist", wanted.display()));
    }
    let default = Path::new(DEFAULT_CHROMIUM);
    if default.is_file() {
        return Ok(default.to_path_buf());
    }
    on_path(Path::new("chromium"))
        .ok_or_else(|| format!("neither {DEFAULT_CHROMIUM} nor `chromium` on PATH exists"))
}

fn on_path(name: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Makes each navigation marker unique within the test binary.
static MARKERS: AtomicU64 = AtomicU64::new(0);

/// Makes each failure's artifacts unique within the test binary.
static FAILURES: AtomicU64 = AtomicU64::new(0);

fn desktop_viewport() -> PageViewport {
    PageViewport {
        width: DESKTOP.0,
        height: DESKTOP.1,
        device_scale_factor: Some(1.0),
        emulating_mobile: false,
        is_landscape: true,
        has_touch: false,
    }
}

/// `fut`, or a message naming `what` when it fails or takes longer than
/// [`TIMEOUT`].
async fn within<T, E: std::fmt::Display>(
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {}s", TIMEOUT.as_secs())),
    }
}

/// A CSS selector as a JavaScript string literal.
fn js_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// JavaScript truthiness of a returned value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `(selector) => is it rendered with a non-empty box?` as a JS expression.
fn visible_js(selector: &str) -> String {
    format!(
        "(() => {{ const el = document.querySelector({sel}); if (!el) return false; \
         const r = el.getBoundingClientRect(); const cs = getComputedStyle(el); \
         return r.width > 0 && r.height > 0 && cs.visibility !== 'hidden' && cs.display !== 'none'; }})()",
        sel = js_str(selector)
    )
}

/// One headless Chromium with one tab.
#[derive(Debug)]
pub struct Browser {
    page: Page,
    inner: chromiumoxide::Browser,
    handler: JoinHandle<()>,
    artifacts: PathBuf,
    label: String,
    closed: bool,
    // Last: removed only after the process is gone (fields drop in order,
    // after `Drop::drop` has killed Chromium).
    profile: TempDir,
}

impl Browser {
    /// Starts Chromium, or returns `None` (after one `SKIPPED:` line on
    /// stderr) when it is not installed. Under `CI=true` a missing Chromium
    /// panics instead.
    pub async fn launch() -> Option<Self> {
        match find_chromium() {
            Ok(exe) => Some(Self::launch_at(&exe).await),
            Err(looked) if under_ci() => panic!(
                "CI=true but Chromium is not installed ({looked}); install it with `{INSTALL_HINT}` \
                 (or set CHROMIUM=/path/to/chromium)"
            ),
            Err(_) => {
                certhall_store::testing::report_skip("browser tests (chromium not found; run scripts/test.sh to install it)");
                None
            }
        }
    }

    /// Starts the given Chromium binary; panics when it does not start.
    pub async fn launch_at(exe: &Path) -> Self {
        let profile = tempfile::Builder::new()
            .prefix("certhall-e2e-chromium-")
            .tempdir()
            .expect("temporary Chromium profile");
        let config = BrowserConfig::builder()
            .chrome_executable(exe)
            .user_data_dir(profile.path())
            // Only our flags: no driver defaults, and `--headless` comes
            // from CHROMIUM_FLAGS rather than from the driver.
            .disable_default_args()
            .with_head()
            .args(CHROMIUM_FLAGS.iter().map(|f| f.trim_start_matches("--")))
            .window_size(DESKTOP.0, DESKTOP.1)
            .viewport(desktop_viewport())
            .launch_timeout(LAUNCH_TIMEOUT)
            .request_timeout(TIMEOUT)
            .build()
            .unwrap_or_else(|e| panic!("Chromium configuration: {e}"));
        let (mut inner, mut handler) = chromiumoxide::Browser::launch(config)
            .await
            .unwrap_or_else(|e| panic!("cannot start Chromium {}: {e}", exe.display()));
        let handler = tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if event.is_err() {
                    break;
                }
            }
        });
        let page = match within("opening a tab", inner.new_page("about:blank")).await {
            Ok(page) => page,
            Err(e) => {
                let _ = inner.kill().await;
                handler.abort();
                panic!("Chromium {} started but {e}", exe.display());
            }
        };
        Self {
            page,
            inner,
            handler,
            artifacts: artifacts_dir(),
            label: "e2e".to_owned(),
            closed: false,
            profile,
        }
    }

    /// Names this browser's failure artifacts (`failure-<label>-N.png`),
    /// e.g. after the backend under test.
    pub fn set_label(&mut self, label: &str) {
        label.clone_into(&mut self.label);
    }

    /// The tab, for anything the helpers do not cover.
    pub fn page(&self) -> &Page {
        &self.page
    }

    /// Where screenshots go.
    pub fn artifacts(&self) -> &Path {
        &self.artifacts
    }

    /// The temporary profile directory (removed when dropped).
    pub fn profile_dir(&self) -> &Path {
        self.profile.path()
    }

    /// Closes Chromium gracefully and waits for it to exit (killing it if
    /// it takes too long).
    pub async fn close(mut self) {
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = self.inner.close().await;
            self.inner.wait().await
        })
        .await;
        if !matches!(closed, Ok(Ok(_))) {
            let _ = self.inner.kill().await;
        }
        self.closed = true;
        // Drop aborts the handler and removes the profile.
    }

    // ----- evaluation -----

    /// Evaluates `js` in the page once: its JSON value, or why not.
    async fn try_eval(&self, js: &str) -> Result<Value, String> {
        let params = EvaluateParams::builder()
            .expression(js)
            .return_by_value(true)
            .await_promise(true)
            .build()
            .map_err(|e| format!("bad evaluation: {e}"))?;
        let reply = within("evaluating JavaScript", self.page.execute(params)).await?;
        if let Some(ex) = &reply.result.exception_details {
            let detail = ex
                .exception
                .as_ref()
                .and_then(|o| o.description.clone())
                .unwrap_or_else(|| ex.text.clone());
            return Err(format!("JavaScript threw: {detail}"));
        }
        Ok(reply.result.result.value.clone().unwrap_or(Value::Null))
    }

    /// Evaluates the JavaScript expression `js` (promises are awaited) and
    /// returns its value as JSON; fails the test when it throws.
    pub async fn eval(&self, js: &str) -> Value {
        match self.try_eval(js).await {
            Ok(v) => v,
            Err(e) => panic!("{}", self.failure(&format!("evaluating `{js}`: {e}")).await),
        }
    }

    /// Polls `js` until it returns something truthy (errors, e.g. while a
    /// new page is loading, count as "not yet"); fails the test after
    /// [`TIMEOUT`] with "timed out waiting for {what}".
    pub async fn wait_until(&self, js: &str, what: &str) -> Value {
        let start = Instant::now();
        loop {
            let last = match self.try_eval(js).await {
                Ok(v) if truthy(&v) => return v,
                Ok(v) => format!("last value: {v}"),
                Err(e) => format!("last error: {e}"),
            };
            if start.elapsed() > TIMEOUT {
                let msg = format!(
                    "timed out after {}s waiting for {what} ({last})",
                    TIMEOUT.as_secs()
                );
                panic!("{}", self.failure(&msg).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Saves `failure-<label>-N.png` and `.html` and returns a message with
    /// `what`, the URL, the artifact paths and the start of the page's text.
    async fn failure(&self, what: &str) -> String {
        let n = FAILURES.fetch_add(1, Ordering::Relaxed);
        let stem = format!("failure-{}-{n}", self.label);
        let url = match self.try_eval("location.href").await {
            Ok(Value::String(url)) => url,
            // The page does not answer (Chromium gone?): nothing to save.
            other => return format!("{what}\n  (page unreachable: {other:?})"),
        };
        let text = self
            .try_eval("document.body ? document.body.innerText : ''")
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut msg = format!("{what}\n  page: {url}");
        match self.try_screenshot(&format!("{stem}.png"), true).await {
            Ok(path) => msg.push_str(&format!("\n  screenshot: {}", path.display())),
            Err(e) => msg.push_str(&format!("\n  (no screenshot: {e})")),
        }
        if let Ok(Value::String(html)) = self.try_eval("document.documentElement.outerHTML").await {
            let path = self.artifacts.join(format!("{stem}.html"));
            if std::fs::write(&path, html).is_ok() {
                msg.push_str(&format!("\n  html: {}", path.display()));
            }
        }
        let text: String = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(600)
            .collect();
        msg.push_str(&format!("\n  text: {text}"));
        msg
    }

    // ----- navigation -----

    /// Opens `url` and waits until it has loaded.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = within(&format!("opening {url}"), self.page.goto(url)).await {
            panic!("{}", self.failure(&e).await);
        }
        self.wait_until(
            "document.readyState === 'complete'",
            &format!("{url} to load"),
        )
        .await;
    }

    /// Waits for the element, then clicks its middle with the mouse.
    pub async fn click(&self, selector: &str) {
        self.wait_for(selector).await;
        let clicked = async {
            let el = self.page.find_element(selector).await?;
            el.click().await?;
            Ok::<_, chromiumoxide::error::CdpError>(())
        };
        if let Err(e) = within(&format!("clicking `{selector}`"), clicked).await {
            panic!("{}", self.failure(&e).await);
        }
    }

    /// Clicks the element and waits until a new document (whatever its URL:
    /// a form's redirect may come back to the same page) has loaded.
    pub async fn click_and_wait_for_navigation(&self, selector: &str) {
        self.wait_for(selector).await;
        let marker = MARKERS.fetch_add(1, Ordering::Relaxed);
        self.eval(&format!("window.__certhallE2eMarker = {marker}"))
            .await;
        self.click(selector).await;
        self.wait_until(
            &format!(
                "window.__certhallE2eMarker !== {marker} && document.readyState === 'complete'"
            ),
            &format!("a new page to load after clicking `{selector}`"),
        )
        .await;
    }

    /// The page's address.
    pub async fn current_url(&self) -> String {
        self.eval("location.href")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The path and query of the page's address (`/login?bye=1`).
    pub async fn current_path(&self) -> String {
        self.eval("location.pathname + location.search")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's HTML as it is now.
    pub async fn content(&self) -> String {
        self.eval("document.documentElement.outerHTML")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    // ----- elements -----

    /// Waits until an element matching `selector` is visible.
    pub async fn wait_for(&self, selector: &str) {
        self.wait_until(
            &visible_js(selector),
            &format!("`{selector}` to be visible"),
        )
        .await;
    }

    /// Waits until no element matches `selector`.
    pub async fn wait_for_gone(&self, selector: &str) {
        let js = format!("document.querySelector({}) === null", js_str(selector));
        self.wait_until(&js, &format!("`{selector}` to go away"))
            .await;
    }

    /// Waits until the element's text contains `needle`.
    pub async fn wait_for_text(&self, selector: &str, needle: &str) {
        let js = format!(
            "(() => {{ const el = document.querySelector({}); return !!el && el.innerText.includes({}); }})()",
            js_str(selector),
            js_str(needle)
        );
        self.wait_until(&js, &format!("`{selector}` to contain {needle:?}"))
            .await;
    }

    /// Is an element matching `selector` visible now? (No waiting.)
    pub async fn is_visible(&self, selector: &str) -> bool {
        truthy(&self.eval(&visible_js(selector)).await)
    }

    /// Does an element match `selector` now? (No waiting.)
    pub async fn exists(&self, selector: &str) -> bool {
        self.count(selector).await > 0
    }

    /// How many elements match `selector` now.
    pub async fn count(&self, selector: &str) -> usize {
        let v = self
            .eval(&format!(
                "document.querySelectorAll({}).length",
                js_str(selector)
            ))
            .await;
        v.as_u64().map_or(0, |n| n as usize)
    }

    /// The visible text of the first match, trimmed (waits for it).
    pub async fn text_of(&self, selector: &str) -> String {
        self.wait_for(selector).await;
        let js = format!(
            "document.querySelector({}).innerText.trim()",
            js_str(selector)
        );
        self.eval(&js).await.as_str().unwrap_or_default().to_owned()
    }

    /// The visible texts of all matches, trimmed (no waiting).
    pub async fn texts_of(&self, selector: &str) -> Vec<String> {
        let js = format!(
            "[...document.querySelectorAll({})].map(e => e.innerText.trim())",
            js_str(selector)
        );
        match self.eval(&js).await {
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The current value of a form field (waits for it to exist).
    pub async fn value_of(&self, selector: &str) -> String {
        let js = format!(
            "(() => {{ const el = document.querySelector({}); return el ? [el.value] : null; }})()",
            js_str(selector)
        );
        let v = self
            .wait_until(&js, &format!("`{selector}` to exist"))
            .await;
        v[0].as_str().unwrap_or_default().to_owned()
    }

    /// An attribute of the first match, if it has it (waits for the element).
    pub async fn attribute(&self, selector: &str, name: &str) -> Option<String> {
        let js = format!(
            "(() => {{ const el = document.querySelector({}); return el ? [el.getAttribute({})] : null; }})()",
            js_str(selector),
            js_str(name)
        );
        let v = self
            .wait_until(&js, &format!("`{selector}` to exist"))
            .await;
        v[0].as_str().map(str::to_owned)
    }

    /// Clears the field and types `text` into it as a user would (key
    /// presses; characters without a key, e.g. Chinese, arrive as IME
    /// input), then checks that the field holds exactly `text`.
    pub async fn fill(&self, selector: &str, text: &str) {
        self.wait_for(selector).await;
        let sel = js_str(selector);
        self.eval(&format!(
            "(() => {{ const el = document.querySelector({sel}); el.focus(); el.value = ''; \
             el.dispatchEvent(new Event('input', {{ bubbles: true }})); \
             if (document.activeElement !== el) throw new Error('cannot focus ' + {sel}); }})()"
        ))
        .await;
        let typed = async {
            let el = self.page.find_element(selector).await?;
            let mut run = String::new();
            let mut keys = true;
            for c in text.chars() {
                let has_key = chromiumoxide::keys::get_key_definition(c.to_string()).is_some();
                if has_key != keys && !run.is_empty() {
                    self.type_run(&el, &run, keys).await?;
                    run.clear();
                }
                keys = has_key;
                run.push(c);
            }
            if !run.is_empty() {
                self.type_run(&el, &run, keys).await?;
            }
            Ok::<_, chromiumoxide::error::CdpError>(())
        };
        if let Err(e) = within(&format!("typing into `{selector}`"), typed).await {
            panic!("{}", self.failure(&e).await);
        }
        let now = self.value_of(selector).await;
        if now != text {
            let msg = format!("after typing {text:?} into `{selector}` it holds {now:?}");
            panic!("{}", self.failure(&msg).await);
        }
    }

    /// Chooses `file` in the file input `selector`, as a user picking it in
    /// the file dialog would (CDP `DOM.setFileInputFiles`).
    pub async fn choose_file(&self, selector: &str, file: &Path) {
        self.wait_for(selector).await;
        let chosen = async {
            let el = self.page.find_element(selector).await?;
            let params = SetFileInputFilesParams::builder()
                .file(file.display().to_string())
                .backend_node_id(el.backend_node_id)
                .build()
                .map_err(chromiumoxide::error::CdpError::msg)?;
            self.page.execute(params).await?;
            Ok::<_, chromiumoxide::error::CdpError>(())
        };
        if let Err(e) = within(&format!("choosing a file in `{selector}`"), chosen).await {
            panic!("{}", self.failure(&e).await);
        }
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let sel = js_str(selector);
        let got = self
            .eval(&format!(
                "(document.querySelector({sel}).files[0] || {{}}).name || ''"
            ))
            .await;
        assert_eq!(got.as_str(), Some(name), "file not chosen in `{selector}`");
    }

    /// True when every `img` matched by `selector` has loaded and decoded
    /// (its natural width is not 0); false when none matches.
    pub async fn images_loaded(&self, selector: &str) -> bool {
        let sel = js_str(selector);
        self.eval(&format!(
            "(() => {{ const all = [...document.querySelectorAll({sel})]; \
             return all.length > 0 && all.every(i => i.complete && i.naturalWidth > 0); }})()"
        ))
        .await
        .as_bool()
        .unwrap_or(false)
    }

    async fn type_run(
        &self,
        el: &chromiumoxide::Element,
        run: &str,
        keys: bool,
    ) -> chromiumoxide::Result<()> {
        if keys {
            el.type_str(run).await?;
        } else {
            self.page.execute(InsertTextParams::new(run)).await?;
        }
        Ok(())
    }

    /// Checks that the element's text really renders: each character of
    /// `chars` (which must be distinct, e.g. "演示模式") is drawn, in the
    /// element's font, as a non-empty glyph different from the others — a
    /// missing font draws them all as the same empty box ("tofu"). Returns
    /// the fonts Chromium used for the element's text (e.g. "WenQuanYi Zen
    /// Hei").
    pub async fn assert_glyphs_render(&self, selector: &str, chars: &str) -> Vec<String> {
        self.wait_for(selector).await;
        let js = format!(
            "(() => {{ const el = document.querySelector({sel}); const cs = getComputedStyle(el); \
             const font = `${{cs.fontStyle}} ${{cs.fontWeight}} 32px ${{cs.fontFamily}}`; \
             const c = document.createElement('canvas'); c.width = 48; c.height = 48; \
             const ctx = c.getContext('2d', {{ willReadFrequently: true }}); \
             const shots = [...{chars}].map(ch => {{ ctx.clearRect(0, 0, 48, 48); ctx.font = font; \
               ctx.textBaseline = 'top'; ctx.fillStyle = '#000'; ctx.fillText(ch, 4, 4); \
               const d = ctx.getImageData(0, 0, 48, 48).data; let bits = '', ink = 0; \
               for (let i = 3; i < d.length; i += 4) {{ const on = d[i] > 127; bits += on ? '1' : '0'; if (on) ink++; }} \
               return {{ bits, ink }}; }}); \
             return {{ font, chars: shots.length, distinct: new Set(shots.map(s => s.bits)).size, \
               blank: shots.filter(s => s.ink === 0).length }}; }})()",
            sel = js_str(selector),
            chars = js_str(chars)
        );
        let v = self.eval(&js).await;
        let n = v["chars"].as_u64().unwrap_or(0);
        if n == 0 || v["distinct"].as_u64() != Some(n) || v["blank"].as_u64() != Some(0) {
            let msg = format!(
                "the characters {chars:?} of `{selector}` do not render as distinct glyphs \
                 (missing font? install fonts-wqy-zenhei): {v}"
            );
            panic!("{}", self.failure(&msg).await);
        }
        self.platform_fonts(selector).await
    }

    /// The fonts Chromium used to draw the text directly inside the first
    /// match.
    pub async fn platform_fonts(&self, selector: &str) -> Vec<String> {
        use chromiumoxide::cdp::browser_protocol::css::{
            EnableParams, GetPlatformFontsForNodeParams,
        };
        let fonts = async {
            self.page.enable_dom().await?;
            self.page.execute(EnableParams::default()).await?;
            let el = self.page.find_element(selector).await?;
            let fonts = self
                .page
                .execute(GetPlatformFontsForNodeParams::new(el.node_id))
                .await?;
            Ok::<_, chromiumoxide::error::CdpError>(fonts.result.fonts)
        };
        match within("asking for the fonts used", fonts).await {
            Ok(fonts) => fonts.into_iter().map(|f| f.family_name).collect(),
            Err(e) => panic!("{}", self.failure(&e).await),
        }
    }

    // ----- viewport and screenshots -----

    /// Emulates a `width`×`height` CSS-pixel screen.
    pub async fn set_viewport(&self, width: u32, height: u32, scale: f64, mobile: bool) {
        let params = SetDeviceMetricsOverrideParams::new(width, height, scale, mobile);
        if let Err(e) = within("resizing the viewport", self.page.execute(params)).await {
            panic!("{}", self.failure(&e).await);
        }
        // Let the page lay itself out again.
        self.eval(
            "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))",
        )
        .await;
    }

    /// A phone's screen: [`PHONE`] CSS pixels at 2× density, mobile.
    pub async fn use_phone_viewport(&self) {
        self.set_viewport(PHONE.0, PHONE.1, 2.0, true).await;
    }

    /// Back to the [`DESKTOP`] viewport.
    pub async fn use_desktop_viewport(&self) {
        self.set_viewport(DESKTOP.0, DESKTOP.1, 1.0, false).await;
    }

    /// Saves a PNG of the whole page (not only what fits in the viewport)
    /// as `<artifacts>/<name>` (`.png` added when `name` has no extension)
    /// and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        match self.try_screenshot(name, true).await {
            Ok(path) => path,
            Err(e) => panic!("{}", self.failure(&format!("screenshot {name}: {e}")).await),
        }
    }

    /// Like [`Browser::screenshot`], but only what the viewport shows.
    pub async fn screenshot_viewport(&self, name: &str) -> PathBuf {
        match self.try_screenshot(name, false).await {
            Ok(path) => path,
            Err(e) => panic!("{}", self.failure(&format!("screenshot {name}: {e}")).await),
        }
    }

    async fn try_screenshot(&self, name: &str, full_page: bool) -> Result<PathBuf, String> {
        let mut file = name.to_owned();
        if Path::new(name).extension().is_none() {
            file.push_str(".png");
        }
        let path = self.artifacts.join(file);
        let mut params = CaptureScreenshotParams::builder().format(CaptureScreenshotFormat::Png);
        if full_page {
            let size = self
                .try_eval(
                    "[Math.max(document.documentElement.scrollWidth, window.innerWidth), \
                      Math.max(document.documentElement.scrollHeight, window.innerHeight)]",
                )
                .await?;
            let (width, height) = (
                size[0].as_f64().unwrap_or(0.0),
                size[1].as_f64().unwrap_or(0.0),
            );
            params = params.capture_beyond_viewport(true).clip(Viewport {
                x: 0.0,
                y: 0.0,
                width,
                height,
                scale: 1.0,
            });
        }
        let png = within(
            &format!("taking screenshot {name}"),
            self.page.screenshot(params.build()),
        )
        .await?;
        std::fs::write(&path, png).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.handler.abort();
        if self.closed {
            return;
        }
        // A test failed (or forgot `close`): kill Chromium now, and reap it
        // so the profile directory can be removed behind it.
        if let Some(child) = self.inner.get_mut_child() {
            let child = child.as_mut_inner();
            let _ = child.start_kill();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
