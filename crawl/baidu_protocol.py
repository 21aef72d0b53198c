"""Parsing what Baidu Images sends back (reference/baidu-protocol.md §1 and §2), without any network.

Kept apart from the crawlers so the fake server, the crawlers and the tests share one reading of the
protocol, and so every quirk seen in the wild has one place where it is handled.
"""
import base64
import binascii
import html
import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

# --- objURL cipher (§1.5) ---------------------------------------------------------------------------
_TOKENS = (("_z2C$q", ":"), ("_z&e3B", "."), ("AzdH3F", "/"))
_CIPHER_IN = "0123456789abcdefghijklmnopqrstuvw"
_CIPHER_OUT = "7dgjmoru140852vsnkheb963wtqplifca"
_DECODE_TABLE = str.maketrans(_CIPHER_IN, _CIPHER_OUT)
_ENCODE_TABLE = str.maketrans(_CIPHER_OUT, _CIPHER_IN)


def is_encrypted_url(value):
    """Plain URLs (Baidu sends some objURLs unencrypted) must not go through the table: it would scramble them."""
    return value.startswith("ippr") or any(token in value for token, _ in _TOKENS)


def decode_url(value):
    """Decode an objURL/fromURL when it is encrypted; return plain URLs unchanged."""
    if not value or not is_encrypted_url(value):
        return value or ""
    for token, plain in _TOKENS:
        value = value.replace(token, plain)
    return value.translate(_DECODE_TABLE)


def encode_url(url):
    """The inverse of decode_url (map characters, then insert tokens): what Baidu serves."""
    encoded = url.translate(_ENCODE_TABLE)
    for token, plain in _TOKENS:
        encoded = encoded.replace(plain, token)
    return encoded


def unwrap_gimg2(url):
    """`https://gimg2.baidu.com/image_search/src=<original>&refer=...` -> the original image URL.

    Baidu's proxy recompresses and expires (`sec=`); the original is the better copy. The wrapper is
    recognised by its path so that it is unwrapped on any host (the fake serves it on loopback).
    """
    if not url:
        return url
    parts = urlsplit(url)
    path = unquote(parts.path)
    if not path.startswith("/image_search/"):
        return url
    rest = path[len("/image_search/"):]
    if parts.query:
        rest += "?" + unquote(parts.query)
    match = re.search(r"src=(.+?)(?:&refer=|&app=|$)", rest)
    if not match:
        return url
    inner = match.group(1)
    for _ in range(2):  # the original may be quoted once or twice
        if "://" in inner:
            break
        inner = unquote(inner)
    return inner if inner.startswith(("http://", "https://")) else url


# --- acjson body (§1.3, §1.4, §1.7) ---------------------------------------------------------------
_BAD_ESCAPE = re.compile(r'\\(?!["\\/bfnrtu])')
_TAG = re.compile(r"</?\s*[a-zA-Z][^<>]*>?")


class NotJson(ValueError):
    """The body was not JSON even after the known repairs (often an HTML block or captcha page)."""


def loads_tolerant(text):
    """json.loads that survives Baidu's invalid JSON: `\\'` and other bad escapes, raw control chars."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.strip().lstrip("\ufeff")
    try:
        return json.loads(text, strict=False)
    except json.JSONDecodeError:
        pass
    # The repair icrawler and SearXNG make: drop the backslash of escapes JSON does not know (\' most often).
    repaired = _BAD_ESCAPE.sub("", text)
    try:
        return json.loads(repaired, strict=False)
    except json.JSONDecodeError as exc:
        raise NotJson(f"not JSON ({exc.msg} at char {exc.pos}): {text[:80]!r}") from None


def is_antiflag(payload):
    return isinstance(payload, dict) and bool(payload.get("antiFlag")) and "data" not in payload


def looks_like_captcha(url="", text=""):
    return ("wappass" in url or "/static/captcha" in url or "安全验证" in (text or "")[:5000])


def clean_title(value):
    """`fromPageTitle` carries `<strong>` tags, sometimes cut in half, and HTML entities."""
    if not value:
        return ""
    return html.unescape(_TAG.sub("", str(value))).strip()


def to_int(value):
    """Widths and heights arrive as ints, strings, empty strings or 0."""
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


@dataclass
class Hit:
    """One usable result, of a keyword (acjson) page or of a reverse-image (pcsimi) page."""

    url: str  # the best original: objURL decoded (and, for keywords, unwrapped from gimg2)
    fallbacks: list = field(default_factory=list)  # other copies to try in order, Baidu's thumbnail last
    thumb_url: str = ""  # Baidu's thumbnail, so a stored fallback can be told apart from the original
    page_url: str = ""
    title: str = ""
    width: int = 0
    height: int = 0
    extra: dict = field(default_factory=dict)
    # The address the original scripts recorded for this result, when it is none of the above: a
    # folder they wrote names the picture by it, so a crawl must recognise it as already seen.
    aliases: list = field(default_factory=list)

    @property
    def all_urls(self):
        return list(dict.fromkeys(u for u in (self.url, *self.fallbacks, *self.aliases) if u))


def _web(value):
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def original_keyword_url(item):
    """What crawler.py saved as `source`: the first web address among hoverURL, objURL, thumbURL,
    middleURL and replaceUrl's ObjURL and FromURL (an encrypted objURL is not one)."""
    candidates = [item.get("hoverURL"), item.get("objURL"), item.get("thumbURL"), item.get("middleURL")]
    for entry in item.get("replaceUrl") or []:
        if isinstance(entry, dict):
            candidates += [entry.get("ObjURL"), entry.get("FromURL")]
    return next((u for u in candidates if _web(u)), "")


