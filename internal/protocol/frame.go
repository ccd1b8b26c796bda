package protocol

// Subprotocol is the WebSocket subprotocol (Sec-WebSocket-Protocol) in
// which a server frame may carry several messages, each one line of JSON,
// separated by "\n". A client that asks for no subprotocol gets exactly
// one message per frame.
const Subprotocol = "sessionhub.v2"
