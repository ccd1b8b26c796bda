#!/usr/bin/python3
"""Writes vectors.json: session cookies made by Flask's and Quart's own
SecureCookieSessionInterface (itsdangerous URLSafeTimedSerializer carrying
the TaggedJSONSerializer), at a fixed time, for session/flask_test.go.

Run with Debian's python3-flask 2.2 and python3-quart 0.18:
    /usr/bin/python3 session/testdata/flask/generate.py > session/testdata/flask/vectors.json
"""
import datetime
import json
import sys
import uuid
from unittest import mock

import flask
import itsdangerous
import quart
from markupsafe import Markup

# The time every vector is signed at (2025-06-01T12:00:00Z).
TIMESTAMP = 1748779200
SECRET = "flask-test-secret"
OTHER = "another-secret"


def cases():
    """(name, session dict) pairs: every tag, nesting, escapes, sizes."""
    return [
        ("empty", {}),
        ("user", {"user": "ada"}),
        ("scalars", {"n": 1, "f": 1.5, "big": 12345678901234567890, "t": True, "no": False, "none": None, "neg": -0.25, "exp": 1e300}),
        ("unicode", {"name": "Zoë ☃ 😀", "ctrl": "tab\tnl\n\"q\" \\ \x7f \x01", "html": "<a href='x'>&</a>"}),
        ("unicode_keys", {"Zo\u00eb": 1, "a\"b\\c": 2, "\U0001f600": 3, "<&>": 4, "\x7f\n": 5}),
        ("nested", {"user": {"name": "ada", "roles": ["admin", "ops"], "z": {"b": 2, "a": 1}}, "list": [1, [2, [3]]]}),
        ("tuple", {"t": (1, "two", (3,))}),
        ("uuid", {"u": uuid.UUID("12345678-1234-5678-1234-567812345678")}),
        ("bytes", {"b": b"\x00\x01binary\xff"}),
        ("markup", {"m": Markup("<b>bold</b>")}),
        ("datetime", {"d": datetime.datetime(2024, 2, 29, 13, 14, 15, tzinfo=datetime.timezone.utc)}),
        ("dict_tag", {"di": {" t": [1, 2]}, "deep": [{" m": "x"}]}),
        ("all_tags", {"t": (b"x", uuid.UUID(int=1)), "m": [Markup("&amp;")], "d": {"when": datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)}, "di": {" di": (1,)}}),
        ("permanent", {"_permanent": True, "user": "ada"}),
        ("hub_fields", {"_sessionhub": {"c": 1748775600, "i": "0123456789abcdef0123456789abcdef", "s": 42}, "colour": "red", "user": "ada"}),
        ("flashes", {"_flashes": [("message", "Logged in")], "csrf_token": "f" * 40}),
        # Long and repetitive: compressed (a leading "." in the cookie).
        ("compressed", {"user": "ada", "history": ["page-%d" % (i % 5) for i in range(60)], "prefs": {"colour": "red" * 20}}),
        ("compressed_tags", {"rows": [(i, uuid.UUID(int=i), b"row") for i in range(20)]}),
    ]


def flask_serializer(app):
    return app.session_interface.get_signing_serializer(app)


def main():
    vectors = []
    with mock.patch("itsdangerous.timed.time.time", return_value=TIMESTAMP + 0.75):
        fapp = flask.Flask("vectors")
        fapp.secret_key = SECRET
        with fapp.app_context():
            s = flask_serializer(fapp)
            for name, data in cases():
                cookie = s.dumps(data)
                payload = flask_payload(fapp, data)
                vectors.append({"name": name, "producer": "flask", "secret": SECRET, "timestamp": TIMESTAMP,
                                "cookie": cookie, "compressed": cookie.startswith("."), "payload": payload})
            other = flask.Flask("other")
            other.secret_key = OTHER
            with other.app_context():
                cookie = flask_serializer(other).dumps({"user": "mallory"})
                vectors.append({"name": "other_key", "producer": "flask", "secret": OTHER, "timestamp": TIMESTAMP,
                                "cookie": cookie, "compressed": False, "payload": flask_payload(other, {"user": "mallory"})})
        qapp = quart.Quart("vectors")
        qapp.secret_key = SECRET
        qs = qapp.session_interface.get_signing_serializer(qapp)
        for name, data in cases():
            if name in ("markup",):
                continue
            cookie = qs.dumps(data)
            payload = qapp.session_interface.serializer.dumps(data)
            vectors.append({"name": "quart_" + name, "producer": "quart", "secret": SECRET, "timestamp": TIMESTAMP,
                            "cookie": cookie, "compressed": cookie.startswith("."), "payload": payload})
    json.dump({"flask": flask.__version__, "quart": quart.__version__ if hasattr(quart, "__version__") else "0.18",
               "itsdangerous": itsdangerous.__version__, "vectors": vectors}, sys.stdout, indent=1, ensure_ascii=True)
    sys.stdout.write("\n")


def flask_payload(app, data):
    """The JSON text the cookie carries: the TaggedJSONSerializer's dumps."""
    return app.session_interface.serializer.dumps(data)


if __name__ == "__main__":
    main()
