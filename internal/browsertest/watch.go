package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/chromedp/chromedp"
)

// Watch records every text an element shows, from the moment it started,
// in the tab's current page (a navigation ends it). It sees transient
// texts a poll could miss: a MutationObserver records each change as it
// happens.
type Watch struct {
	tab    *Tab
	sel    string
	id     int
	failOn []string
}

// Watch starts recording the texts (trimmed) of the first element matching
// sel. The element may be replaced or appear later: the whole document is
// observed and sel looked up again on each mutation.
func (tab *Tab) Watch(sel string) *Watch {
	tab.t.Helper()
	var id int
	tab.Eval(fmt.Sprintf(`((sel) => {
		const bt = (globalThis.__browsertest ??= {sockets: [], watches: []});
		const read = () => document.querySelector(sel)?.textContent.trim() ?? null;
		const log = [read()];
		bt.watches.push(log);
		new MutationObserver(() => {
			const v = read();
			if (v !== log[log.length - 1]) log.push(v);
		}).observe(document, {subtree: true, childList: true, characterData: true});
		return bt.watches.length - 1;
	})(%s)`, jsString(sel)), &id)
	return &Watch{tab: tab, sel: sel, id: id}
}

// FailOn makes Wait fail at once when the element shows a text starting
// with one of the prefixes (an error state), instead of waiting out the
// timeout. It returns w.
func (w *Watch) FailOn(prefixes ...string) *Watch {
	w.failOn = append(w.failOn, prefixes...)
	return w
}

// Texts returns the texts recorded so far: the text when the watch started
// (empty when the element did not exist), then each different one.
func (w *Watch) Texts() []string {
	w.tab.t.Helper()
	var texts []*string
	w.tab.Eval(fmt.Sprintf(`globalThis.__browsertest?.watches?.[%d] ?? null`, w.id), &texts)
	if texts == nil {
		w.tab.fatalf("watch of %s is gone: did the page navigate?", w.sel)
	}
	out := make([]string, len(texts))
	for i, s := range texts {
		if s != nil {
			out[i] = *s
		}
	}
	return out
}

// Wait waits until the element has shown the texts want in this order
// since the watch started (other texts may come between them; the text it
// showed when the watch started does not count), and fails the test after
// [Timeout] or when a FailOn text shows.
func (w *Watch) Wait(want ...string) {
	w.tab.t.Helper()
	tab := w.tab
	failOn := w.failOn
	if want == nil {
		want = []string{}
	}
	if failOn == nil {
		failOn = []string{}
	}
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	expr := fmt.Sprintf(`((id, want, failOn) => {
		const log = globalThis.__browsertest?.watches?.[id];
		if (!log) return {gone: true};
		let i = 0;
		for (const s of log.slice(1)) {
			if (s !== null && failOn.some(p => s.startsWith(p))) return {failed: s};
			if (i < want.length && s === want[i]) i++;
		}
		return i === want.length ? {ok: true} : false;
	})(%d, %s, %s)`, w.id, jsonOf(want), jsonOf(failOn))
	res, err := chromedp.Run(ctx, chromedp.Poll[json.RawMessage](expr,
		chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(Timeout)))
	if err != nil {
		what := fmt.Sprintf("%s to show %s", w.sel, quoteAll(want))
		if errors.Is(err, chromedp.ErrPollingTimeout) || errors.Is(err, context.DeadlineExceeded) {
			tab.fatalf("waited %v for %s; it showed %s", Timeout, what, quoteAll(w.Texts()))
		}
		tab.fatalf("waiting for %s: %v", what, err)
	}
	var r struct {
		OK     bool   `json:"ok"`
		Gone   bool   `json:"gone"`
		Failed string `json:"failed"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		tab.fatalf("watch of %s: decoding %s: %v", w.sel, res, err)
	}
	switch {
	case r.Gone:
		tab.fatalf("watch of %s is gone: did the page navigate?", w.sel)
	case !r.OK:
		tab.fatalf("%s showed %q while waiting for %s; it showed %s", w.sel, r.Failed, quoteAll(want), quoteAll(w.Texts()))
	}
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
