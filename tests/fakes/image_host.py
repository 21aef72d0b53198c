"""A loopback image host: generated photo-like images, duplicates, broken files and awkward servers.

Used by the tests and by `make demo`. Routes:
  /img/<n>.jpg        a deterministic generated photo (n picks the picture)
  /dup/<n>.jpg        the same bytes as /img/<n>.jpg (an exact duplicate under another URL)
  /near/<n>.jpg       /img/<n>.jpg resized and recompressed (a near-duplicate)
  /broken/<n>.jpg     truncated JPEG bytes served as image/jpeg
  /html/<n>.jpg       an HTML page served as image/jpeg
  /redirect?to=URL    302 to URL
  /status/<code>      that status
  /flaky/<key>?fail=N fails with 503 N times for this key, then serves an image
  /retry-after/<key>?after=V  429 with Retry-After: V (default 1) once, then an image
  /slow/<n>.jpg?s=S   an image after S seconds; `peak` is the most /slow requests it held at once;
                      with &close=1 the connection closes after the reply
Every route: `peak_connections` is the most client connections open at once (a connection closed by
/slow's close=1 stops counting just before its reply, when the client may already start another).
  /chunked/<n>.jpg    an image with no Content-Length (chunked)
  /endless            an endless chunked body
  /cut                a Content-Length the body never reaches (the connection is closed)
  /list.txt?n=N       a URL list of N images with some duplicates and broken files
"""
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.images import encode, photo_like


def image_bytes(n):
    return encode(photo_like(640 + (n % 5) * 32, 480 + (n % 3) * 24, seed=n), "JPEG", quality=88)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # Clients that hang up early (size caps, cut bodies) are part of the tests, not errors.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def near_copy_bytes(n):
    """The picture of /img/<n>.jpg, slightly smaller and recompressed: a near-duplicate, not an exact one."""
    im = photo_like(640 + (n % 5) * 32, 480 + (n % 3) * 24, seed=n)
    return encode(im.resize((im.width * 9 // 10, im.height * 9 // 10)), "JPEG", quality=70)


class ImageHost:
    def __init__(self, host="127.0.0.1", port=0):
        self.hits = {}
        self.lock = threading.Lock()
        self.active = self.peak = 0
        self.connections = self.peak_connections = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with outer.lock:
                    outer.connections += 1
                    outer.peak_connections = max(outer.peak_connections, outer.connections)
                self.counted = True

            def finish(self):
                self._closing()
                super().finish()

            def _closing(self):
                if getattr(self, "counted", False):
                    self.counted = False
                    with outer.lock:
                        outer.connections -= 1

            def do_GET(self):
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                with outer.lock:
                    outer.hits[parts.path] = outer.hits.get(parts.path, 0) + 1
                    count = outer.hits[parts.path]
                segs = [s for s in parts.path.split("/") if s]
                head = segs[0] if segs else ""
                num = int(segs[1].split(".")[0]) if len(segs) > 1 and segs[1].split(".")[0].isdigit() else 0
                if head in ("img", "dup"):
                    return self._send(200, image_bytes(num))
                if head == "near":
                    return self._send(200, near_copy_bytes(num))
                if head == "broken":
                    return self._send(200, image_bytes(num)[:2000])
                if head == "html":
                    return self._send(200, b"<html><body>not an image</body></html>")
                if head == "redirect":
                    return self._send(302, b"", extra={"Location": query.get("to", ["/"])[0]})
                if head == "status":
                    return self._send(int(segs[1]), b"status")
                if head == "flaky":
                    if count <= int(query.get("fail", ["2"])[0]):
                        return self._send(503, b"try again")
                    return self._send(200, image_bytes(num))
                if head == "retry-after":
                    if count == 1:
                        return self._send(429, b"slow down", extra={"Retry-After": query.get("after", ["1"])[0]})
                    return self._send(200, image_bytes(num))
                if head == "slow":
                    with outer.lock:
                        outer.active += 1
                        outer.peak = max(outer.peak, outer.active)
                    try:
                        time.sleep(float(query.get("s", ["0.5"])[0]))
                    finally:
                        # Counted down before replying: a client sees the reply only after this.
                        with outer.lock:
                            outer.active -= 1
                    if query.get("close") == ["1"]:
                        self._closing()
                        return self._send(200, image_bytes(num), extra={"Connection": "close"})
                    return self._send(200, image_bytes(num))
                if head == "chunked":
                    return self._chunked([image_bytes(num)])
                if head == "cut":  # promises more than it sends, then hangs up
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    self.wfile.write(b"\xff\xd8\xff" + b"x" * 10)
                    self.close_connection = True
                    return None
                if head == "endless":
                    return self._chunked(b"\xff" * 65536 for _ in range(100000))
                if head == "list.txt":
                    return self._send(200, outer.url_list(int(query.get("n", ["50"])[0])).encode(), "text/plain")
                return self._send(404, b"not found", "text/plain")

            def _send(self, status, body, ctype="image/jpeg", extra=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _chunked(self, chunks):
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for chunk in chunks:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = _QuietServer((host, port), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path):
        return self.base_url + path

    def url_list(self, n):
        """n URLs: mostly distinct photos; every 10th an exact duplicate, every 12th a near-duplicate,
        every 25th broken, every 40th HTML."""
        lines = []
        for i in range(n):
            if i % 40 == 39:
                lines.append(self.url(f"/html/{i}.jpg"))
            elif i % 25 == 24:
                lines.append(self.url(f"/broken/{i}.jpg"))
            elif i % 10 == 9:
                lines.append(self.url(f"/dup/{i - 9}.jpg"))
            elif i % 12 == 11:
                lines.append(self.url(f"/near/{i - 11}.jpg"))
            else:
                lines.append(self.url(f"/img/{i}.jpg"))
        return "\n".join(lines) + "\n"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    import sys

    with ImageHost(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8765) as host:
        print(host.base_url, flush=True)
        threading.Event().wait()
