"""What the fake vision-language servers share: a loopback HTTP server, switches, and the replies.

The OpenAI and Ollama fakes differ only in where the image sits in the request and how a reply or
an error is wrapped; the behaviours the tests need are the same switches on both:

    valid            a clean JSON verdict (decision and score derived from the image bytes)
    fenced           the JSON inside a ```json code fence
    prose            the JSON inside chatty prose
    invalid_decision decision "maybe"
    score_high       score 1.7
    long_reason      a 500-character reason
    dup_tags         duplicate, mixed-case tags
    nul              NUL characters (\\u0000) inside the reason and the tags
    nul_garbage      no JSON at all, just text with NUL characters in it
    rate_limit       HTTP 429 with Retry-After (`retry_after` seconds)
    server_error     HTTP 500
    slow             the reply comes after `slow_seconds` (longer than the client's timeout)
    reset            the connection is reset (RST) after the request is read
    echo_auth        HTTP 500 whose body repeats the Authorization header (a leaky upstream)

`mode` applies to every request; `script` is a list of modes used first, one per request;
`faults` is {mode: probability} drawn with a seeded generator; `latency` delays every reply.
"""
import base64
import hashlib
import io
import json
import random
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = (
    "valid", "fenced", "prose", "invalid_decision", "score_high", "long_reason", "dup_tags", "nul", "nul_garbage",
    "rate_limit", "server_error", "slow", "reset", "echo_auth",
)
ERROR_MODES = ("rate_limit", "server_error", "slow", "reset", "echo_auth")


def verdict_for(image_bytes):
    """A deterministic verdict: the same image always gets the same answer, about 60% keep."""
    digest = hashlib.sha256(image_bytes or b"").digest()
    keep = digest[0] < 154
    score = round((0.6 + digest[1] / 255 * 0.4) if keep else (digest[1] / 255 * 0.55), 3)
    room = ("kitchen", "living room", "bedroom", "office", "garage")[digest[2] % 5]
    return {
        "decision": "keep" if keep else "reject",
        "score": score,
        "reason": f"Lived-in {room} with many graspable objects" if keep else f"Tidy {room}, too few objects",
        "tags": [room, "moderate" if keep else "sparse"],
    }


def reply_text(mode, image_bytes):
    """The model's answer text for a content mode."""
    verdict = verdict_for(image_bytes)
    if mode == "invalid_decision":
        verdict["decision"] = "maybe"
    elif mode == "score_high":
        verdict["decision"], verdict["score"] = "keep", 1.7
    elif mode == "long_reason":
        verdict["reason"] = ("A real kitchen with mugs, jars and a kettle on the counter. " * 10)[:500]
    elif mode == "dup_tags":
        verdict["tags"] = ["Kitchen", "kitchen", " KITCHEN ", "Mug", "mug", "Clutter"]
    elif mode == "nul":
        verdict["reason"] = "Lived-in\x00 kitchen\x00"
        verdict["tags"] = ["kitch\x00en", "\x00", "mug"]
    elif mode == "room_object_tags":  # the original's separate lists, as the strict schema now asks
        verdict["room_tags"], verdict["object_tags"] = ["Kitchen"], ["mug", "Cable"]
    elif mode == "nul_garbage":
        return "I cannot\x00 judge\x00 this"
    text = json.dumps(verdict)
    if mode == "fenced":
        return f"```json\n{json.dumps(verdict, indent=2)}\n```"
    if mode == "prose":
        return f"Sure! Here is my assessment of the photo:\n{text}\nLet me know if you need anything else."
    return text


def image_size(image_bytes):
    try:
        from PIL import Image

        with Image.open(io.BytesIO(image_bytes)) as im:
            return list(im.size)
    except Exception:
        return None


