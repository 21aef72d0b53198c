"""A loopback Baidu Images: keyword search (image.baidu.com) and reverse-image search (graph.baidu.com).

It speaks the protocols of reference/baidu-protocol.md and serves the images it lists, so the real
crawlers run against it unchanged through the real `requests` client. Switches (attributes, change
them at any time) reproduce what breaks clients in the wild:

keyword search (§1)
  strict            antiFlag unless the BAIDUID cookie, User-Agent, Accept-Language zh-CN and a Referer
                    on this host are sent (True)
  antiflag_after    answer antiFlag after this many acjson requests (None: never) ...
  antiflag_count    ... for this many requests, then recover (None: for ever)
  captcha_after     302 to /static/captcha/tuxing.html (wappass) after this many acjson requests ...
  captcha_count     ... for this many requests (None: for ever)
  bad_escapes       put `\\'` inside titles (invalid JSON)
  control_chars     put raw control characters inside strings
  string_dims       widths/heights as strings, "" or 0
  trailing_empty    end `data` with `{}` (True, as Baidu does)
  objurl_mode       "encrypted" | "plain" | "gimg2" | "mixed" (cycles the three by rank)
  fail_originals    set of image ids (or "all") whose original URL answers 404
  fail_replace      replaceUrl copies answer 404 too (so the thumbnail is the only copy left)
  list_cap          the reachable cap: listNum never exceeds it (Baidu: about 2,000)
  rn_cap            the largest `rn` honoured (60)
  queries           {query: [image ids]}; an unknown query gets `default_results` ids of its own
reverse-image search (§2)
  require_token     upload without an `Acs-Token` header answers status 2 "系统异常" (True)
  result_mode       "simipic" (same + simipic cards) | "same_only" | "noresult"
  state_mode        "carddata" | "preloaded" | "preloaded_b64"
  similar_total     how many similar images pcsimi lists before it runs dry
  similar_plan      list cycled per similar index: "copy" (the seed re-encoded), "near" (a mild edit
                    of the seed), "far" (an unrelated picture)

Run it by hand: `python -m tests.fakes.baidu --port 8765` (used by `make demo`).
"""
import argparse
import base64
import hashlib
import io
import json
import random
import re
import threading
import time
import zlib
from collections import Counter
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

from PIL import Image as PILImage
from PIL import ImageDraw, ImageEnhance

from crawl.baidu_protocol import encode_url

WORDS = ["客厅", "厨房", "书桌", "<strong>杂物</strong>", "卧室", "收纳", "储物架"]


