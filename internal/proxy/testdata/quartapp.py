"""A small Quart app that knows nothing of sessionhub, for internal/proxy's
tests. It listens on 127.0.0.1 on a free port and prints "port N".

Its websocket routes are docs/FLASK.md's first example, Quart's caveat and
its solution. /ws/colour-lost writes session["colour"] during websocket
handling: Quart drops that write when the handler returns and logs "Secure
Cookie Session modified during websocket handling. These modifications will
be lost as a cookie cannot be set." /ws/colour stages the write with the
server API instead, for the session named by the Sessionhub-Session header
the proxy sends: the next request sees it.

    SECRET_KEY=... SESSIONHUB_API_TOKEN=... /usr/bin/python3 quartapp.py
"""
import asyncio
import json
import os
import socket
import urllib.request

from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, jsonify, request, session, websocket

app = Quart(__name__)
app.secret_key = os.environ["SECRET_KEY"]
TOKEN = os.environ.get("SESSIONHUB_API_TOKEN", "")


@app.post("/login")
async def login():
    session["user"] = request.args["user"]
    return jsonify(ok=True)


@app.get("/session")
async def show():
    return jsonify(session=dict(session), hub_session=request.headers.get("Sessionhub-Session"))


@app.websocket("/ws/echo")
async def echo():
    while True:
        msg = await websocket.receive()
        await websocket.send("echo " + msg + " user=" + str(session.get("user")))


def stage(host, sid, ops):
    req = urllib.request.Request(
        f"http://{host}/hub/api/sessions/{sid}/ops",
        data=json.dumps({"ops": ops}).encode(),
        headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)["seq"]


@app.websocket("/ws/colour-lost")
async def colour_lost():
    session["colour"] = await websocket.receive()
    await websocket.send("ok")


@app.websocket("/ws/colour")
async def colour():
    sid = websocket.headers["Sessionhub-Session"]
    while True:
        colour = await websocket.receive()
        # session["colour"] = colour would be lost: the server API stages it.
        seq = await asyncio.to_thread(stage, websocket.host, sid, [{"type": "set", "key": "colour", "value": colour}])
        await websocket.send(f"ok {seq}")


async def main():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.set_inheritable(True)
    print("port", sock.getsockname()[1], flush=True)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    await serve(app, config)


if __name__ == "__main__":
    asyncio.run(main())
