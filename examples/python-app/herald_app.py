#!/usr/bin/env python3
"""A Herald app in Python.

Opens the app's push channel bound to toast and tile, prints its URI and
its Web Push keys, and prints every event as it arrives: raw
notifications, Web Push messages (decrypted with the `cryptography`
library, RFC 8291), foreground toasts, a new URI, the link's state,
errors; and its live tiles whenever they change. The event stream is
Server-Sent Events over the daemon's Unix socket: plain HTTP, so no
websocket library is needed. When the daemon restarts, the app reconnects
and resumes after the last event it handled (Last-Event-ID).

    python3 herald_app.py [APP]      # APP defaults to "py-demo"

It needs `cryptography` (Debian: apt install python3-cryptography; else
pip install cryptography). The socket is $HERALD_SOCKET, else the per-user
default. The Web Push keys are made on first run and kept (mode 0600) in
$XDG_STATE_HOME/herald-examples/APP-webpush-keys.json (default
~/.local/state/...), so that senders holding them keep working.

It prints one line per thing that happens:

    uri https://127.0.0.1:8790/throttledthirdparty/01.00/…
    webpush-keys p256dh=<base64url> auth=<base64url>
    connection up
    raw <message id> <body, as text when it is UTF-8, else base64>
    webpush <message id> <plaintext, as raw>   (or: webpush <id> undecryptable: <why>)
    toast <text1> | <text2> | <param>
    tile <tile id, or "primary"> <template, or "-"> <Name=Value ...>
    error <kind> <message>
"""

import base64
import http.client
import json
import os
import secrets
import socket
import sys
import threading
import time
import urllib.parse

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
except ImportError as e:
    print("herald_app.py needs the cryptography library to decrypt Web Push: "
          "apt install python3-cryptography, or pip install cryptography (%s)" % e, file=sys.stderr)
    sys.exit(2)