def picture(seed, width=640, height=480):
    """A deterministic photo-like picture: blocks and discs on a coloured ground."""
    rng = random.Random(seed)
    im = PILImage.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(im)
    for _ in range(14):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randrange(20, width // 2), y0 + rng.randrange(20, height // 2)
        draw.rectangle([x0, y0, x1, y1], fill=tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(6):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(10, min(width, height) // 4)
        draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=tuple(rng.randrange(256) for _ in range(3)))
    return im


def jpeg(im, quality=90):
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@lru_cache(maxsize=4096)
def original_bytes(image_id):
    return jpeg(picture(image_id))


@lru_cache(maxsize=4096)
def thumb_bytes(image_id):
    return jpeg(picture(image_id).resize((500, 375)), quality=80)


def near_variant(seed_im, k):
    """A mild edit of the seed: a small crop, a brightness shift, one small patch."""
    w, h = seed_im.size
    m = 2 + k % 5
    im = seed_im.crop((m * w // 100, m * h // 100, w - m * w // 100, h - m * h // 100)).resize((w, h))
    im = ImageEnhance.Brightness(im).enhance(1.0 + (k % 3 - 1) * 0.08)
    rng = random.Random(k)
    draw = ImageDraw.Draw(im)
    x, y = rng.randrange(w - w // 8), rng.randrange(h - h // 8)
    draw.rectangle([x, y, x + w // 10, y + h // 10], fill=tuple(rng.randrange(256) for _ in range(3)))
    return im


class FakeBaidu:
    def __init__(self, host="127.0.0.1", port=0, **switches):
        self.strict = True
        self.antiflag_after = None
        self.antiflag_count = None
        self.captcha_after = None
        self.captcha_count = None
        self.bad_escapes = False
        self.control_chars = False
        self.string_dims = False
        self.trailing_empty = True
        self.objurl_mode = "encrypted"
        self.fail_originals = set()
        self.fail_replace = False
        self.list_cap = 1900
        self.rn_cap = 60
        self.queries = {}
        self.default_results = 120
        self.require_token = True
        self.result_mode = "simipic"
        self.state_mode = "carddata"
        self.similar_total = 45
        self.similar_plan = ["copy", "near", "near", "far", "far"]
        self.delay = 0.0  # seconds added to every answer, for cancellation tests
        for key, value in switches.items():
            if not hasattr(self, key):
                raise TypeError(f"FakeBaidu has no switch {key!r}")
            setattr(self, key, value)
        self.hits = Counter()  # route -> requests
        self.requests = []  # (method, path, headers) of every request
        self.sessions = {}  # graph session_id -> seed bytes
        self._acjson_seen = 0
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer((host, port), _Handler)
        self.server.daemon_threads = True
        self.server.fake = self
        self._thread = None

    # --- lifecycle ---
    @property
    def url(self):
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="fake-baidu")
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- keyword corpus ---
    def results_for(self, query):
        if query in self.queries:
            return list(self.queries[query])
        base = (zlib.crc32(query.encode()) % 100_000) * 1000 + 1_000_000
        return [base + i for i in range(self.default_results)]

    def original_url(self, image_id):
        return f"{self.url}/img/{image_id}.jpg"

    def replace_url(self, image_id):
        return f"{self.url}/mirror/{image_id}.jpg"

    def thumb_url(self, image_id):
        return f"{self.url}/it/u={image_id},{image_id % 9973}&fm=253&fmt=auto&app=138&f=JPEG?w=500&h=375"

    def gimg2_url(self, image_id):
        src = quote(self.original_url(image_id), safe="")
        refer = quote(f"http://site{image_id % 7}.example/", safe="")
        return (f"{self.url}/image_search/src={src}&refer={refer}&app=2002&size=f9999,10000&q=a80&n=0"
                f"&g=0n&fmt=jpeg?sec=1700000000&t={hashlib.md5(str(image_id).encode()).hexdigest()}")

    def objurl(self, image_id, rank):
        mode = self.objurl_mode
        if mode == "mixed":
            mode = ("encrypted", "plain", "gimg2")[rank % 3]
        if mode == "plain":
            return self.original_url(image_id)
        if mode == "gimg2":
            return encode_url(self.gimg2_url(image_id))
        return encode_url(self.original_url(image_id))

    def acjson_item(self, image_id, rank):
        width, height = 640, 480
        if self.string_dims:
            width, height = [(str(width), str(height)), ("", 0), (0, "480")][rank % 3]
        title = f"{WORDS[rank % len(WORDS)]} 图片 {image_id}"
        if self.bad_escapes:
            title += " @@BADESC@@ it@@BADESC@@s"
        if self.control_chars:
            title += " @@CTRL@@"
        return {
            "adType": "0", "hasAspData": "0", "thumbURL": self.thumb_url(image_id),
            "middleURL": self.thumb_url(image_id), "largeTnImageUrl": "", "hasLarge": 0,
            "hoverURL": self.thumb_url(image_id), "pageNum": rank, "objURL": self.objurl(image_id, rank),
            "fromURL": encode_url(f"http://site{image_id % 7}.example/post/{image_id}"),
            "fromURLHost": f"site{image_id % 7}.example", "currentIndex": "", "width": width,
            "height": height, "type": "jpg", "is_gif": 0, "isCopyright": 0, "di": str(7000000 + image_id),
            "cs": f"{image_id},{image_id % 9973}", "os": "", "filesize": "", "bdImgnewsDate": "2021-05-01 12:00",
            "fromPageTitle": title, "fromPageTitleEnc": re.sub(r"</?strong>", "", title),
            "replaceUrl": [{"ObjURL": self.replace_url(image_id), "ObjUrl": self.replace_url(image_id),
                            "FromURL": f"http://site{image_id % 7}.example/post/{image_id}",
                            "FromUrl": f"http://site{image_id % 7}.example/post/{image_id}"}],
        }

    def acjson_body(self, query, pn, rn):
        ids = self.results_for(query)
        list_num = min(len(ids), self.list_cap)
        rn = max(1, min(rn, self.rn_cap))
        page = ids[pn:min(pn + rn, list_num)] if pn < list_num else []
        data = [self.acjson_item(image_id, pn + i) for i, image_id in enumerate(page)]
        if self.trailing_empty:
            data.append({})
        body = {
            "queryEnc": quote(query.encode("gbk", errors="replace")), "queryExt": query,
            "listNum": list_num, "displayNum": list_num * 61, "gsm": format(pn + rn, "x"),
            "bdFmtDispNum": f"约{list_num * 61:,}", "bdSearchTime": "", "isNeedAsyncRequest": 0,
            "bdIsClustered": "1", "data": data,
        }
        text = json.dumps(body, ensure_ascii=False)
        return text.replace("@@BADESC@@", "\\'").replace("@@CTRL@@", "\x01\x1f tab\there")

    # --- reverse-image search ---
    def similar_plan_for(self, k):
        return self.similar_plan[k % len(self.similar_plan)]

    def similar_bytes(self, session_id, k):
        seed = PILImage.open(io.BytesIO(self.sessions[session_id])).convert("RGB")
        kind = self.similar_plan_for(k)
        if kind == "copy":
            return jpeg(seed, quality=85 - k % 10)
        if kind == "near":
            return jpeg(near_variant(seed, k))
        return jpeg(picture(9_000_000 + k + (zlib.crc32(session_id.encode()) % 1000) * 1000))

    def similar_thumb(self, session_id, k):
        return f"{self.url}/simi/it/u={session_id},{k}&fm=253&fmt=auto&app=138&f=JPEG"

    def result_cards(self, session_id, sign):
        first = (f"{self.url}/ajax/pcsimi?carousel=503&entrance=GENERAL&extUiData%5BisLogoShow%5D=1"
                 f"&inspire=general_pc&limit=30&next=2&render_type=card&session_id={session_id}"
                 f"&sign={sign}&tk=4caaf&tpl_from=pc&page=1&promotion_name=pc_image_shituindex")
        if self.result_mode == "noresult":
            return [{"cardName": "noresult", "tplData": {"text": "未找到相关结果"}}]
        same = {"cardName": "same", "tplData": {"list": [{
            "url": f"http://site1.example/same/{session_id}", "image_src": self.similar_thumb(session_id, 0),
            "title": ["相同图片"], "abstract": "", "fromPageTitle": "相同图片", "imgList": []}]}}
        if self.result_mode == "same_only":
            return [same]
        return [same, {"cardName": "simipic", "tplData": {"firstUrl": first, "title": "相似图片"}}]

    def result_page(self, session_id, sign):
        cards = self.result_cards(session_id, sign)
        text = json.dumps(cards, ensure_ascii=False).replace("/", "\\/").replace("&", "\\u0026")
        if self.state_mode == "carddata":
            script = f"window.cardData = {text};\n    window.commonData = {{\"tplFrom\":\"pc\"}};"
        elif self.state_mode == "preloaded":
            script = f"window.__PRELOADED_STATE__ = {{\"pageType\":\"result\",\"cardData\":{text}}};"
        else:
            state = json.dumps({"pageType": "result", "cardData": cards}, ensure_ascii=False)
            encoded = base64.b64encode(state.encode("utf-8")).decode()
            script = f"window.__PRELOADED_STATE__ = \"{encoded}\";"
        return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>百度识图</title></head><body>"
                f"<div id=\"app\"></div><script>\n    {script}\n</script></body></html>")

    def pcsimi_body(self, session_id, page, limit):
        start = (page - 1) * limit
        ks = range(start, min(start + limit, self.similar_total))
        items = [{
            "contsign": f"{k},{k * 7}", "width": 640, "height": 480,
            "thumbUrl": self.similar_thumb(session_id, k), "hoverUrl": "",
            "fromUrl": f"http://site{k % 5}.example/similar/{k}",
            "objUrl": f"{self.url}/pcpage/similar?carousel=503&entrance=GENERAL&index={k}&session_id={session_id}",
            "index": k, "page": page,
        } for k in ks]
        return {"status": 0, "data": {"length": len(items), "ajaxTextUrl": "", "imageUrl": "", "list": items}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "BWS/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    @property
    def fake(self):
        return self.server.fake

    def _send(self, status, body=b"", content_type="text/plain; charset=utf-8", headers=()):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status=200, headers=()):
        self._send(status, json.dumps(obj, ensure_ascii=False), "application/json; charset=utf-8", headers)

    def _cookie_header(self):
        baiduid = hashlib.md5(f"{time.time_ns()}{self.client_address}".encode()).hexdigest().upper()
        return ("Set-Cookie", f"BAIDUID={baiduid}:FG=1; max-age=31536000; path=/; version=1")

    def do_GET(self):
        fake = self.fake
        if fake.delay:
            time.sleep(fake.delay)
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
        fake.requests.append(("GET", self.path, dict(self.headers)))
        route = self._route(path)
        fake.hits[route] += 1
        getattr(self, f"_get_{route}")(path, query)

    ROUTES = (("/search/acjson", "acjson"), ("/search/index", "index"), ("/img/", "original"),
              ("/mirror/", "mirror"), ("/it/", "thumb"), ("/image_search/", "gimg2"),
              ("/static/captcha", "captcha"), ("/ajax/pcsimi", "pcsimi"), ("/simi/it/", "similar_image"),
              ("/pcpage/", "pcpage"))

    @classmethod
    def _route(cls, path):
        if path == "/":
            return "home"
        if path == "/s":
            return "result"
        for prefix, route in cls.ROUTES:
            if path.startswith(prefix):
                return route
        return "missing"

    def _get_home(self, path, query):
        self._send(200, "<html><head><title>百度图片</title></head><body>百度图片</body></html>",
                   "text/html; charset=utf-8", [self._cookie_header()])

    def _get_index(self, path, query):
        self._send(200, "<html><body><div class=\"imgitem\"></div></body></html>", "text/html; charset=utf-8",
                   [self._cookie_header()])

    def _get_missing(self, path, query):
        self._send(404, "not found")

    def _get_pcpage(self, path, query):
        self._send(200, "<html><body>similar page</body></html>", "text/html; charset=utf-8")

    def _get_captcha(self, path, query):
        self._send(200, "<html><head><title>百度安全验证</title></head><body>百度安全验证 请完成下方验证</body></html>",
                   "text/html; charset=utf-8")

    def _antiflag(self):
        self._json({"antiFlag": 1, "message": "Forbid spider access", "bfe_log_id": "1234567890123456789"})

    def _get_acjson(self, path, query):
        fake = self.fake
        with fake._lock:
            fake._acjson_seen += 1
            n = fake._acjson_seen
        first = lambda key, default="": (query.get(key) or [default])[0]  # noqa: E731
        if first("tn") == "baiduimage":
            return self._send(200, "<html><body>页面不存在</body></html>", "text/html; charset=utf-8")
        if first("tn") != "resultjson_com" or first("ipn") != "rj":
            return self._antiflag()
        if fake.captcha_after is not None and n > fake.captcha_after and (
                fake.captcha_count is None or n <= fake.captcha_after + fake.captcha_count):
            location = f"{fake.url}/static/captcha/tuxing.html?&ak=c27bbc89afca0463650ac9bde68ebe06&backurl=x"
            return self._send(302, "", headers=[("Location", location)])
        if fake.antiflag_after is not None and n > fake.antiflag_after and (
                fake.antiflag_count is None or n <= fake.antiflag_after + fake.antiflag_count):
            return self._antiflag()
        if fake.strict:
            cookie = self.headers.get("Cookie", "")
            lang = self.headers.get("Accept-Language", "")
            referer = self.headers.get("Referer", "")
            if ("BAIDUID=" not in cookie or not self.headers.get("User-Agent") or "zh-CN" not in lang
                    or not referer.startswith(fake.url)):
                return self._antiflag()
        word = first("word") or first("queryWord")
        try:
            pn, rn = int(first("pn", "0")), int(first("rn", "30"))
        except ValueError:
            return self._antiflag()
        self._send(200, fake.acjson_body(word, pn, rn), "application/json; charset=utf-8")

    def _image_id(self, path):
        match = re.search(r"(\d+)", path)
        return int(match.group(1)) if match else None

    def _get_original(self, path, query):
        image_id = self._image_id(path)
        fails = self.fake.fail_originals
        if image_id is None or fails == "all" or image_id in fails:
            return self._send(404, "gone")
        self._send(200, original_bytes(image_id), "image/jpeg")

    def _get_mirror(self, path, query):
        image_id = self._image_id(path)
        if image_id is None or self.fake.fail_replace:
            return self._send(404, "gone")
        self._send(200, original_bytes(image_id), "image/jpeg")

    def _get_gimg2(self, path, query):
        match = re.search(r"/img/(\d+)\.jpg", self.path.replace("%2F", "/"))
        if not match:
            return self._send(404, "gone")
        self._send(200, original_bytes(int(match.group(1))), "image/jpeg")

    def _get_thumb(self, path, query):
        match = re.search(r"u=(\d+),", path)
        if not match:
            return self._send(404, "no such thumbnail")
        self._send(200, thumb_bytes(int(match.group(1))), "image/jpeg")

    def _get_similar_image(self, path, query):
        match = re.search(r"u=([0-9a-f]+),(\d+)", path)
        if not match or match.group(1) not in self.fake.sessions:
            return self._send(404, "no such image")
        self._send(200, self.fake.similar_bytes(match.group(1), int(match.group(2))), "image/jpeg")

    def _get_result(self, path, query):
        session_id = (query.get("session_id") or [""])[0]
        if session_id not in self.fake.sessions:
            return self._send(200, "<html><body>页面已失效</body></html>", "text/html; charset=utf-8")
        self._send(200, self.fake.result_page(session_id, (query.get("sign") or [""])[0]),
                   "text/html; charset=utf-8")

    def _get_pcsimi(self, path, query):
        session_id = (query.get("session_id") or [""])[0]
        if session_id not in self.fake.sessions:
            return self._json({"status": 1, "msg": "session expired", "data": {}})
        try:
            page = int((query.get("page") or ["1"])[0])
            limit = min(int((query.get("limit") or ["30"])[0]), 60)
        except ValueError:
            return self._json({"status": 1, "msg": "bad page", "data": {}})
        self._json(self.fake.pcsimi_body(session_id, max(page, 1), max(limit, 1)))

    def do_POST(self):
        fake = self.fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake.requests.append(("POST", self.path, dict(self.headers)))
        if parts.path != "/upload":
            fake.hits["missing"] += 1
            return self._send(404, "not found")
        fake.hits["upload"] += 1
        if fake.require_token and self.headers.get("Acs-Token") is None:
            return self._json({"status": 2, "msg": "系统异常", "data": {}})
        image = _multipart_file(self.headers.get("Content-Type", ""), body, "image")
        if not image:
            return self._json({"status": 3, "msg": "参数错误: image", "data": {}})
        try:
            PILImage.open(io.BytesIO(image)).verify()
        except Exception:
            return self._json({"status": 4, "msg": "图片格式错误", "data": {}})
        session_id = format(zlib.crc32(image) * 100000 + len(fake.sessions), "x")
        fake.sessions[session_id] = image
        sign = hashlib.md5(image).hexdigest()[:22] + str(int(time.time()))
        url = (f"{fake.url}/s?card_key=&entrance=GENERAL&extUiData%5BisLogoShow%5D=1&f=all&isLogoShow=1"
               f"&session_id={session_id}&sign={sign}&tpl_from=pc")
        self._json({"status": 0, "msg": "Success", "data": {"url": url, "sign": sign}})


def _multipart_file(content_type, body, field_name):
    match = re.search(r"boundary=\"?([^\";]+)\"?", content_type)
    if not match:
        return None
    boundary = b"--" + match.group(1).encode()
    for part in body.split(boundary):
        head, _, content = part.partition(b"\r\n\r\n")
        if f'name="{field_name}"'.encode() in head:
            return content[:-2] if content.endswith(b"\r\n") else content
    return None


def main():
    parser = argparse.ArgumentParser(description="Serve a loopback Baidu Images for offline demos.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--set", action="append", default=[], metavar="SWITCH=JSON",
                        help='a switch, e.g. --set antiflag_after=40 --set state_mode=\'"preloaded_b64"\'')
    args = parser.parse_args()
    switches = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            switches[key] = json.loads(value)
        except json.JSONDecodeError:
            switches[key] = value
    fake = FakeBaidu(args.host, args.port, **switches)
    print(f"fake Baidu on {fake.url} (set SCENEIMG_BAIDU_IMAGE_URL and SCENEIMG_BAIDU_GRAPH_URL to it)")
    try:
        fake.server.serve_forever()
    except KeyboardInterrupt:
        pass




def serve_for_test(settings, **switches):
    """Start a FakeBaidu and point the settings at it; a test module wraps this in its own fixture:

        @pytest.fixture
        def fake_baidu(settings):
            yield from serve_for_test(settings)
    """
    with FakeBaidu(**switches) as fake:
        settings.SCENEIMG_BAIDU_IMAGE_URL = fake.url
        settings.SCENEIMG_BAIDU_GRAPH_URL = fake.url
        settings.SCENEIMG_BAIDU_PACING = 0
        settings.SCENEIMG_BAIDU_REFUSAL_BACKOFF = 0
        settings.SCENEIMG_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]
        settings.SCENEIMG_FETCH_BACKOFF = 0
        yield fake

if __name__ == "__main__":
    main()
