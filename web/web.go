package web

import (
	"embed"
	"io/fs"
)

//go:embed index.html demo.js demo.css sessionhub.js sessionhub.d.ts
var files embed.FS

// FS returns the embedded files: the client library (sessionhub.js and
// its declarations sessionhub.d.ts), the demo page's template
// (index.html, an html/template) and its script and style sheet (demo.js,
// demo.css).
func FS() fs.FS { return files }

// Template is the name of the demo page's html/template in FS.
const Template = "index.html"
