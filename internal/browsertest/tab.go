package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Tab is a page target of a [Browser]. Every tab of a browser shares its
// browser context: cookies, storage and cache, as two tabs of one user.
// A Tab's methods must be called from the test's goroutine.
type Tab struct {
	t    testing.TB
	name string
	ctx  context.Context
}

// NewTab opens a tab (a new target in its own window, so it is never a
// hidden background tab) and closes it when the test ends. name prefixes
// the tab's console messages in the test log and names its screenshots.
func (b *Browser) NewTab(name string) *Tab {
	b.t.Helper()
	t := b.t
	ctx, cancel := chromedp.NewContext(b.ctx)
	tab := &Tab{t: t, name: name, ctx: ctx}

	var wg sync.WaitGroup
	t.Cleanup(func() {
		if t.Failed() {
			tab.saveFailureScreenshot()
		}
		cancel()
		wg.Wait()
	})

	// The first Run creates the target and binds its event loop to the
	// context it is given: no timeout on that one, bound it from outside.
	if err := firstRun(ctx, cancel, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: socketRecorderJS})
		return err
	})); err != nil {
		t.Fatalf("browsertest: opening tab %s: %v", name, err)
	}

	// Forward the tab's console to the test log until the tab closes.
	messages := chromedp.Console(ctx)
	wg.Go(func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			t.Logf("%s console %s", name, m)
		}
	})
	return tab
}

// Context returns the tab's chromedp context, for actions this package does
// not wrap. Bound each call with context.WithTimeout: a context derived
// from it that has a deadline is fine (the tab already exists).
func (tab *Tab) Context() context.Context { return tab.ctx }

// For returns the tab bound to t, a subtest of the test that opened it:
// its failures then fail t. The tab still closes with the test that
// opened it.
func (tab *Tab) For(t testing.TB) *Tab {
	c := *tab
	c.t = t
	return &c
}

// Name returns the name the tab was opened with.
func (tab *Tab) Name() string { return tab.name }

// Do runs the actions in order, bounded by [Timeout], and fails the test on
// the first error.
func (tab *Tab) Do(actions ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tab.fatalf("%v", err)
	}
}

// Eval evaluates the JavaScript expression in the tab's page, awaiting it
// when it is a promise, and decodes its JSON value into out (out may be nil
// to discard it). It fails the test when the expression throws.
func (tab *Tab) Eval(expr string, out any) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tab.fatalf("evaluating %s: %v", expr, err)
	}
	if out == nil {
		return
	}
	if err := json.Unmarshal(raw, out); err != nil {
		tab.fatalf("evaluating %s: decoding %s: %v", expr, raw, err)
	}
}

// Document is a page's main document as the server sent it. A page that
// came from no server (about:blank, a data: URL) has Status 0 and no HTML.
type Document struct {
	URL    string
	Status int
	// HTML is the response body, before any script ran.
	HTML string
}

// Navigate loads url in the tab, waits for its load event, and returns the
// document the server sent.
func (tab *Tab) Navigate(url string) Document {
	tab.t.Helper()
	return tab.load("navigating to "+url, chromedp.Navigate(url))
}

// Reload reloads the tab's page, waits for its load event, and returns the
// document the server sent.
func (tab *Tab) Reload() Document {
	tab.t.Helper()
	return tab.load("reloading", chromedp.Reload())
}

func (tab *Tab) load(what string, action chromedp.Action[chromedp.Void]) Document {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()

	var (
		mu  sync.Mutex
		doc Document
		id  network.RequestID
	)
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	// The listener runs on the tab's reading goroutine: it only records.
	// A page without frames has one document request per load; the last
	// one wins over a redirect's.
	if err := chromedp.Listen(lctx, func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok && e.Type == network.ResourceTypeDocument {
			mu.Lock()
			defer mu.Unlock()
			id = e.RequestID
			doc.URL = e.Response.URL
			doc.Status = int(e.Response.Status)
		}
	}); err != nil {
		tab.fatalf("%s: %v", what, err)
	}
	if err := chromedp.Do(ctx, action); err != nil {
		tab.fatalf("%s: %v", what, err)
	}
	lcancel()
	mu.Lock()
	reqID := id
	mu.Unlock()
	if reqID == "" {
		// No network response: about:blank, a data: URL.
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			tab.fatalf("%s: %v", what, err)
		}
		return Document{URL: loc}
	}
	body, err := chromedp.Call(ctx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: reqID})
	if err != nil {
		tab.fatalf("%s: reading the document's body: %v", what, err)
	}
	doc.HTML = string(body.Body)
	return doc
}

