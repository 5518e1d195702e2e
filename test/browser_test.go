package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"
)

// The web desk in a real headless Chromium, driven as its users drive it:
// keyboard and clicks on the real program's pages.
//
// PACKLEDGER_BROWSER=require (CI sets it) makes a missing Chromium a
// failure instead of a skip. DESK_SCREENSHOTS=dir saves each main page
// at 1280×800 and 768×1024 into dir (docs/desk is made so).

// browser is one Chromium with its own profile, on the desk of srv.
type browser struct {
	t   *testing.T
	srv *proc
	ctx context.Context
	// pages visited, for the checks every page must pass
	checked map[string]bool
	shots   string
}

func chromiumPath(t *testing.T) string {
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("PACKLEDGER_BROWSER") == "require" {
		t.Fatal("no Chromium: install Debian's chromium package (.ci/run does)")
	}
	t.Skip("no Chromium installed; apt-get install chromium (CI runs these tests)")
	return ""
}

func newBrowser(t *testing.T, srv *proc) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // root in CI's container
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTime := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTime(); cancelCtx(); cancelAlloc() })
	b := &browser{t: t, srv: srv, ctx: ctx, checked: map[string]bool{}, shots: os.Getenv("DESK_SCREENSHOTS")}
	b.run(chromedp.EmulateViewport(1280, 800))
	// A headless page never has the system's focus, and without it no
	// element matches :focus: the check that focus shows needs it.
	_, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
	require.NoError(t, err)
	return b
}

// run runs actions, failing the test on the first error.
func (b *browser) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, actions...))
}

// get runs an action that gives a value.
func get[T any](b *browser, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	require.NoError(b.t, err)
	return v
}

// eval is what a JavaScript expression gives.
func eval[T any](b *browser, expr string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	return get(b, chromedp.Evaluate[T](expr, opts...))
}

func (b *browser) open(path string) {
	b.t.Helper()
	b.run(chromedp.Navigate(b.srv.HTTP+path), chromedp.WaitReady(chromedp.CSS("body")))
	b.checkPage()
}

// text is what the page shows.
func (b *browser) text() string {
	b.t.Helper()
	return get(b, chromedp.Text(chromedp.CSS("body")))
}

func (b *browser) sees(want ...string) {
	b.t.Helper()
	got := b.text()
	for _, w := range want {
		require.Contains(b.t, got, w, "on %s", b.path())
	}
}

func (b *browser) path() string {
	b.t.Helper()
	return strings.TrimPrefix(get(b, chromedp.Location()), b.srv.HTTP)
}

// typeInto clears a field and types into it.
func (b *browser) typeInto(sel, s string) {
	b.t.Helper()
	b.run(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), s))
}

// submit clicks sel and waits for the page it opens.
func (b *browser) submit(sel string) {
	b.t.Helper()
	b.navigating(chromedp.Click(chromedp.CSS(sel)))
}

// navigating runs an action that opens a page, and waits until that page
// is loaded: the old one is marked, and the new one has no mark.
func (b *browser) navigating(a chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.run(chromedp.Evaluate[chromedp.Void](`window.__old = true`))
	b.run(a)
	// Asked while the navigation is under way, the old page's context
	// may be gone: that is an answer to wait out too.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		loaded, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`!window.__old && document.readyState === "complete"`))
		if err == nil && loaded {
			break
		}
		require.True(b.t, time.Now().Before(deadline), "no new page within 20 s (last: %v)", err)
	}
	b.checkPage()
}

// tabTo presses Tab until the focus is on the element sel (at most 60
// times): what a keyboard user does to reach it.
func (b *browser) tabTo(sel string) {
	b.t.Helper()
	for range 60 {
		if eval[bool](b, fmt.Sprintf(`document.activeElement === document.querySelector(%q)`, sel)) {
			outline := eval[string](b, `getComputedStyle(document.activeElement).outlineStyle`)
			require.NotEqual(b.t, "none", outline, "the focus on %s shows", sel)
			return
		}
		b.run(chromedp.KeyEvent(kb.Tab))
	}
	b.t.Fatalf("%s cannot be reached with Tab on %s", sel, b.path())
}

