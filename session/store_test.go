package session_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessionhub/sessionhub/session"
)

// TestSaveRules covers save_session of Flask's SecureCookieSessionInterface
// (tests/test_basic.py: test_session, test_session_expiration,
// test_session_vary_cookie, test_session_refresh_vary,
// test_session_cookie_setting), plus the rules of a log-bound session.
func TestSaveRules(t *testing.T) {
	t.Parallel()
	type rule struct {
		name    string
		opts    session.Options
		prepare func(t *testing.T, st *session.Store) *session.Session
		want    session.Decision
		vary    bool
		check   func(t *testing.T, st *session.Store, sv saved)
	}
	loaded := func(permanent bool, kv ...any) func(*testing.T, *session.Store) *session.Session {
		return func(t *testing.T, st *session.Store) *session.Session {
			return load(t, st, issue(t, st, permanent, kv...))
		}
	}
	then := func(prepare func(*testing.T, *session.Store) *session.Session, do func(t *testing.T, s *session.Session)) func(*testing.T, *session.Store) *session.Session {
		return func(t *testing.T, st *session.Store) *session.Session {
			s := prepare(t, st)
			do(t, s)
			return s
		}
	}
	fresh := func(*testing.T, *session.Store) *session.Session { return session.New() }
	values := func(t *testing.T, st *session.Store, sv saved) map[string]json.RawMessage {
		t.Helper()
		s, err := st.Decode(sv.cookie.Value)
		if err != nil {
			t.Fatalf("written cookie does not decode: %v", err)
		}
		return s.Values()
	}
	rules := []rule{
		{
			name:    "new session untouched: nothing",
			prepare: fresh,
			want:    session.Untouched,
		},
		{
			name: "new session read: Vary only",
			prepare: then(fresh, func(t *testing.T, s *session.Session) {
				if s.Has("user") {
					t.Fatal("new session has a key")
				}
			}),
			want: session.Untouched,
			vary: true,
		},
		{
			name: "new session cleared: accessed, nothing to delete",
			prepare: then(fresh, func(t *testing.T, s *session.Session) {
				s.Clear()
			}),
			want: session.Untouched,
			vary: true,
		},
		{
			name:    "loaded session not accessed: nothing",
			prepare: loaded(false, "user", "ada"),
			want:    session.Untouched,
		},
		{
			name: "loaded session read: Vary, no cookie",
			prepare: then(loaded(false, "user", "ada"), func(t *testing.T, s *session.Session) {
				if got := s.GetString("user"); got != "ada" {
					t.Fatalf("user = %q", got)
				}
			}),
			want: session.Untouched,
			vary: true,
		},
		{
			name: "set: cookie and Vary",
			prepare: then(fresh, func(t *testing.T, s *session.Session) {
				mustSet(t, s, "user", "ada")
			}),
			want: session.Written,
			vary: true,
			check: func(t *testing.T, st *session.Store, sv saved) {
				if got := string(values(t, st, sv)["user"]); got != `"ada"` {
					t.Errorf("user = %s", got)
				}
			},
		},
		{
			name: "emptied plain session: deleted",
			prepare: then(loaded(false, "user", "ada"), func(t *testing.T, s *session.Session) {
				s.Delete("user")
			}),
			want: session.Deleted,
			vary: true,
			check: func(t *testing.T, st *session.Store, sv saved) {
				checkDeletion(t, sv)
			},
		},
		{
			name: "cleared plain session: deleted",
			prepare: then(loaded(true, "user", "ada", "n", 1), func(t *testing.T, s *session.Session) {
				s.Clear()
			}),
			want: session.Deleted,
			vary: true,
			check: func(t *testing.T, st *session.Store, sv saved) {
				checkDeletion(t, sv)
			},
		},
		{
			name: "set then deleted in one request: deleted",
			prepare: then(fresh, func(t *testing.T, s *session.Session) {
				mustSet(t, s, "flash", "hi")
				s.Delete("flash")
			}),
			want: session.Deleted,
			vary: true,
		},
		{
			name: "log-bound session emptied: keeps its cookie",
			prepare: then(loaded(false, "user", "ada"), func(t *testing.T, s *session.Session) {
				s.Fold([]session.Op{{Seq: 1, Type: session.OpSet, Key: "theme", Value: json.RawMessage(`"dark"`)}})
				s.Clear()
			}),
			want: session.Written,
			vary: true,
			check: func(t *testing.T, st *session.Store, sv saved) {
				s, err := st.Decode(sv.cookie.Value)
				if err != nil {
					t.Fatal(err)
				}
				if s.Len() != 0 || s.Seq() != 1 || s.ID() == "" {
					t.Errorf("cookie holds len %d seq %d id %q, want empty at seq 1 with an ID", s.Len(), s.Seq(), s.ID())
				}
			},
		},
		{
			name: "pinned session emptied: keeps its cookie",
			prepare: then(fresh, func(t *testing.T, s *session.Session) {
				s.EnsureID()
				mustSet(t, s, "flash", "hi")
				s.Delete("flash")
			}),
			want: session.Written,
			vary: true,
		},
		{
			name: "EnsureID: empty session gets a cookie",
			prepare: then(fresh, func(t *testing.T, s *session.Session) {
				s.EnsureID()
			}),
			want: session.Written,
			vary: true,
			check: func(t *testing.T, st *session.Store, sv saved) {
				s, err := st.Decode(sv.cookie.Value)
				if err != nil {
					t.Fatal(err)
				}
				if !session.ValidID(s.ID()) || s.Len() != 0 {
					t.Errorf("cookie holds id %q and %d keys", s.ID(), s.Len())
				}
			},
		},
		{
			name: "MarkModified: unchanged session rewritten",
			prepare: then(loaded(false, "cart", []int{1, 2}), func(t *testing.T, s *session.Session) {
				s.MarkModified()
			}),
			want: session.Written,
			vary: true,
		},
		{
			name: "MarkAccessed: Vary without a read",
			prepare: then(loaded(false, "user", "ada"), func(t *testing.T, s *session.Session) {
				s.MarkAccessed()
			}),
			want: session.Untouched,
			vary: true,
		},
		{
			name:    "permanent: Expires and Max-Age",
			opts:    session.Options{Lifetime: 2 * time.Hour},
			prepare: then(fresh, func(t *testing.T, s *session.Session) { mustSet(t, s, "user", "ada"); s.SetPermanent(true) }),
			want:    session.Written,
			vary:    true,
			check: func(t *testing.T, st *session.Store, sv saved) {
				if sv.cookie.MaxAge != 7200 {
					t.Errorf("Max-Age = %d, want 7200", sv.cookie.MaxAge)
				}
				if want := t0.Add(2 * time.Hour); !sv.cookie.Expires.Equal(want) {
					t.Errorf("Expires = %v, want %v", sv.cookie.Expires, want)
				}
			},
		},
		{
			name:    "not permanent: browser-session cookie",
			prepare: then(fresh, func(t *testing.T, s *session.Session) { mustSet(t, s, "user", "ada") }),
			want:    session.Written,
			vary:    true,
			check: func(t *testing.T, st *session.Store, sv saved) {
				if sv.cookie.MaxAge != 0 || !sv.cookie.Expires.IsZero() || strings.Contains(sv.raw, "Expires") || strings.Contains(sv.raw, "Max-Age") {
					t.Errorf("browser-session cookie has a lifetime: %s", sv.raw)
				}
			},
		},
		{
			name:    "permanent read-only: refreshed each request",
			prepare: then(loaded(true, "user", "ada"), func(t *testing.T, s *session.Session) { s.GetString("user") }),
			want:    session.Written,
			vary:    true,
			check: func(t *testing.T, st *session.Store, sv saved) {
				if sv.cookie.MaxAge != int(session.DefaultLifetime/time.Second) {
					t.Errorf("refreshed cookie Max-Age = %d", sv.cookie.MaxAge)
				}
			},
		},
		{
			name:    "permanent untouched: refreshed each request",
			prepare: loaded(true, "user", "ada"),
			want:    session.Written,
			vary:    true,
		},
		{
			name:    "permanent read-only with NoRefresh: untouched",
			opts:    session.Options{NoRefresh: true},
			prepare: then(loaded(true, "user", "ada"), func(t *testing.T, s *session.Session) { s.GetString("user") }),
			want:    session.Untouched,
			vary:    true,
		},
		{
			name: "permanent modified with NoRefresh: written",
			opts: session.Options{NoRefresh: true},
			prepare: then(loaded(true, "user", "ada"), func(t *testing.T, s *session.Session) {
				mustSet(t, s, "user", "bob")
			}),
			want: session.Written,
			vary: true,
		},
		{
			name:    "not permanent read-only: never refreshed",
			prepare: then(loaded(false, "user", "ada"), func(t *testing.T, s *session.Session) { s.GetString("user") }),
			want:    session.Untouched,
			vary:    true,
		},
		{
			name: "log ops folded: cookie catches up",
			prepare: then(loaded(false, "user", "ada"), func(t *testing.T, s *session.Session) {
				s.Fold([]session.Op{{Seq: 4, Type: session.OpSet, Key: "theme", Value: json.RawMessage(`"dark"`)}})
			}),
			want: session.Written,
			vary: true,
			check: func(t *testing.T, st *session.Store, sv saved) {
				s, err := st.Decode(sv.cookie.Value)
				if err != nil {
					t.Fatal(err)
				}
				if s.Seq() != 4 || s.GetString("theme") != "dark" || s.GetString("user") != "ada" {
					t.Errorf("cookie: seq %d values %v", s.Seq(), s.Values())
				}
			},
		},
		{
			name: "End: cookie deleted",
			prepare: then(loaded(true, "user", "ada"), func(t *testing.T, s *session.Session) {
				s.End()
			}),
			want: session.Deleted,
			vary: true,
			check: func(t *testing.T, st *session.Store, sv saved) {
				checkDeletion(t, sv)
			},
		},
		{
			name: "End of a log-bound session: cookie deleted",
			prepare: then(loaded(false, "user", "ada"), func(t *testing.T, s *session.Session) {
				s.Fold([]session.Op{{Seq: 9, Type: session.OpSet, Key: "x", Value: json.RawMessage(`1`)}})
				s.End()
			}),
			want: session.Deleted,
			vary: true,
		},
		{
			name: "End then Set: a new session replaces the old cookie",
			prepare: func(t *testing.T, st *session.Store) *session.Session {
				s := load(t, st, issue(t, st, true, "user", "ada"))
				old := s.ID()
				if got := s.End(); got != old {
					t.Fatalf("End returned %q, want %q", got, old)
				}
				mustSet(t, s, "flash", "logged out")
				if s.ID() == old || !session.ValidID(s.ID()) {
					t.Fatalf("session after End and Set has id %q (old %q)", s.ID(), old)
				}
				return s
			},
			want: session.Written,
			vary: true,
			check: func(t *testing.T, st *session.Store, sv saved) {
				got := values(t, st, sv)
				if len(got) != 1 || string(got["flash"]) != `"logged out"` {
					t.Errorf("new session holds %v, want only the flash", got)
				}
				if sv.cookie.MaxAge != 0 {
					t.Errorf("new session inherited the permanent flag: %s", sv.raw)
				}
			},
		},
		{
			name: "Rotate: new ID, same values",
			prepare: then(loaded(false, "user", "ada"), func(t *testing.T, s *session.Session) {
				s.Fold([]session.Op{{Seq: 2, Type: session.OpSet, Key: "theme", Value: json.RawMessage(`"dark"`)}})
				old := s.ID()
				if got := s.Rotate(); got != old {
					t.Fatalf("Rotate returned %q, want %q", got, old)
				}
				if s.ID() == old || !session.ValidID(s.ID()) || s.Seq() != 0 {
					t.Fatalf("after Rotate: id %q (old %q) seq %d", s.ID(), old, s.Seq())
				}
			}),
			want: session.Written,
			vary: true,
			check: func(t *testing.T, st *session.Store, sv saved) {
				got := values(t, st, sv)
				if string(got["user"]) != `"ada"` || string(got["theme"]) != `"dark"` {
					t.Errorf("rotated session holds %v", got)
				}
			},
		},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			st := newStore(t, r.opts)
			s := r.prepare(t, st)
			sv := save(t, st, s)
			if sv.decision != r.want {
				t.Errorf("decision = %v, want %v (Set-Cookie %q)", sv.decision, r.want, sv.raw)
			}
			if (sv.cookie != nil) != (r.want != session.Untouched) {
				t.Errorf("Set-Cookie %q with decision %v", sv.raw, sv.decision)
			}
			if sv.vary() != r.vary {
				t.Errorf("Vary: Cookie = %v, want %v (Vary %q)", sv.vary(), r.vary, sv.header.Values("Vary"))
			}
			if r.check != nil && sv.cookie != nil {
				r.check(t, st, sv)
			}
		})
	}
}

