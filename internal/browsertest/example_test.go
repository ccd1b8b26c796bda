package browsertest_test

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"

	"github.com/sessionhub/sessionhub/internal/browsertest"
)

// NotBlank tells a screenshot that shows a page from a blank one.
func ExampleNotBlank() {
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for i := range img.Pix {
		img.Pix[i] = 0xff // white
	}
	var blank bytes.Buffer
	if err := png.Encode(&blank, img); err != nil {
		panic(err)
	}
	_, err := browsertest.NotBlank(blank.Bytes(), 2)
	fmt.Println(err)

	for x := range 64 { // draw a gradient line
		img.Set(x, x*48/64, color.RGBA{R: uint8(4 * x), G: 0x33, B: 0x99, A: 0xff})
	}
	var drawn bytes.Buffer
	if err := png.Encode(&drawn, img); err != nil {
		panic(err)
	}
	st, err := browsertest.NotBlank(drawn.Bytes(), 2)
	fmt.Println(st.Width, st.Height, st.Colours, err)
	// Output:
	// browsertest: the image is blank: all 64x48 pixels have one colour
	// 64 48 65 <nil>
}