// Click clicks the center of the first element matching the CSS selector,
// as a user's mouse would, once it is visible.
func (tab *Tab) Click(sel string) {
	tab.t.Helper()
	tab.Do(chromedp.Click(chromedp.CSS(sel)))
}

// Type replaces the text of the input matching sel with text, typed key by
// key as a user would, and checks that the input holds it.
func (tab *Tab) Type(sel, text string) {
	tab.t.Helper()
	var ok bool
	tab.Eval(fmt.Sprintf(`(() => {
		const el = document.querySelector(%s);
		if (!el) return false;
		el.focus();
		el.select();
		return true;
	})()`, jsString(sel)), &ok)
	if !ok {
		tab.fatalf("typing into %s: no such element", sel)
	}
	tab.Do(chromedp.SendKeys(chromedp.CSS(sel), text))
	var got string
	tab.Eval(fmt.Sprintf(`document.querySelector(%s).value`, jsString(sel)), &got)
	if got != text {
		tab.fatalf("typing %q into %s: it holds %q", text, sel, got)
	}
}

// Select chooses the option of value in the select element matching sel
// and fires the input and change events a user's choice fires.
func (tab *Tab) Select(sel, value string) {
	tab.t.Helper()
	var res string
	tab.Eval(fmt.Sprintf(`(() => {
		const el = document.querySelector(%s);
		if (!el) return "no such element";
		if (![...el.options].some(o => o.value === %s)) return "no such option";
		el.focus();
		el.value = %[2]s;
		el.dispatchEvent(new Event("input", {bubbles: true}));
		el.dispatchEvent(new Event("change", {bubbles: true}));
		return "";
	})()`, jsString(sel), jsString(value)), &res)
	if res != "" {
		tab.fatalf("selecting %q in %s: %s", value, sel, res)
	}
}

// SetChecked sets the checkbox matching sel to checked, by clicking it when
// it is not already so.
func (tab *Tab) SetChecked(sel string, checked bool) {
	tab.t.Helper()
	var now bool
	tab.Eval(fmt.Sprintf(`!!document.querySelector(%s)?.checked`, jsString(sel)), &now)
	if now != checked {
		tab.Click(sel)
	}
}

// Text returns the text content (trimmed) of the first element matching
// sel, failing the test when there is none.
func (tab *Tab) Text(sel string) string {
	tab.t.Helper()
	var s *string
	tab.Eval(fmt.Sprintf(`document.querySelector(%s)?.textContent.trim() ?? null`, jsString(sel)), &s)
	if s == nil {
		tab.fatalf("no element %s", sel)
	}
	return *s
}

// WaitText waits until the first element matching sel has the text want
// (trimmed), re-checking on every DOM mutation, and fails the test after
// [Timeout].
func (tab *Tab) WaitText(sel, want string) {
	tab.t.Helper()
	tab.poll(fmt.Sprintf("%s to show %q", sel, want),
		fmt.Sprintf(`document.querySelector(%s)?.textContent.trim() === %s`, jsString(sel), jsString(want)))
}

// WaitTextMatch waits until the text of the first element matching sel
// matches the regular expression re (JavaScript syntax), and returns it.
func (tab *Tab) WaitTextMatch(sel, re string) string {
	tab.t.Helper()
	if _, err := regexp.Compile(re); err != nil { // the common subset must at least parse
		tab.fatalf("WaitTextMatch(%s): %v", sel, err)
	}
	tab.poll(fmt.Sprintf("%s to match /%s/", sel, re),
		fmt.Sprintf(`new RegExp(%s).test(document.querySelector(%s)?.textContent.trim() ?? "")`, jsString(re), jsString(sel)))
	return tab.Text(sel)
}

// poll waits until the JavaScript expression is truthy, re-evaluating it
// on every DOM mutation.
func (tab *Tab) poll(what, expr string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(Timeout)))
	if err != nil {
		if errors.Is(err, chromedp.ErrPollingTimeout) || errors.Is(err, context.DeadlineExceeded) {
			tab.fatalf("waited %v for %s", Timeout, what)
		}
		tab.fatalf("waiting for %s: %v", what, err)
	}
}

// TextIn parses html with the browser's DOMParser (no script runs) and
// returns the trimmed text of the first element matching sel, and whether
// there is one.
func (tab *Tab) TextIn(html, sel string) (string, bool) {
	tab.t.Helper()
	var s *string
	tab.Eval(fmt.Sprintf(`new DOMParser().parseFromString(%s, "text/html").querySelector(%s)?.textContent.trim() ?? null`,
		jsString(html), jsString(sel)), &s)
	if s == nil {
		return "", false
	}
	return *s, true
}