def original_similar_url(item):
    """What search_by_images.py saved as `source`: objUrl's image (or imgurl) parameter, else thumbUrl
    or middleUrl."""
    candidates = []
    obj = item.get("objUrl")
    if isinstance(obj, str) and obj:
        query = parse_qs(urlsplit(obj).query, keep_blank_values=True)
        candidates += query.get("image") or query.get("imgurl") or query.get("imgUrl") or []
    candidates.append(item.get("thumbUrl") or item.get("middleUrl"))
    for url in candidates:
        url = html.unescape(url.strip()) if isinstance(url, str) else ""
        url = "https:" + url if url.startswith("//") else url
        if url.startswith("http"):
            return url
    return ""


def _aliases(hit, original):
    if original and original not in (hit.url, *hit.fallbacks):
        hit.aliases.append(original)
    return hit


def _replace_urls(item):
    urls = []
    for entry in item.get("replaceUrl") or []:
        if not isinstance(entry, dict):
            continue
        url = entry.get("ObjURL") or entry.get("ObjUrl") or ""
        url = unwrap_gimg2(decode_url(url))
        if url and url not in urls:
            urls.append(url)
    # Image-Downloader prefers the second entry when there are two: it is more often the live copy.
    return list(reversed(urls))


def parse_keyword_item(item):
    """A Hit from one `data[]` element, or None for the trailing `{}` and unusable items."""
    if not isinstance(item, dict) or not item:
        return None
    thumb = item.get("middleURL") or item.get("thumbURL") or item.get("hoverURL") or ""
    url = unwrap_gimg2(decode_url(item.get("objURL") or ""))
    replacements = _replace_urls(item)
    if not url:
        url = replacements.pop(0) if replacements else thumb
    if not url:
        return None
    fallbacks = [u for u in replacements if u != url]
    if thumb and thumb != url:
        fallbacks.append(thumb)
    page = decode_url(item.get("fromURL") or "")
    if not page.startswith(("http://", "https://")):
        page = ""
    title = clean_title(item.get("fromPageTitleEnc") or item.get("fromPageTitle"))
    extra = {k: item[k] for k in ("di", "cs", "fromURLHost", "type", "bdImgnewsDate") if item.get(k)}
    if thumb:
        extra["thumb_url"] = thumb
    hit = Hit(url=url, fallbacks=fallbacks, thumb_url=thumb, page_url=page, title=title,
              width=to_int(item.get("width")), height=to_int(item.get("height")), extra=extra)
    return _aliases(hit, original_keyword_url(item))


@dataclass
class KeywordPage:
    hits: list
    raw_count: int  # data[] elements that were not empty `{}`: decides "short page"
    list_num: int | None


def parse_keyword_page(payload):
    data = payload.get("data")
    if not isinstance(data, list):
        raise NotJson(f"acjson answer has no data list (keys: {sorted(payload)[:8]})")
    items = [item for item in data if isinstance(item, dict) and item]
    hits = [hit for hit in map(parse_keyword_item, items) if hit is not None]
    list_num = to_int(payload.get("listNum")) if payload.get("listNum") not in (None, "") else None
    return KeywordPage(hits=hits, raw_count=len(items), list_num=list_num)


# --- graph.baidu.com result page (§2.2) --------------------------------------------------------------
_CARD_DATA = re.compile(r"window\.cardData\s*=\s*", re.S)
_PRELOADED = re.compile(r"window\.__PRELOADED_STATE__\s*=\s*", re.S)


