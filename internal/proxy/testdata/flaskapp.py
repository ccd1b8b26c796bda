"""A small Flask app that knows nothing of sessionhub, for internal/proxy's
tests. It listens on 127.0.0.1 on a free port and prints "port N".

    SECRET_KEY=... /usr/bin/python3 flaskapp.py
"""
import os
import sys

from flask import Flask, jsonify, request, session
from markupsafe import escape
from werkzeug.serving import make_server

app = Flask(__name__)
app.secret_key = os.environ["SECRET_KEY"]


@app.post("/login")
def login():
    session["user"] = request.args["user"]
    return jsonify(ok=True)


@app.get("/session")
def show():
    return jsonify(session=dict(session), hub_session=request.headers.get("Sessionhub-Session"))


@app.post("/write")
def write():
    session[request.args["key"]] = request.args["value"]
    return jsonify(ok=True)


@app.post("/logout")
def logout():
    session.clear()
    return jsonify(ok=True)


@app.get("/page")
def page():
    # The page renders the colour from the session; its one script tag
    # writes it over the hub's socket (the Save button).
    colour = escape(session.get("colour", "none"))
    return f"""<!doctype html>
<title>flask app</title>
<link rel="icon" href="data:,">
<p>colour: <span id="colour" style="background: {colour}; padding: 0 2em">{colour}</span></p>
<p><input id="pick"> <button id="save">Save</button> <span id="state"></span></p>
<script type="module">
import {{ connect }} from "/hub/sessionhub.js";
const hub = (window.sessionhub = connect());
const state = document.getElementById("state");
document.getElementById("save").onclick = () => {{
  state.textContent = "pending";
  hub.set("colour", document.getElementById("pick").value).then(
    () => {{ state.textContent = "acknowledged"; }},
    (err) => {{ state.textContent = "error: " + err.code; }});
}};
</script>
"""


if __name__ == "__main__":
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    print("port", srv.server_port, flush=True)
    srv.serve_forever()
