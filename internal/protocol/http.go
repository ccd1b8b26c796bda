package protocol

import (
	"encoding/json"
	"net/http"
)

// WriteCode answers an HTTP request with the JSON error of code, at the
// code's status: {"error":{"code":...,"message":...}}. An empty message
// is the code's default message.
func WriteCode(w http.ResponseWriter, code Code, message string) {
	info := Info(code)
	if message == "" {
		message = info.Message
	}
	WriteError(w, info.Status, string(code), message)
}

// WriteError writes a JSON error body {"error":{"code","message"}} with
// status. Applications' own codes (the demo's invalid_json, say) go
// through it; the hub's codes go through WriteCode.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	WriteJSON(w, status, HTTPError{Error: HTTPErrorBody{Code: Code(code), Message: message}})
}

// WriteJSON writes v as a JSON response with status; a session's answer
// is never cached.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
