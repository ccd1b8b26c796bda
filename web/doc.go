// Package web is the browser side of sessionhub, embedded in the binary
// with embed.FS: no build step, no bundler, no dependencies.
//
// # Client
//
// sessionhub.js is an ES module speaking the wire protocol of
// docs/PROTOCOL.md: connect() opens the session's socket and returns a
// client whose set, delete and send return promises settled by the
// server's ack or error. It keeps the client-readable values, reconnects
// with exponential backoff and jitter by the close-code table, resumes
// from the last sequence it saw, and flushes acknowledged changes into the
// cookie (POST /hub/flush) after a short debounce. sessionhub.d.ts
// declares its types. docs/CLIENT.md is the guide.
//
// # Demo
//
// index.html is the demo page's html/template, rendered by the server
// from the session (so a reload shows what the cookie holds); demo.js
// wires its controls to the client and demo.css styles it. The server
// (cmd/sessionhub) serves the page at / and the other files under
// /static/.
//
// # DOM contract
//
// The browser tests rely on these ids: colour-value, theme-value,
// language-value, notifications-value and name-value (the values);
// colour with save-colour, theme, language with save-language,
// notifications, name with login, and logout (the controls); status,
// ack, cookie and seq (the state of the connection, of the last change
// and of the cookie). The body's data-seq is the version the page was
// rendered at, and window.sessionhub is the client.
package web
