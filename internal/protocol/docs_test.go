package protocol

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

// docs/PROTOCOL.md's table of error codes is Codes: every code with its
// HTTP status, and no other.
func TestProtocolDocListsTheCodeTable(t *testing.T) {
	b, err := os.ReadFile("../../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ([0-9]{3}) \\|")
	listed := map[Code]int{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		status, _ := strconv.Atoi(m[2])
		listed[Code(m[1])] = status
	}
	for _, c := range Codes {
		status, ok := listed[c.Code]
		switch {
		case !ok:
			t.Errorf("docs/PROTOCOL.md's code table has no row for %s", c.Code)
		case status != c.Status:
			t.Errorf("docs/PROTOCOL.md gives %s the status %d; the table answers %d", c.Code, status, c.Status)
		}
		delete(listed, c.Code)
	}
	for code := range listed {
		t.Errorf("docs/PROTOCOL.md's code table lists %s, which Codes does not have", code)
	}
}
