package demo_test

import (
	"encoding/json"
	"fmt"

	"github.com/sessionhub/sessionhub/internal/demo"
)

// The validators the hub runs on browser writes (and POST /api/settings
// on HTTP ones).
func ExampleKeys() {
	keys := demo.Keys()
	for _, v := range []string{`"teal"`, `"#336699"`, `"blurple"`} {
		fmt.Println(v, keys["colour"].Validate(json.RawMessage(v)))
	}
	fmt.Println(keys["language"].Validate(json.RawMessage(`"pt-BR"`)))
	fmt.Println("name writable by the browser:", keys["name"].Write)
	// Output:
	// "teal" <nil>
	// "#336699" <nil>
	// "blurple" want a CSS colour name or #rrggbb
	// <nil>
	// name writable by the browser: false
}