func mustSet(t testing.TB, s *session.Session, key string, v any) {
	t.Helper()
	if err := s.Set(key, v); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

// checkDeletion checks that sv deletes the cookie: an empty value, Max-Age=0
// and Expires in the past.
func checkDeletion(t *testing.T, sv saved) {
	t.Helper()
	c := sv.cookie
	if c.Value != "" || c.MaxAge >= 0 || !strings.Contains(sv.raw, "Max-Age=0") || !c.Expires.Equal(time.Unix(0, 0)) {
		t.Errorf("not a deletion cookie: %s", sv.raw)
	}
}

// TestCookieAttributes: every Set-Cookie, written or deleting, carries the
// store's name, Domain, Path, Secure, HttpOnly, SameSite and Partitioned
// (Flask: test_session_using_session_settings, test_session_using_samesite_attribute).
func TestCookieAttributes(t *testing.T) {
	t.Parallel()
	type attrs struct {
		name, domain, path string
		secure, httpOnly   bool
		sameSite           http.SameSite
		partitioned        bool
	}
	tests := []struct {
		name string
		opts session.Options
		want attrs
	}{
		{"defaults", session.Options{}, attrs{name: "session", path: "/", httpOnly: true, sameSite: http.SameSiteLaxMode}},
		{"SameSiteDefaultMode is Lax", session.Options{SameSite: http.SameSiteDefaultMode}, attrs{name: "session", path: "/", httpOnly: true, sameSite: http.SameSiteLaxMode}},
		{"name domain path", session.Options{Name: "sid", Domain: "example.com", Path: "/app"}, attrs{name: "sid", domain: "example.com", path: "/app", httpOnly: true, sameSite: http.SameSiteLaxMode}},
		{"secure", session.Options{Secure: true}, attrs{name: "session", path: "/", secure: true, httpOnly: true, sameSite: http.SameSiteLaxMode}},
		{"no HttpOnly", session.Options{NoHTTPOnly: true}, attrs{name: "session", path: "/", sameSite: http.SameSiteLaxMode}},
		{"SameSite Strict", session.Options{SameSite: http.SameSiteStrictMode}, attrs{name: "session", path: "/", httpOnly: true, sameSite: http.SameSiteStrictMode}},
		{"SameSite None forces Secure", session.Options{SameSite: http.SameSiteNoneMode}, attrs{name: "session", path: "/", secure: true, httpOnly: true, sameSite: http.SameSiteNoneMode}},
		{"Partitioned forces Secure", session.Options{Partitioned: true}, attrs{name: "session", path: "/", secure: true, httpOnly: true, sameSite: http.SameSiteLaxMode, partitioned: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newStore(t, tt.opts)
			check := func(what string, c *http.Cookie, raw string) {
				t.Helper()
				got := attrs{c.Name, c.Domain, c.Path, c.Secure, c.HttpOnly, c.SameSite, c.Partitioned}
				if got != tt.want {
					t.Errorf("%s cookie: got %+v, want %+v (%s)", what, got, tt.want, raw)
				}
			}
			s := session.New()
			mustSet(t, s, "user", "ada")
			written := save(t, st, s)
			check("written", written.cookie, written.raw)

			s = load(t, st, written.cookie)
			s.Delete("user")
			deleted := save(t, st, s)
			if deleted.decision != session.Deleted {
				t.Fatalf("decision = %v, want deleted", deleted.decision)
			}
			check("deletion", deleted.cookie, deleted.raw)
			if del := st.DeletionCookie(); del.String() != deleted.raw {
				t.Errorf("DeletionCookie %q differs from Save's %q", del.String(), deleted.raw)
			}

			o := st.Options()
			if o.Keys != nil {
				t.Error("Options() exposes the keys")
			}
			if st.Name() != tt.want.name {
				t.Errorf("Name() = %q", st.Name())
			}
		})
	}
}

// TestVaryHeader: Cookie joins an existing Vary header once (Flask:
// test_session_vary_cookie's vary-cookie-header-set and vary-header-set).
func TestVaryHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existing []string
		want     []string
	}{
		{"none", nil, []string{"Cookie"}},
		{"Cookie already there", []string{"Cookie"}, []string{"Cookie"}},
		{"other values kept", []string{"Accept-Encoding"}, []string{"Accept-Encoding", "Cookie"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newStore(t, session.Options{})
			s := session.New()
			mustSet(t, s, "user", "ada")
			h := http.Header{}
			for _, v := range tt.existing {
				h.Add("Vary", v)
			}
			if _, err := st.Save(h, s); err != nil {
				t.Fatal(err)
			}
			if got := h.Values("Vary"); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("Vary = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestNewStoreOptions: defaults are filled in and bad options refused.
func TestNewStoreOptions(t *testing.T) {
	t.Parallel()
	if _, err := session.NewStore(nil); !errors.Is(err, session.ErrNoKeys) {
		t.Errorf("NewStore(nil) = %v, want ErrNoKeys", err)
	}
	if _, err := session.NewStore(&session.Options{}); !errors.Is(err, session.ErrNoKeys) {
		t.Errorf("NewStore without keys = %v, want ErrNoKeys", err)
	}
	if _, err := session.NewStore(&session.Options{Keys: []session.KeyPair{{Hash: []byte("short")}}}); !errors.Is(err, session.ErrBadKey) {
		t.Errorf("NewStore with a short key = %v, want ErrBadKey", err)
	}
	for _, name := range []string{"a b", "a;b", "a=b", "sé"} {
		if _, err := session.NewStore(&session.Options{Name: name, Keys: []session.KeyPair{keyA}}); err == nil {
			t.Errorf("cookie name %q accepted", name)
		}
	}
	opts := session.Options{Keys: []session.KeyPair{keyA}}
	st, err := session.NewStore(&opts)
	if err != nil {
		t.Fatal(err)
	}
	o := st.Options()
	if o.Name != "session" || o.Path != "/" || o.SameSite != http.SameSiteLaxMode || o.Lifetime != session.DefaultLifetime || o.Now == nil || o.NoHTTPOnly || o.Secure {
		t.Errorf("defaults not filled in: %+v", o)
	}
	if opts.Name != "" || opts.Path != "" {
		t.Error("NewStore changed the caller's options")
	}
}

// TestLoad: a missing cookie is a new session without an error; a refused
// one is a new empty session and a *DecodeError, never a panic.
func TestLoad(t *testing.T) {
	t.Parallel()
	st := newStore(t, session.Options{})
	good := issue(t, st, false, "user", "ada")
	tests := []struct {
		name   string
		cookie *http.Cookie
		reason session.Reason
	}{
		{"no cookie", nil, ""},
		{"valid", good, ""},
		{"other cookie only", &http.Cookie{Name: "other", Value: good.Value}, ""},
		{"garbage", &http.Cookie{Name: "session", Value: "garbage"}, session.ReasonTampered},
		{"truncated", &http.Cookie{Name: "session", Value: good.Value[:len(good.Value)/2]}, session.ReasonTampered},
		{"empty value (a deleted cookie) is missing, not an error", &http.Cookie{Name: "session", Value: ""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := st.Load(request(tt.cookie))
			if s == nil {
				t.Fatal("Load returned a nil session")
			}
			if got := session.ReasonOf(err); got != tt.reason {
				t.Fatalf("reason = %q, want %q (err %v)", got, tt.reason, err)
			}
			if tt.reason != "" {
				if !errors.Is(err, session.ErrInvalidCookie) {
					t.Errorf("err %v does not wrap ErrInvalidCookie", err)
				}
			}
			if tt.cookie == good {
				if s.GetString("user") != "ada" {
					t.Errorf("valid cookie lost its value: %v", s.Values())
				}
				return
			}
			if s.ID() != "" || s.Len() != 0 {
				t.Errorf("refused or missing cookie gave id %q, %d keys", s.ID(), s.Len())
			}
		})
	}
}

// TestPinSurvivesRoundTrip: a pinned empty session (a socket's) keeps its
// cookie across requests, even when a later request modifies it.
func TestPinSurvivesRoundTrip(t *testing.T) {
	t.Parallel()
	st := newStore(t, session.Options{})
	s := session.New()
	id := s.EnsureID()
	h := http.Header{}
	if d, err := st.Save(h, s); err != nil || d != session.Written {
		t.Fatalf("pinned new session: %v %v", d, err)
	}
	loaded, err := st.Load(request(cookieFrom(t, h)))
	if err != nil || loaded.ID() != id {
		t.Fatalf("reload: %v %q", err, loaded.ID())
	}
	if loaded.Empty() {
		t.Fatal("the pin was lost in the cookie")
	}
	loaded.MarkModified()
	h2 := http.Header{}
	if d, _ := st.Save(h2, loaded); d != session.Written {
		t.Fatalf("modified pinned session: %v, want written (a socket uses its ID)", d)
	}
	// Re-pinning an already pinned session is not a modification.
	again, _ := st.Load(request(cookieFrom(t, h2)))
	again.EnsureID()
	if again.Modified() {
		t.Fatal("EnsureID on a pinned session marked it modified")
	}
}

func cookieFrom(t *testing.T, h http.Header) *http.Cookie {
	t.Helper()
	cs := (&http.Response{Header: h}).Cookies()
	if len(cs) != 1 {
		t.Fatalf("want one Set-Cookie, got %v", h.Values("Set-Cookie"))
	}
	return cs[0]
}
