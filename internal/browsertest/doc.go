// Package browsertest drives a real Chromium from Go tests: the browser
// tests of sessionhub's demo run through it. It launches Debian's Chromium
// with github.com/chromedp/chromedp, opens tabs that share one browser
// context (so they share cookies, like two tabs of one user), and offers
// the few helpers those tests need: waiting on an element's text, watching
// the texts an element goes through, reading the HTML the server sent for
// a page, reading cookies, blocking URLs, and saving screenshots as test
// artifacts.
//
// It is test support, not API: every helper takes the test's
// [testing.TB] and fails the test (t.Fatal) on any error, so a test reads
// as a script.
//
// # Chromium
//
// [ExecPath] finds the browser: $CHROMIUM_PATH when set, else
// /usr/bin/chromium, else chromium on $PATH. A missing browser fails the
// test; browser tests are never skipped (test.sh installs Chromium from
// Debian's packages when it is absent). [Launch] starts it headless with
// the flags in [Flags] and a fresh --user-data-dir under t.TempDir(), and
// stops it when the test ends.
//
//	b := browsertest.Launch(t)
//	tab1, tab2 := b.NewTab("tab1"), b.NewTab("tab2") // same cookies
//	tab1.Navigate(url)
//	tab1.WaitText("#status", "connected")
//
// # Waiting
//
// Nothing sleeps. [Tab.WaitText] waits until an element shows a text,
// re-checking on every DOM mutation. A [Watch] records every text an
// element shows from the moment it starts, so a test can wait for a
// transition ("pending" then "acknowledged") even when the element already
// showed the final text before. Every wait gives up after [Timeout] and
// fails the test with the page's text, the watch's history and a
// screenshot saved as an artifact.
//
// # Pages as the server sent them
//
// [Tab.Navigate] and [Tab.Reload] return the [Document]: the status and
// the body of the main document exactly as the server sent them, before
// any script ran. [Tab.TextIn] parses such HTML with the browser's
// DOMParser (scripts are not run) and returns an element's text, which is
// how a test tells what the server rendered from what a script changed
// afterwards.
//
// # Artifacts
//
// [SaveArtifact] writes a file under $ARTIFACTS_DIR when set (relative to
// the module root), else under .artifacts/ at the module root (gitignored). [NotBlank] checks that a
// PNG screenshot shows something. When a test fails, each open tab saves a
// full-page screenshot and the browser's output is logged.
package browsertest