def _balanced(text, start):
    """The JSON value (object, array or string) starting at text[start], by bracket counting."""
    opener = text[start]
    if opener in "\"'":
        end = start + 1
        while end < len(text):
            if text[end] == "\\":
                end += 2
                continue
            if text[end] == opener:
                return text[start:end + 1]
            end += 1
        return None
    closer = {"[": "]", "{": "}"}.get(opener)
    if closer is None:
        return None
    depth, i, in_str = 0, start, None
    while i < len(text):
        ch = text[i]
        if in_str:
            if ch == "\\":
                i += 2
                continue
            if ch == in_str:
                in_str = None
        elif ch == '"':
            in_str = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
        i += 1
    return None


def _find_cards(state):
    """The card list anywhere in a preloaded state: a list of dicts carrying `cardName`."""
    if isinstance(state, list):
        if state and all(isinstance(c, dict) for c in state) and any("cardName" in c for c in state):
            return state
        for value in state:
            found = _find_cards(value)
            if found is not None:
                return found
    elif isinstance(state, dict):
        for value in state.values():
            found = _find_cards(value)
            if found is not None:
                return found
    return None


def _decode_state(raw):
    """A preloaded state: a JSON object, or a string holding JSON or base64 of JSON."""
    value = loads_tolerant(raw)
    for _ in range(3):
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text[:1] in "[{":
            value = loads_tolerant(text)
            continue
        try:
            value = loads_tolerant(base64.b64decode(text + "=" * (-len(text) % 4)).decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError, NotJson):
            return None
    return value


def parse_result_page(page_html):
    """The cards of a graph.baidu.com `/s?` result page, from `window.cardData` or a preloaded state.

    Raises NotJson when the page holds neither (a changed page, an error page).
    """
    for pattern in (_CARD_DATA, _PRELOADED):
        for match in pattern.finditer(page_html):
            start = match.end()
            if page_html.startswith("JSON.parse(", start):
                start += len("JSON.parse(")
            if page_html.startswith("atob(", start):
                start += len("atob(")
            raw = _balanced(page_html, start)
            if raw is None:
                continue
            if raw[0] == "'":
                raw = json.dumps(raw[1:-1].replace("\\'", "'"))
            try:
                state = _decode_state(raw)
            except NotJson:
                continue
            cards = _find_cards(state) if state is not None else None
            if cards is not None:
                return cards
            if isinstance(state, list):  # an empty cardData
                return state
    raise NotJson("the result page holds neither window.cardData nor window.__PRELOADED_STATE__")


@dataclass
class ResultCards:
    first_url: str = ""  # the simipic card's pcsimi URL
    same: list = field(default_factory=list)
    noresult: bool = False
    names: list = field(default_factory=list)


def read_cards(cards):
    out = ResultCards()
    for card in cards:
        if not isinstance(card, dict):
            continue
        name = card.get("cardName", "")
        out.names.append(name)
        tpl = card.get("tplData") or {}
        if name == "noresult":
            out.noresult = True
        elif name == "same":
            out.same.extend(item for item in tpl.get("list") or [] if isinstance(item, dict))
        elif name == "simipic":
            out.first_url = html.unescape(tpl.get("firstUrl") or "")
    return out


def _is_direct_image(url):
    # pcsimi's objUrl usually points at graph.baidu.com/pcpage/similar: an HTML page, not the image.
    return url.startswith(("http://", "https://")) and "/pcpage/" not in url


def parse_similar_item(item):
    if not isinstance(item, dict):
        return None
    thumb = item.get("thumbUrl") or item.get("hoverUrl") or ""
    obj = decode_url(item.get("objUrl") or item.get("objURL") or "")
    if _is_direct_image(obj):
        url, fallbacks = obj, [thumb] if thumb and thumb != obj else []
    elif thumb:
        url, fallbacks = thumb, []
    else:
        return None
    extra = {k: item[k] for k in ("contsign", "index", "page") if k in item}
    if thumb:
        extra["thumb_url"] = thumb
    hit = Hit(url=url, fallbacks=fallbacks, thumb_url=thumb, page_url=item.get("fromUrl") or "",
              title=clean_title(item.get("fromPageTitle") or item.get("title") or ""),
              width=to_int(item.get("width")), height=to_int(item.get("height")), extra=extra)
    return _aliases(hit, original_similar_url(item))


def parse_similar_page(payload):
    """(hits, raw_count) from a `/ajax/pcsimi` answer. Raises NotJson when status is not 0."""
    if not isinstance(payload, dict) or to_int(payload.get("status", 0)) != 0:
        raise NotJson(f"pcsimi answered status {payload.get('status') if isinstance(payload, dict) else '?'}")
    data = payload.get("data") or {}
    items = data.get("list") or []
    hits = [hit for hit in map(parse_similar_item, items) if hit is not None]
    return hits, len(items)
