"""A loopback server that answers slowly on purpose: headers or body one byte at a time."""
import socket
import socketserver
import threading
import time


class DripServer:
    """Modes (the request path): /body (headers at once, then the body one byte every `gap` s),
    /headers (the status line, then header bytes one every `gap` s, never finishing),
    /steady?rate=N (a 200 KB body at about N bytes a second), /503 (always 503)."""

    def __init__(self, gap=0.2):
        self.gap = gap
        self.hits = 0
        self.stopping = threading.Event()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                outer.hits += 1
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                path = data.split(b" ", 2)[1].decode()
                try:
                    outer._answer(self.request, path)
                except OSError:
                    pass  # the client hung up: that is what the tests want

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _drip(self, sock, data):
        for i in range(len(data)):
            if self.stopping.is_set():
                return
            sock.sendall(data[i:i + 1])
            time.sleep(self.gap)

    def _answer(self, sock, path):
        if path.startswith("/503"):
            sock.sendall(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        elif path.startswith("/body"):
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n")
            self._drip(sock, b"x" * 100000)
        elif path.startswith("/headers"):
            sock.sendall(b"HTTP/1.1 200 OK\r\n")
            self._drip(sock, b"X-Slow: " + b"a" * 100000)
        elif path.startswith("/steady"):
            rate = int(path.split("rate=")[1])
            body = b"y" * 200_000
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            step = max(1, rate // 20)
            for i in range(0, len(body), step):
                if self.stopping.is_set():
                    return
                sock.sendall(body[i:i + step])
                time.sleep(0.05)
        sock.shutdown(socket.SHUT_WR)

    def url(self, path):
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