// keys types into the focused element.
func (b *browser) keys(s string) {
	b.t.Helper()
	b.run(chromedp.KeyEvent(s))
}

// enter presses Enter and waits for the page it opens.
func (b *browser) enter() {
	b.t.Helper()
	b.navigating(chromedp.KeyEvent(kb.Enter))
}

// checkPage fails unless the page passes what every page must: each
// field has a label, and text reads against its background at 4.5:1 at
// least (WCAG AA; the stylesheet aims at 7:1).
const pageChecks = `(() => {
  const problems = [];
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    const byFor = el.id && document.querySelector('label[for="' + el.id + '"]');
    if (!byFor && !el.closest("label") && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby")) {
      problems.push("no label: " + (el.name || el.id || el.outerHTML.slice(0, 60)));
    }
  }
  const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const bg = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  for (const el of document.querySelectorAll("h1, h2, p, a, button, label, td, th, dt, dd, li, span, legend")) {
    if (!el.offsetParent || !el.textContent.trim()) continue;
    const fg = rgb(getComputedStyle(el).color).slice(0, 3);
    const [l1, l2] = [lum(fg), lum(bg(el))].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    if (ratio < 4.5) problems.push("contrast " + ratio.toFixed(2) + ": " + el.tagName + " " + el.textContent.trim().slice(0, 30));
  }
  return problems;
})()`

func (b *browser) checkPage() {
	b.t.Helper()
	problems := eval[[]string](b, pageChecks)
	require.Empty(b.t, problems, "on %s", b.path())
	require.NotEmpty(b.t, eval[string](b, `document.documentElement.lang`))
}

// shot saves the page at both sizes, from its top, when screenshots are
// asked for.
func (b *browser) shot(name string) {
	b.t.Helper()
	b.shotAt(name, "")
}