class FakeServer:
    """A ThreadingHTTPServer on 127.0.0.1 with a free port; subclasses say how to answer."""

    handler_path = "/"

    def __init__(self, mode="valid", *, latency=0.0, script=None, faults=None, seed=0, retry_after=1,
                 slow_seconds=3.0, api_key=None):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.latency = latency
        self.script = list(script or [])
        self.faults = dict(faults or {})
        self.rng = random.Random(seed)
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.api_key = api_key
        self.requests = []  # one dict per request: path, model, auth, mode, image_size, image_sha
        self._lock = threading.Lock()
        self._httpd = None
        self._thread = None

    # --- lifecycle ---
    def start(self, port=0):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

            def do_POST(self):
                fake._handle(self)

            def do_GET(self):
                if self.path == "/_fake/stats":  # for a fake in another process (bench, demo)
                    return fake._send(self, 200, fake.stats())
                fake._handle_get(self)

            def log_message(self, *args):
                pass

            def finish(self):
                try:
                    super().finish()
                except OSError:  # the client went away (reset or timeout switches)
                    pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

            def handle_error(self, request, client_address):
                import sys

                exc = sys.exc_info()[1]
                if not isinstance(exc, (ConnectionError, OSError)):
                    super().handle_error(request, client_address)

        self._httpd = Server(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),  # quick shutdown
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._httpd.server_address[1]

    @property
    def root_url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self):
        return self.root_url

    # --- behaviour ---
    def next_mode(self):
        with self._lock:
            if self.script:
                return self.script.pop(0)
            if self.faults:
                draw = self.rng.random()
                for mode, p in self.faults.items():
                    if draw < p:
                        return mode
                    draw -= p
            return self.mode

    def stats(self):
        with self._lock:
            modes = {}
            for r in self.requests:
                modes[r["mode"]] = modes.get(r["mode"], 0) + 1
            return {"requests": len(self.requests), "modes": modes,
                    "distinct_images": len({r["image_sha"] for r in self.requests if r["image_sha"]})}

    def count(self, **match):
        with self._lock:
            return sum(all(r.get(k) == v for k, v in match.items()) for r in self.requests)

    def _handle(self, h):
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if not (h.headers.get("Content-Type") or "").startswith("application/json"):
            return self._send(h, 400, self.error_body(400, "Content-Type must be application/json"))
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return self._send(h, 400, self.error_body(400, "request body is not JSON"))
        auth = h.headers.get("Authorization", "")
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            self._log(h, payload, auth, "unauthorized", None)
            return self._send(h, 401, self.error_body(401, "invalid API key"))
        try:
            image_bytes = self.extract_image(payload)
        except ValueError as exc:
            self._log(h, payload, auth, "bad_request", None)
            return self._send(h, 400, self.error_body(400, str(exc)))
        mode = self.next_mode()
        self._log(h, payload, auth, mode, image_bytes)
        if self.latency:
            time.sleep(self.latency)
        if mode == "reset":
            # SO_LINGER 0 turns close() into a TCP reset, as a crashed proxy would.
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
            h.close_connection = True
            return None
        if mode == "slow":
            time.sleep(self.slow_seconds)
        if mode == "rate_limit":
            return self._send(h, 429, self.error_body(429, "rate limit reached, slow down"),
                              {"Retry-After": str(self.retry_after)})
        if mode == "server_error":
            return self._send(h, 500, self.error_body(500, "the server had an error processing your request"))
        if mode == "echo_auth":
            return self._send(h, 500, self.error_body(500, f"upstream failed for request with {auth}"))
        text = reply_text("valid" if mode == "slow" else mode, image_bytes)
        return self._send(h, 200, self.success_body(payload, text))

    def _handle_get(self, h):
        self._send(h, 404, self.error_body(404, "not found"))

    def _log(self, h, payload, auth, mode, image_bytes):
        entry = {
            "path": h.path, "model": payload.get("model"), "auth": auth, "mode": mode,
            "image_size": image_size(image_bytes) if image_bytes else None,
            "image_sha": hashlib.sha256(image_bytes).hexdigest() if image_bytes else None,
            **self.describe(payload),
        }
        with self._lock:
            self.requests.append(entry)

    def _send(self, h, status, body, headers=None):
        data = json.dumps(body).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except OSError:  # the client gave up (its timeout is shorter than our reply)
            h.close_connection = True

    # --- protocol specifics ---
    def describe(self, payload):
        """A few request fields worth asserting on (not the image: the log stays small)."""
        return {}

    def extract_image(self, payload):
        raise NotImplementedError

    def success_body(self, payload, text):
        raise NotImplementedError

    def error_body(self, status, message):
        raise NotImplementedError


def decode_b64(data):
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        raise ValueError("image is not valid base64") from None


def token_estimate(text):
    return max(1, len(text or "") // 4)


def serve_main(cls, argv=None):
    """`python -m tests.fakes.openai_responses [PORT] [--mode M] [--latency S]`: serve until killed (make demo)."""
    import argparse

    parser = argparse.ArgumentParser(description=f"Serve the {cls.__name__} loopback fake")
    parser.add_argument("port", nargs="?", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--mode", default="valid", choices=MODES)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds before each reply")
    parser.add_argument("--api-key", help="require this bearer token")
    args = parser.parse_args(argv)
    fake = cls(args.mode, latency=args.latency, api_key=args.api_key)
    fake.start(port=args.port)
    print(f"{cls.__name__} serving at {fake.base_url} (mode {args.mode}, latency {args.latency}s)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