def default_socket():
    if os.environ.get("HERALD_SOCKET"):
        return os.environ["HERALD_SOCKET"]
    if os.geteuid() == 0:
        return "/run/herald/herald.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "herald", "herald.sock")
    return os.path.expanduser("~/.local/share/herald/herald.sock")


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class WebPushKeys:
    """The app's Web Push keys (RFC 8291): a P-256 key pair and a 16-byte
    authentication secret, made once and kept in a file only the user can
    read. The application server gets the public key and the secret with
    the channel URI; the private key never leaves this file."""

    def __init__(self, app):
        state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
        path = os.path.join(state, "herald-examples", "%s-webpush-keys.json" % app)
        try:
            with open(path) as f:
                k = json.load(f)
            self.priv = ec.derive_private_key(int.from_bytes(unb64url(k["private"]), "big"), ec.SECP256R1())
            self.auth = unb64url(k["auth"])
        except FileNotFoundError:
            self.priv = ec.generate_private_key(ec.SECP256R1())
            self.auth = secrets.token_bytes(16)
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"p256dh": self.p256dh(), "auth": b64url(self.auth),
                           "private": b64url(self.priv.private_numbers().private_value.to_bytes(32, "big"))}, f)
                f.write("\n")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SystemExit("herald_app.py: reading %s: %s; remove it to make new keys" % (path, e))
        self.public = self.priv.public_key().public_bytes(serialization.Encoding.X962,
                                                          serialization.PublicFormat.UncompressedPoint)

    def p256dh(self):
        return b64url(self.priv.public_key().public_bytes(serialization.Encoding.X962,
                                                          serialization.PublicFormat.UncompressedPoint))

    def decrypt(self, body):
        """Undoes RFC 8291's aes128gcm encryption (RFC 8188's one record)."""
        if len(body) < 21:
            raise ValueError("shorter than the aes128gcm header")
        salt, rs, idlen = body[:16], int.from_bytes(body[16:20], "big"), body[20]
        if idlen != 65 or len(body) < 21 + idlen:
            raise ValueError("the key id is not the sender's P-256 public key")
        if rs < 18:
            raise ValueError("record size %d" % rs)
        sender = body[21:21 + idlen]
        ciphertext = body[21 + idlen:]
        if len(ciphertext) > rs:
            raise ValueError("more than one record")
        shared = self.priv.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender))
        ikm = HKDF(hashes.SHA256(), 32, salt=self.auth,
                   info=b"WebPush: info\x00" + self.public + sender).derive(shared)
        cek = HKDF(hashes.SHA256(), 16, salt=salt, info=b"Content-Encoding: aes128gcm\x00").derive(ikm)
        nonce = HKDF(hashes.SHA256(), 12, salt=salt, info=b"Content-Encoding: nonce\x00").derive(ikm)
        try:
            plain = AESGCM(cek).decrypt(nonce, ciphertext, None)
        except InvalidTag:
            raise ValueError("not encrypted for this app's keys")
        # The last record ends in 0x02 and zero padding (RFC 8188 section 2).
        plain = plain.rstrip(b"\x00")
        if not plain or plain[-1] != 2:
            raise ValueError("bad padding delimiter")
        return plain[:-1]


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
        self.keys = WebPushKeys(app)
        self.uri = None
        self.last_id = 0  # the last event handled
        self.tiles_seen = {}  # tile id -> updated_at printed

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
        # Opening is idempotent: the same channel and URI every time. Raw
        # and Web Push need no binding; toast and tile do, or senders get
        # 200 Suppressed.
        ch = self.request("POST", "/v1/apps/%s/channel" % self.app, {"toast": True, "tile": True})
        self.set_uri(ch["uri"])

    def set_uri(self, uri):
        if uri != self.uri:
            self.uri = uri
            say("uri", uri)
            # What the app hands its application server with the URI.
            say("webpush-keys", "p256dh=" + self.keys.p256dh(), "auth=" + b64url(self.keys.auth))

    def ack(self, event_id):
        self.request("POST", "/v1/apps/%s/events/ack" % self.app, {"ack": event_id})

    def handle(self, ev):
        kind = ev["type"]
        if kind == "raw":
            say("raw", ev.get("message_id", ""), text(base64.b64decode(ev.get("body", ""))))
        elif kind == "webpush":
            # The body is the sender's RFC 8291 ciphertext, which only this
            # app's private key and auth secret open. Anyone may post to
            # the URI, so a body that does not decrypt is reported, never
            # fatal.
            try:
                plain = self.keys.decrypt(base64.b64decode(ev.get("body", "")))
            except ValueError as e:
                say("webpush", ev.get("message_id", ""), "undecryptable: %s" % e)
                return
            say("webpush", ev.get("message_id", ""), text(plain))
        elif kind == "toast":
            say("toast", "%s | %s | %s" % (ev.get("text1", ""), ev.get("text2", ""), ev.get("param", "")))
        elif kind == "uri":
            self.set_uri(ev["uri"])
        elif kind == "connection":
            say("connection", "up" if ev.get("connected") else "down")
        elif kind == "error":
            say("error", ev.get("error_kind", ""), ev.get("message", ""))

    def read_tiles(self):
        """Prints the app's live tiles that changed since it last looked.
        Tiles belong to the shell (the daemon applies them whether the app
        runs or not), so the event stream carries none: an app reads its
        tiles when it wants them, as a phone app read ShellTile.ActiveTiles."""
        tiles = self.request("GET", "/v1/tiles?app=" + urllib.parse.quote(self.app, safe=""))
        for t in tiles or []:
            if self.tiles_seen.get(t["tile_id"]) == t["updated_at"]:
                continue
            self.tiles_seen[t["tile_id"]] = t["updated_at"]
            fields = ["%s=%s" % (k, v) for k, v in sorted((t.get("fields") or {}).items())]
            say("tile", t["tile_id"] or "primary", t.get("template") or "-", *fields)

    def watch_tiles(self):
        """Reads the tiles once a second; a daemon that is restarting just
        means no answer this time."""
        while True:
            try:
                self.read_tiles()
            except (OSError, http.client.HTTPException, RuntimeError, ValueError):
                pass
            time.sleep(1)

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
        threading.Thread(target=self.watch_tiles, daemon=True).start()
        while True:
            try:
                self.open_channel()
                self.listen()
            except (OSError, http.client.HTTPException, RuntimeError, ValueError) as e:
                print("herald: %s; retrying" % e, file=sys.stderr, flush=True)
            time.sleep(0.5)


def text(b):
    """A body as text when it is UTF-8, else base64."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(b).decode()


_out = threading.Lock()


def say(*words):
    # Two threads print (events, tiles): one line at a time.
    with _out:
        print(" ".join(str(w) for w in words), flush=True)


def main():
    app = sys.argv[1] if len(sys.argv) > 1 else "py-demo"
    try:
        App(default_socket(), app).run()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