// shotAt is shot with the element sel scrolled into view, if not "".
func (b *browser) shotAt(name, sel string) {
	b.t.Helper()
	if b.shots == "" {
		return
	}
	scroll := `window.scrollTo(0, 0)`
	if sel != "" {
		scroll = fmt.Sprintf(`document.querySelector(%q).scrollIntoView({block: "center"})`, sel)
	}
	b.run(chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur(); ` + scroll))
	require.NoError(b.t, os.MkdirAll(b.shots, 0o755))
	for _, size := range [][2]int64{{1280, 800}, {768, 1024}} {
		b.run(chromedp.EmulateViewport(size[0], size[1]), chromedp.Sleep(200*time.Millisecond))
		png := get(b, chromedp.CaptureScreenshot())
		require.NoError(b.t, os.WriteFile(filepath.Join(b.shots, fmt.Sprintf("%s-%d.png", name, size[0])), png, 0o644))
	}
	b.run(chromedp.EmulateViewport(1280, 800))
}

// signIn signs in with role's token, by keyboard: the token field has the
// focus, Enter sends the form.
func (b *browser) signIn(role string) {
	b.t.Helper()
	b.open("/signin")
	b.run(chromedp.WaitVisible(chromedp.CSS("#token")))
	b.tabTo("#token")
	b.keys(b.srv.Tokens[role])
	b.enter()
	b.run(chromedp.WaitVisible(chromedp.CSS(`form[action="/signout"]`)))
}

func (b *browser) signOut() {
	b.t.Helper()
	b.submit(`form[action="/signout"] button`)
	require.Equal(b.t, "/signin", b.path())
}

// seq is the ledger's last applied sequence, from /healthz.
func (b *browser) seq() int {
	b.t.Helper()
	return num(b.t, obj(b.t, b.srv.waitCaughtUp(), "projections"), "applied_seq")
}

func shanghai(t *testing.T) *time.Location {
	tz, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	return tz
}

// TestBrowser_Story: the seed dealership's day in a real browser, each
// role signed in with its own token: the manager defines a plan (the
// preview follows the typing), the advisor sells it, the cashier takes
// the payment in two parts and prints the contract, the advisor deducts a
// visit by keyboard alone, the manager previews and makes a refund, the
// cashier closes the day and the auditor reads the timeline. On every
// page each field has a label and the text reads at 4.5:1 or better. The
// role boundaries hold: the advisor sees no refund, and a refund posted
// from the advisor's page is refused and writes nothing.
func TestBrowser_Story(t *testing.T) {
	srv := startServer(t, t.TempDir())
	srv.waitCaughtUp()
	b := newBrowser(t, srv)

	// The checks every page passes can fail: a grey line and a field
	// without a label, put on the sign-in page, are both named.
	b.open("/signin")
	planted := eval[[]string](b, `(() => {
	  const grey = document.createElement("p"); // styled by script: the page's CSP refuses style attributes
	  grey.textContent = "灰色";
	  grey.style.color = "#aaa";
	  document.querySelector("main").append(grey);
	  document.querySelector("main").insertAdjacentHTML("beforeend", '<input id="stray">');
	  return `+pageChecks+`;
	})()`)
	require.Len(t, planted, 2, "%v", planted)
	b.open("/signin")
	b.shot("signin")

	// The manager defines a plan; the preview is the server's.
	b.signIn("MANAGER")
	b.open("/desk/plans")
	b.shot("plans")
	b.typeInto("#f-code", "OIL5")
	b.typeInto("#f-name", "5次保养套餐")
	b.typeInto("#service0", "oil_change")
	b.typeInto("#count0", "5")
	b.typeInto("#list0", "480.00")
	b.typeInto("#f-rate", "0.85")
	b.typeInto("#f-validity_months", "24")
	b.typeInto("#f-cancellation_fee_rate", "0.10")
	_ = get(b, chromedp.Poll[bool](`document.getElementById("preview").textContent.includes("¥2,040.00")`,
		chromedp.WithPollingTimeout(10*time.Second)))
	b.sees("¥2,400.00", "¥408.00") // list total, a visit's value
	b.shotAt("plan-preview", "#preview")
	b.submit(`#plan-form button.primary`)
	b.sees("方案已保存", "OIL5")
	b.signOut()

	// The advisor sells it.
	b.signIn("ADVISOR")
	b.open("/desk/sell")
	b.shot("sell")
	b.run(chromedp.Click(chromedp.CSS(`#plan-OIL5`)))
	b.typeInto("#f-customer-id", "C-88")
	b.typeInto("#f-customer-name", "王芳")
	b.typeInto("#f-customer-phone", "138 0013 8000")
	b.typeInto("#f-vehicle-vin", "LSVAU2180N2183294")
	b.typeInto("#f-vehicle-plate", "沪A88888")
	b.typeInto("#f-vehicle-model", "Lavida")
	b.submit(`form[action="/desk/sell"] button.primary`)
	b.sees("已开单", "待付款", "¥2,040.00")
	pkg := strings.TrimPrefix(strings.SplitN(b.path(), "?", 2)[0], "/desk/packages/")
	require.Len(t, pkg, 36, b.path())
	b.signOut()

	// The cashier takes it in two parts and prints the contract.
	b.signIn("CASHIER")
	require.Equal(t, "/desk/queue", b.path())
	b.sees("王芳", "¥2,040.00")
	b.shot("queue")
	b.submit(`a[href="/desk/packages/` + pkg + `/pay"]`)
	b.typeInto("#amount", "1000.00")
	b.run(chromedp.SetValue(chromedp.CSS("#method"), "cash"))
	b.typeInto("#receipt", "R-B1")
	b.shot("pay")
	b.submit(`form[action="/desk/packages/` + pkg + `/pay"] button`)
	b.sees("收款收据", "R-B1", "¥1,000.00", "¥1,040.00")
	b.shot("receipt")
	b.open("/desk/packages/" + pkg + "/pay")
	b.sees("R-B1", "¥1,040.00")
	b.typeInto("#receipt", "R-B2")
	b.submit(`form[action="/desk/packages/` + pkg + `/pay"] button`)
	b.sees("R-B2", "¥0.00")
	b.open("/desk/packages/" + pkg + "/contract")
	b.sees("保养套餐预售合同", "王芳", "LSVAU2180N2183294", "5次保养套餐", "¥2,040.00", "激活后 24 个月内有效",
		"扣除其 10% 作为手续费", "客户签字", "经销商盖章")
	b.shot("contract")
	media := func(m string) {
		_, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: m})
		require.NoError(t, err)
	}
	media("print")
	require.True(t, eval[bool](b, `getComputedStyle(document.querySelector("header.top")).display === "none"`),
		"the printed contract has no menu")
	media("")
	b.signOut()

	// The advisor finds the car and deducts a visit by keyboard alone.
	b.signIn("ADVISOR")
	b.tabTo("#q")
	b.keys("沪A88888")
	b.enter()
	b.sees("5次保养套餐", "生效中")
	b.shot("find")
	b.submit(`a[href="/desk/packages/` + pkg + `"]`)
	b.shot("package")
	b.sees("¥2,040.00")
	require.NotContains(t, b.text(), "退款", "an advisor sees no refund")
	// A refund posted from the advisor's own page is refused.
	before := b.seq()
	status := eval[int](b, fmt.Sprintf(`fetch("/desk/packages/%s/refund", {method: "POST", credentials: "same-origin",
		headers: {"Content-Type": "application/x-www-form-urlencoded"},
		body: new URLSearchParams({csrf: document.querySelector('input[name=csrf]').value, key: "x", method: "cash", reason: "r"})}).then(r => r.status)`, pkg),
		chromedp.EvalAwaitPromise)
	require.Equal(t, 403, status)
	require.Equal(t, before, b.seq(), "and nothing was written")

	b.tabTo("#ro-oil_change")
	b.keys("RO-B1")
	b.run(chromedp.KeyEvent(kb.Tab))
	b.keys("3000")
	b.enter()
	b.sees("确认核销", "¥408.00", "¥1,632.00")
	b.shot("deduct")
	b.tabTo(`form.actions button.primary`)
	b.enter()
	b.sees("已核销一次", "RO-B1")
	b.signOut()

	// The manager reads the liability, previews the refund, then makes it.
	b.signIn("MANAGER")
	b.open("/desk/reports/liability")
	b.run(chromedp.WaitVisible(chromedp.CSS("svg rect.bar")))
	b.sees("¥1,632.00")
	b.shot("liability")
	b.open("/desk/packages/" + pkg)
	b.submit(`a[href="/desk/packages/` + pkg + `/refund"]`)
	b.sees("¥1,632.00", "¥163.20", "¥1,468.80")
	b.shot("refund")
	b.typeInto("#f-reason", "客户搬家")
	b.submit(`form[action="/desk/packages/` + pkg + `/refund"] button`)
	b.sees("已退款")
	b.signOut()

	// The cashier closes the day.
	b.signIn("CASHIER")
	b.open("/desk/close")
	b.sees("¥1,000.00", "¥1,040.00", "¥1,468.80")
	b.shot("close")
	b.signOut()

	// The auditor reads the timeline and runs the integrity check.
	b.signIn("AUDITOR")
	b.open("/desk/packages/" + pkg + "/timeline")
	b.sees("售出", "收款", "生效", "核销", "退款", "manager", "advisor", "cashier", "¥1,632.00")
	b.shot("timeline")
	b.open("/desk/audit")
	b.shot("audit")
	b.open("/desk/audit/balances?as_of=" + time.Now().Add(time.Minute).In(shanghai(t)).Format("2006-01-02T15:04"))
	b.sees("¥1,468.80", "套餐（1 个）")
	b.shot("balances")
	b.open("/desk/audit/verify")
	b.sees("全部一致")
	b.shot("verify")
	// And in English.
	b.submit(`a.lang`)
	b.sees("All consistent")
	require.Equal(t, "en", eval[string](b, `document.documentElement.lang`))
}
