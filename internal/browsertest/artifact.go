package browsertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ModuleRoot returns the directory of the main module's go.mod, from
// `go env GOMOD` run in the current directory (a test runs in its
// package's directory).
var ModuleRoot = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("browsertest: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("browsertest: not inside a Go module")
	}
	return filepath.Dir(gomod), nil
})

// ArtifactsDir returns where test artifacts go: $ARTIFACTS_DIR when set
// (a relative path is taken from the module root, not from the test's
// package directory), else .artifacts under the module root.
func ArtifactsDir() (string, error) {
	d := os.Getenv("ARTIFACTS_DIR")
	if filepath.IsAbs(d) {
		return d, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	if d != "" {
		return filepath.Join(root, d), nil
	}
	return filepath.Join(root, ".artifacts"), nil
}

// SaveArtifact writes data to a file named after the test and name in
// [ArtifactsDir], logs where, and returns the path. It fails the test when
// the file cannot be written.
func SaveArtifact(t testing.TB, name string, data []byte) string {
	t.Helper()
	dir, err := ArtifactsDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	path := filepath.Join(dir, artifactName(t.Name()+"-"+name))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	t.Logf("artifact: %s (%d bytes)", path, len(data))
	return path
}

// artifactName makes a file name of s: letters, digits, '.', '-' and '_'
// are kept, anything else becomes '_'.
func artifactName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

// Screenshot returns a PNG of the tab's whole page, beyond the viewport.
func (tab *Tab) Screenshot() []byte {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tab.fatalf("screenshot: %v", err)
	}
	return buf
}

// saveFailureScreenshot saves a screenshot of the tab for a failed test,
// best effort: it must not fail (again) nor hang.
func (tab *Tab) saveFailureScreenshot() {
	ctx, cancel := context.WithTimeout(tab.ctx, 10*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tab.t.Logf("%s: no failure screenshot: %v", tab.name, err)
		return
	}
	dir, err := ArtifactsDir()
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		tab.t.Logf("%s: no failure screenshot: %v", tab.name, err)
		return
	}
	path := filepath.Join(dir, artifactName(tab.t.Name()+"-"+tab.name+"-failed.png"))
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		tab.t.Logf("%s: no failure screenshot: %v", tab.name, err)
		return
	}
	tab.t.Logf("%s: failure screenshot: %s", tab.name, path)
}

// ImageStats describes a decoded image.
type ImageStats struct {
	Width, Height int
	// Colours is the number of distinct colours (RGBA), counted up to
	// maxCountedColours.
	Colours int
	// Dominant is the share of the pixels (0 to 1) that have the most
	// common colour.
	Dominant float64
}

const maxCountedColours = 1 << 16

// NotBlank decodes the PNG and checks that it shows something: its
// dimensions are not zero, it has at least minColours distinct colours,
// and no single colour covers all of it. It returns the image's stats
// either way (zero when it does not decode).
func NotBlank(pngData []byte, minColours int) (ImageStats, error) {
	img, err := png.Decode(bytes.NewReader(pngData))
	if err != nil {
		return ImageStats{}, fmt.Errorf("browsertest: decoding the PNG: %w", err)
	}
	st := stats(img)
	switch {
	case st.Width <= 0 || st.Height <= 0:
		return st, fmt.Errorf("browsertest: the image is empty (%dx%d)", st.Width, st.Height)
	case st.Dominant >= 1:
		return st, fmt.Errorf("browsertest: the image is blank: all %dx%d pixels have one colour", st.Width, st.Height)
	case st.Colours < minColours:
		return st, fmt.Errorf("browsertest: the image has %d distinct colours, want at least %d", st.Colours, minColours)
	}
	return st, nil
}

func stats(img image.Image) ImageStats {
	b := img.Bounds()
	st := ImageStats{Width: b.Dx(), Height: b.Dy()}
	if st.Width <= 0 || st.Height <= 0 {
		return st
	}
	counts := make(map[[4]uint32]int)
	most := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			k := [4]uint32{r, g, bl, a}
			n, seen := counts[k]
			if !seen && len(counts) >= maxCountedColours {
				continue
			}
			counts[k] = n + 1
			most = max(most, n+1)
		}
	}
	st.Colours = len(counts)
	st.Dominant = float64(most) / float64(st.Width*st.Height)
	return st
}
