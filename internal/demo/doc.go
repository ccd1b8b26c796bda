// Package demo is the demo app of cmd/sessionhub: a preferences page
// whose settings travel over the session's WebSocket.
//
// # Keys
//
// colour (a CSS named colour or #rrggbb), theme (light, dark or system),
// language (a BCP 47 tag such as en or pt-BR) and notifications (a
// boolean) are readable and writable by the browser, each with its
// validator; name, set by POST /login, is readable only. Keys returns the
// policies for hub.Options.ClientKeys.
//
// # Routes
//
//   - GET / renders the page (web's index.html) from the session, so a
//     reload shows what the cookie holds;
//   - GET /api/session returns the client-readable view {"seq","values"};
//   - POST /api/settings writes a JSON object of settings through the log
//     (null deletes a key): open tabs see it live; 400 with a JSON error
//     (invalid_json, unknown_key, invalid_value) otherwise;
//   - POST /login (JSON {"name"} or a form) rotates the session ID and
//     closes the old ID's sockets with 4100;
//   - POST /logout ends the session: the cookie is deleted and every socket
//     of the session, on every instance, is closed with 4000;
//   - GET /static/ serves the page's script, style sheet and the client.
//
// State-changing routes refuse cross-site requests with 403.
package demo