// AttrIn is like TextIn for the attribute name of the element.
func (tab *Tab) AttrIn(html, sel, name string) (string, bool) {
	tab.t.Helper()
	var s *string
	tab.Eval(fmt.Sprintf(`new DOMParser().parseFromString(%s, "text/html").querySelector(%s)?.getAttribute(%s) ?? null`,
		jsString(html), jsString(sel), jsString(name)), &s)
	if s == nil {
		return "", false
	}
	return *s, true
}

// Cookies returns the browser's cookies for url, HttpOnly ones included.
func (tab *Tab) Cookies(url string) []*network.Cookie {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	if err != nil {
		tab.fatalf("reading cookies: %v", err)
	}
	return res.Cookies
}

// Offline cuts the tab off the network for the URLs matching the
// patterns (URLPattern syntax, absolute: "http://127.0.0.1:*/hub/flush",
// "ws://127.0.0.1:*/hub/ws"), as an emulated offline network: fetches,
// navigations, beacons and WebSocket handshakes to them fail; connections
// already open stay open. A later call replaces the list; no pattern puts
// the tab back online. (Network.setBlockedURLs would not do: it lets
// WebSocket handshakes through.)
func (tab *Tab) Offline(patterns ...string) {
	tab.t.Helper()
	conds := make([]*network.Conditions, 0, len(patterns))
	for _, p := range patterns {
		conds = append(conds, &network.Conditions{URLPattern: p, Offline: true, DownloadThroughput: -1, UploadThroughput: -1})
	}
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		MatchedNetworkConditions: conds,
	}); err != nil {
		tab.fatalf("taking %q offline: %v", patterns, err)
	}
}

// Socket is a WebSocket the page created, as recorded from its events.
type Socket struct {
	URL    string `json:"url"`
	Opened bool   `json:"opened"`
	Closed bool   `json:"closed"`
	// Code, Reason and Clean are the close event's, when Closed.
	Code   int    `json:"code"`
	Reason string `json:"reason"`
	Clean  bool   `json:"clean"`
}

// Sockets returns the WebSockets the current page created, oldest first.
// The page's own WebSocket is unchanged: a recorder added before any
// script of the page runs only listens to its open and close events.
func (tab *Tab) Sockets() []Socket {
	tab.t.Helper()
	var s []Socket
	tab.Eval(`globalThis.__browsertest?.sockets ?? []`, &s)
	return s
}

// socketRecorderJS runs in every document of a tab before its scripts: it
// wraps the WebSocket constructor to record each socket's open and close.
const socketRecorderJS = `(() => {
	const bt = (globalThis.__browsertest ??= {sockets: [], watches: []});
	const Native = globalThis.WebSocket;
	if (!Native || Native.__browsertest) return;
	const Recorded = class WebSocket extends Native {
		constructor(...args) {
			super(...args);
			const rec = {url: String(args[0]), opened: false, closed: false, code: 0, reason: "", clean: false};
			bt.sockets.push(rec);
			this.addEventListener("open", () => { rec.opened = true; });
			this.addEventListener("close", (e) => {
				Object.assign(rec, {closed: true, code: e.code, reason: e.reason, clean: e.wasClean});
			});
		}
	};
	Object.defineProperty(Recorded, "__browsertest", {value: true});
	globalThis.WebSocket = Recorded;
})();`

// fatalf fails the test with the tab's state: its URL and visible text.
func (tab *Tab) fatalf(format string, args ...any) {
	tab.t.Helper()
	tab.t.Fatalf("%s: %s\n%s", tab.name, fmt.Sprintf(format, args...), tab.describe())
}

// describe returns the tab's URL and the text of its page, best effort and
// quickly: it is called on failures.
func (tab *Tab) describe() string {
	ctx, cancel := context.WithTimeout(tab.ctx, 5*time.Second)
	defer cancel()
	type state struct {
		URL  string `json:"url"`
		Text string `json:"text"`
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](
		`({url: location.href, text: document.body ? document.body.innerText : document.documentElement.outerHTML})`))
	if err != nil {
		return fmt.Sprintf("(page state unavailable: %v)", err)
	}
	var s state
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Sprintf("(page state unreadable: %v)", err)
	}
	const max = 4000
	if len(s.Text) > max {
		s.Text = s.Text[:max] + "…"
	}
	return fmt.Sprintf("page %s shows:\n\t%s", s.URL, strings.ReplaceAll(s.Text, "\n", "\n\t"))
}

// jsString returns s as a JavaScript string literal.
func jsString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a string always marshals
	}
	return string(b)
}
