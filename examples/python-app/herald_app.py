#!/usr/bin/env python3
"""A Herald app in Python, standard library only.

Opens the app's push channel, prints its URI, and prints each raw
notification and foreground toast as it arrives. The event stream is
Server-Sent Events over the daemon's Unix socket: plain HTTP, so no
websocket library is needed. When the daemon restarts, the app reconnects
and resumes after the last event it handled (Last-Event-ID).

    python3 herald_app.py [APP]      # APP defaults to "py-demo"

The socket is $HERALD_SOCKET, else the per-user default.

It prints one line per thing that happens:

    uri http://127.0.0.1:8790/throttledthirdparty/01.00/…
    connection up
    raw <message id> <body, as text when it is UTF-8, else base64>
    toast <text1> | <text2> | <param>
"""

import base64
import http.client
import json
import os
import socket
import sys
import time


def default_socket():
    if os.environ.get("HERALD_SOCKET"):
        return os.environ["HERALD_SOCKET"]
    if os.geteuid() == 0:
        return "/run/herald/herald.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "herald", "herald.sock")
    return os.path.expanduser("~/.local/share/herald/herald.sock")


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix socket: the local API's transport."""

    def __init__(self, path, timeout=None):
        super().__init__("herald", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class App:
    def __init__(self, sock, app):
        self.sock = sock
        self.app = app
        self.uri = None
        self.last_id = 0  # the last event handled

    def request(self, method, path, body=None):
        conn = UnixHTTPConnection(self.sock, timeout=30)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            if resp.status >= 400:
                err = json.loads(payload or b"{}")
                raise RuntimeError("%s %s: %d %s: %s" % (method, path, resp.status,
                                                         err.get("code"), err.get("message")))
            return json.loads(payload) if payload else None
        finally:
            conn.close()

    def open_channel(self):
        # Opening is idempotent: the same channel and URI every time.
        ch = self.request("POST", "/v1/apps/%s/channel" % self.app, {"toast": True})
        self.set_uri(ch["uri"])

    def set_uri(self, uri):
        if uri != self.uri:
            self.uri = uri
            say("uri", uri)

    def ack(self, event_id):
        self.request("POST", "/v1/apps/%s/events/ack" % self.app, {"ack": event_id})

    def handle(self, ev):
        kind = ev["type"]
        if kind == "raw":
            body = base64.b64decode(ev.get("body", ""))
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = ev.get("body", "")
            say("raw", ev.get("message_id", ""), text)
        elif kind == "toast":
            say("toast", "%s | %s | %s" % (ev.get("text1", ""), ev.get("text2", ""), ev.get("param", "")))
        elif kind == "uri":
            self.set_uri(ev["uri"])
        elif kind == "connection":
            say("connection", "up" if ev.get("connected") else "down")
        elif kind == "error":
            say("error", ev.get("error_kind", ""), ev.get("message", ""))

    def listen(self):
        """Reads the event stream until it ends."""
        conn = UnixHTTPConnection(self.sock)
        try:
            headers = {"Accept": "text/event-stream"}
            if self.last_id:
                headers["Last-Event-ID"] = str(self.last_id)
            conn.request("GET", "/v1/apps/%s/events?foreground=1" % self.app, headers=headers)
            resp = conn.getresponse()
            if resp.status != 200:
                raise RuntimeError("event stream: %d %s" % (resp.status, resp.read()[:200]))
            event = {}
            while True:
                line = resp.readline()
                if not line:
                    return  # the daemon went away
                line = line.decode("utf-8").rstrip("\r\n")
                if line:
                    field, _, value = line.partition(":")
                    event[field] = value[1:] if value.startswith(" ") else value
                    continue
                # A blank line ends an event.
                if event.get("event") == "end":
                    say("stream-ended", event.get("data", ""))
                    return
                if "data" in event:
                    ev = json.loads(event["data"])
                    self.handle(ev)
                    self.last_id = ev["id"]
                    self.ack(ev["id"])
                event = {}
        finally:
            conn.close()

    def run(self):
        while True:
            try:
                self.open_channel()
                self.listen()
            except (OSError, http.client.HTTPException, RuntimeError, ValueError) as e:
                print("herald: %s; retrying" % e, file=sys.stderr, flush=True)
            time.sleep(0.5)


def say(*words):
    print(" ".join(str(w) for w in words), flush=True)


def main():
    app = sys.argv[1] if len(sys.argv) > 1 else "py-demo"
    try:
        App(default_socket(), app).run()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
