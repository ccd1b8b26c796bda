package session

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCookieLenMatchesCookie holds Fits' arithmetic to the real encoder:
// for sessions of every size, plain and encrypted, permanent or not, the
// computed length is the length of the Set-Cookie Cookie builds.
func TestCookieLenMatchesCookie(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, encrypt := range []bool{false, true} {
		for _, permanent := range []bool{false, true} {
			st, err := NewStore(&Options{Keys: []KeyPair{GenerateKeyPair(encrypt)}, Domain: "example.com", Partitioned: permanent, SameSite: http.SameSiteStrictMode})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 200 {
				snap := Snapshot{ID: NewID(), Seq: rng.Uint64() >> rng.IntN(64), Permanent: permanent, Created: time.Now(), Pinned: i%2 == 0, Values: map[string]json.RawMessage{}}
				for k := range rng.IntN(12) {
					v, _ := json.Marshal(strings.Repeat("<&é\"x", rng.IntN(60)))
					snap.Values[fmt.Sprintf("key-%d", k)] = v
				}
				want, err := st.Cookie(snap)
				if err != nil {
					continue // too large: Fits must say so too
				}
				got, err := st.cookieLen(snap)
				if err != nil || got != len(want.String()) {
					t.Fatalf("encrypt %v permanent %v: cookieLen %d, Cookie %d (%v)", encrypt, permanent, got, len(want.String()), err)
				}
			}
		}
	}
}
