package session_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/sessionhub/sessionhub/session"
)

// A handler's view of a session: load it from the request, change it,
// save it into the response before the body.
func ExampleStore_Load() {
	store, err := session.NewStore(&session.Options{
		Keys: []session.KeyPair{session.GenerateKeyPair(false)},
	})
	if err != nil {
		panic(err)
	}

	// First request: no cookie, the handler logs the user in.
	r := httptest.NewRequest(http.MethodPost, "/login", nil)
	s, err := store.Load(r) // err is a *DecodeError when a cookie was refused
	if err != nil {
		fmt.Println("cookie refused:", session.ReasonOf(err))
	}
	s.Rotate() // a new ID on login
	_ = s.Set("user", "ada")
	s.SetPermanent(true)
	w := httptest.NewRecorder()
	d, err := store.Save(w.Header(), s)
	if err != nil {
		panic(err)
	}
	c := w.Result().Cookies()[0]
	fmt.Println(d, "| Vary:", w.Header().Get("Vary"))
	fmt.Println(c.Name, "HttpOnly:", c.HttpOnly, "SameSite=Lax:", c.SameSite == http.SameSiteLaxMode, "Max-Age:", c.MaxAge)

	// Next request carries the cookie.
	r = httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(c)
	s, _ = store.Load(r)
	fmt.Println("user:", s.GetString("user"))

	// Logout deletes the cookie.
	s.End()
	w = httptest.NewRecorder()
	d, _ = store.Save(w.Header(), s)
	fmt.Println(d, "| Max-Age:", w.Result().Cookies()[0].MaxAge)

	// A forged cookie is refused and yields a new, empty session.
	r = httptest.NewRequest(http.MethodGet, "/", nil)
	forged := []byte(c.Value)
	forged[len(forged)/2] ^= 1
	r.AddCookie(&http.Cookie{Name: "session", Value: string(forged)})
	s, err = store.Load(r)
	fmt.Println("forged:", session.ReasonOf(err), "| keys:", s.Len())
	// Output:
	// written | Vary: Cookie
	// session HttpOnly: true SameSite=Lax: true Max-Age: 2678400
	// user: ada
	// deleted | Max-Age: -1
	// forged: tampered | keys: 0
}

// Folding the log onto a cookie's snapshot: ops after its version apply in
// sequence order, and folding them again changes nothing.
func ExampleSnapshot_Fold() {
	cookie := session.Snapshot{
		Seq:    2,
		Values: map[string]json.RawMessage{"theme": json.RawMessage(`"light"`)},
	}
	log := []session.Op{
		{Seq: 4, Type: session.OpDelete, Key: "draft"},
		{Seq: 2, Type: session.OpSet, Key: "theme", Value: json.RawMessage(`"old"`)}, // already in the cookie
		{Seq: 3, Type: session.OpSet, Key: "draft", Value: json.RawMessage(`"hello"`)},
		{Seq: 5, Type: session.OpSet, Key: "theme", Value: json.RawMessage(`"dark"`)},
	}
	now := cookie.Fold(log)
	again := now.Fold(log)
	fmt.Println(now.Seq, len(now.Values), string(now.Values["theme"]))
	fmt.Println(again.Seq, len(again.Values), string(again.Values["theme"]))
	fmt.Println("cookie unchanged:", cookie.Seq, string(cookie.Values["theme"]))
	// Output:
	// 5 1 "dark"
	// 5 1 "dark"
	// cookie unchanged: 2 "light"
}

// Key rotation: the first key signs, every key verifies; a retired key no
// longer does.
func ExampleNewCodec_rotation() {
	oldKey, newKey := session.GenerateKeyPair(false), session.GenerateKeyPair(false)
	before, _ := session.NewCodec(session.CodecOptions{Keys: []session.KeyPair{oldKey}})
	during, _ := session.NewCodec(session.CodecOptions{Keys: []session.KeyPair{newKey, oldKey}})
	after, _ := session.NewCodec(session.CodecOptions{Keys: []session.KeyPair{newKey}})

	snap := session.Snapshot{ID: session.NewID(), Values: map[string]json.RawMessage{"user": json.RawMessage(`"ada"`)}}
	oldCookie, _ := before.Encode("session", snap)

	got, err := during.Decode("session", oldCookie)
	fmt.Println("during rotation:", string(got.Values["user"]), err)
	newCookie, _ := during.Encode("session", got) // signed with newKey
	_, err = after.Decode("session", newCookie)
	fmt.Println("re-signed cookie after rotation:", err)
	_, err = after.Decode("session", oldCookie)
	fmt.Println("old cookie after rotation:", session.ReasonOf(err))
	// Output:
	// during rotation: "ada" <nil>
	// re-signed cookie after rotation: <nil>
	// old cookie after rotation: tampered
}

// Checking the cookie budget before accepting a change.
func ExampleStore_Fits() {
	store, _ := session.NewStore(&session.Options{Keys: []session.KeyPair{session.GenerateKeyPair(false)}})
	s := session.New()
	_ = s.Set("user", "ada")

	small, _ := session.SetOp("note", json.RawMessage(`"short"`))
	big, _ := session.SetOp("note", json.RawMessage(`"`+strings.Repeat("x", 5000)+`"`))
	fmt.Println("small:", store.Fits(s.Snapshot(), small))
	err := store.Fits(s.Snapshot(), big)
	fmt.Println("big:", errors.Is(err, session.ErrTooLarge))
	// Output:
	// small: <nil>
	// big: true
}
