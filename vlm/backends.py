"""The vision-language models we ask: OpenAI (Responses API) and Ollama (local or cloud).

Both go through their official clients with the clients' own retries switched off, an explicit
timeout, and our bounded retry loop on top (`call_with_retries`): exponential backoff with jitter
drawn from a seeded generator, and a 429's Retry-After honoured. A backend returns a `Reply` with
the model's text and the raw response; turning that text into a verdict is vlm.normalise's job.

API keys never leave this module except in the Authorization header: every error message and raw
body that we keep passes through `redact`.
"""
import base64
import email.utils
import functools
import json
import logging
import random
import secrets
import threading
import time
from dataclasses import dataclass

import httpx
from django.conf import settings

log = logging.getLogger(__name__)

BACKENDS = ("openai", "ollama-local", "ollama-cloud")
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}

# The strict schema of a verdict. Structured Outputs requires every property to be required and no
# extra properties; the range of the score is stated in words because models ignore bounds anyway
# and normalisation clamps it.
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {
        "decision": {"type": "string", "enum": ["keep", "reject"]},
        "score": {"type": "number", "description": "Confidence from 0 to 1 that the image is a good example."},
        "reason": {"type": "string", "description": "At most 160 characters."},
        "tags": {"type": "array", "items": {"type": "string"}},
        # The original asks for the room and the objects separately; both are kept and exported apart.
        "room_tags": {"type": "array", "items": {"type": "string"}, "description": "The room type(s)."},
        "object_tags": {"type": "array", "items": {"type": "string"},
                        "description": "Objects a robot could manipulate."},
    },
    "required": ["decision", "score", "reason", "tags", "room_tags", "object_tags"],
    "additionalProperties": False,
}


class BackendError(Exception):
    """A failed call. `retryable` says whether trying again may help; `raw` is the body, redacted."""

    def __init__(self, message, *, retryable=False, retry_after=None, raw="", status=None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.raw = raw
        self.status = status


@dataclass
class Reply:
    text: str
    raw: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: int = 0
    attempts: int = 1


@dataclass
class RetryPolicy:
    retries: int = 3
    backoff: float = 1.0
    backoff_max: float = 30.0
    retry_after_max: float = 120.0

    @classmethod
    def from_settings(cls, **overrides):
        values = {
            "retries": settings.SCENEIMG_VLM_RETRIES,
            "backoff": settings.SCENEIMG_VLM_BACKOFF,
            "backoff_max": settings.SCENEIMG_VLM_BACKOFF_MAX,
            "retry_after_max": settings.SCENEIMG_VLM_RETRY_AFTER_MAX,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def delay(self, attempt, rng, retry_after=None):
        """Seconds to wait before retry number `attempt` (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_max)
        ceiling = min(self.backoff_max, self.backoff * (2**attempt))
        return ceiling / 2 + rng.random() * ceiling / 2  # "equal jitter": never zero, never above the cap


def rng_for(seed, key):
    """A generator for one image's retries, so --seed reproduces the waits whatever the thread order."""
    return random.Random(f"{seed}:{key}")


def call_with_retries(call, policy, rng, *, wait=None, label="request"):
    """Call `call()` until it succeeds, fails for good, or the retries are spent.

    `wait(seconds)` sleeps and returns True when the caller wants to stop early (cancellation).
    Error messages are already redacted by the backends, so they can be logged.
    """
    wait = wait or (lambda seconds: time.sleep(seconds) or False)
    attempt = 0
    while True:
        try:
            reply = call()
            reply.attempts = attempt + 1
            return reply
        except BackendError as exc:
            if not exc.retryable or attempt >= policy.retries:
                if attempt:
                    exc.args = (f"{exc.args[0]} (after {attempt + 1} attempts)",)
                raise
            delay = policy.delay(attempt, rng, exc.retry_after)
            log.info("%s: %s; retry %d of %d in %.2fs", label, exc, attempt + 1, policy.retries, delay)
            if wait(delay):
                raise
            attempt += 1


def parse_retry_after(value):
    """Seconds from a Retry-After header: a number of seconds or an HTTP date. None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when else None


def known_secrets():
    return [s for s in (settings.SCENEIMG_OPENAI_API_KEY, settings.SCENEIMG_OLLAMA_API_KEY) if s and len(s) >= 4]


def redact(text, extra=()):
    """`text` with every API key we know replaced by [redacted], and without NUL characters.

    Everything a verdict stores from a reply or an error passes through here, and Postgres rejects
    text containing \\x00 (one such reply would fail the write of its whole batch).
    """
    if not text:
        return text or ""
    text = str(text).replace("\x00", "")
    for secret in {*known_secrets(), *(s for s in extra if s and len(s) >= 4)}:
        text = text.replace(secret, "[redacted]")
    return text


@functools.cache
def tls_context():
    """One TLS context for every client of the process: making one loads the CA bundle, 25 to 50 ms
    that each run paid before its first request. (The same defaults as the clients' own: certifi's
    bundle, or SSL_CERT_FILE / SSL_CERT_DIR.)"""
    return httpx.create_ssl_context()


class Backend:
    name = ""

    def __init__(self, model, *, timeout, connect_timeout=None, max_output_tokens=None):
        self.model = model
        self.timeout = float(timeout)
        self.connect_timeout = min(self.timeout, connect_timeout or settings.SCENEIMG_VLM_CONNECT_TIMEOUT)
        self.max_output_tokens = max_output_tokens or settings.SCENEIMG_VLM_MAX_OUTPUT_TOKENS
        self._secrets = ()

    def redact(self, text):
        return redact(text, self._secrets)

    def request(self, system, user, jpeg):
        """What `send` sends: built apart so that a caller can build it ahead, while other calls wait."""
        return system, user, jpeg

    def send(self, request):
        raise NotImplementedError

    def call(self, system, user, jpeg):
        return self.send(self.request(system, user, jpeg))

    def close(self):
        pass


# Stand for the user text and the image in the encoded request until they are spliced in; random, so
# no prompt contains them.
_USER_MARKER = f"user-{secrets.token_hex(16)}"
_IMAGE_MARKER = f"image-{secrets.token_hex(16)}"


class OpenAIBackend(Backend):
    """OpenAI Responses API with a strict JSON schema; the image as a base64 data URL."""

    name = "openai"

    def __init__(self, model, *, base_url=None, api_key=None, **kw):
        import openai  # here, not at the top: the client takes a second to import and most commands never use it

        super().__init__(model, **kw)
        api_key = api_key if api_key is not None else settings.SCENEIMG_OPENAI_API_KEY
        if not api_key:
            raise ValueError("the openai backend needs an API key: set OPENAI_API_KEY")
        self._secrets = (api_key,)
        self.base_url = base_url or settings.SCENEIMG_OPENAI_BASE_URL
        self.client = openai.OpenAI(
            api_key=api_key,
            base_url=self.base_url,
            timeout=openai.Timeout(self.timeout, connect=self.connect_timeout),
            max_retries=0,  # our loop retries, bounded and seeded
            # A base URL setting is not licence to be sent elsewhere with the key.
            http_client=openai.DefaultHttpxClient(follow_redirects=False, verify=tls_context()),
        )
        self._frames = {}  # system prompt -> the encoded request around the user text and the image

    def request(self, system, user, jpeg):
        """The request's JSON, as bytes. Everything but the user text and the image is the same for
        every call with one system prompt, so it is encoded once and the two are spliced in (the
        image's base64 needs no escaping): json.dumps of the whole request, schema and 50 KB or more
        of base64 included, took about 7% of the interpreter lock at 64 concurrent requests."""
        frame = self._frames.get(system)
        if frame is None:
            encoded = json.dumps(self.fields(system, _USER_MARKER, _IMAGE_MARKER), ensure_ascii=False,
                                 separators=(",", ":"))
            head, rest = encoded.split(json.dumps(_USER_MARKER), 1)
            middle, tail = rest.split(_IMAGE_MARKER, 1)
            frame = self._frames[system] = (head.encode(), (middle + "data:image/jpeg;base64,").encode(), tail.encode())
        user_json = json.dumps(user, ensure_ascii=False).encode()
        return b"".join((frame[0], user_json, frame[1], base64.b64encode(jpeg), frame[2]))

    def fields(self, system, user, data_url):
        return {
            "model": self.model,
            "instructions": system,
            "input": [{
                "role": "user",
                "content": [
                    {"type": "input_text", "text": user},
                    {"type": "input_image", "image_url": data_url, "detail": "auto"},
                ],
            }],
            "text": {"format": {"type": "json_schema", "name": "scene_verdict", "schema": VERDICT_SCHEMA,
                                "strict": True}},
            "max_output_tokens": self.max_output_tokens,
            "store": False,
        }

    def send(self, body):
        import openai

        started = time.monotonic()
        try:
            # The client's own request and status handling, without responses.create's walk of the body
            # against its typed parameters and its typed Response: together 60% of a call's CPU, which
            # at 128 calls a second is what limits one process.
            http = self.client.post("/responses", content=body, cast_to=httpx.Response)
            reply = json.loads(http.content)
        except openai.APITimeoutError:
            raise BackendError(f"timed out after {self.timeout:g}s", retryable=True) from None
        except openai.APIConnectionError as exc:
            raise BackendError(f"connection failed: {self.redact(_cause(exc))}", retryable=True) from None
        except openai.APIStatusError as exc:
            body = self.redact(exc.response.text)
            headers = exc.response.headers
            retry_after = parse_retry_after(headers.get("retry-after"))
            if retry_after is None and headers.get("retry-after-ms"):
                retry_after = (parse_retry_after(headers.get("retry-after-ms")) or 0) / 1000
            raise BackendError(
                f"HTTP {exc.status_code}: {self.redact(_openai_message(exc))}",
                retryable=exc.status_code in RETRYABLE_STATUS, retry_after=retry_after, raw=body,
                status=exc.status_code,
            ) from None
        except openai.OpenAIError as exc:
            raise BackendError(f"{type(exc).__name__}: {self.redact(exc)}") from None
        except ValueError as exc:  # a 2xx body that is not JSON
            raise BackendError(f"unreadable reply: {self.redact(exc)}") from None
        latency = int((time.monotonic() - started) * 1000)
        if not isinstance(reply, dict):
            raise BackendError("unreadable reply: not a JSON object", raw=self.redact(http.text))
        raw = self.redact(json.dumps(_without_none(reply), ensure_ascii=False, separators=(",", ":")))
        text = _output_text(reply)
        if not text:
            refusal = _output_parts(reply, "refusal")
            detail = f"refused: {refusal}" if refusal else f"no text in reply (status {reply.get('status')})"
            raise BackendError(self.redact(detail), raw=raw)
        usage = reply.get("usage") if isinstance(reply.get("usage"), dict) else {}
        return Reply(text=text, raw=raw, latency_ms=latency, input_tokens=usage.get("input_tokens"),
                     output_tokens=usage.get("output_tokens"))

    def close(self):
        self.client.close()


class OllamaBackend(Backend):
    """Ollama /api/chat with `format` set to the JSON schema and the image in base64.

    Local talks to OLLAMA_HOST without credentials; cloud sends OLLAMA_API_KEY as a bearer token.
    """

    def __init__(self, model, *, cloud=False, host=None, api_key=None, **kw):
        import ollama  # here, not at the top, like openai

        super().__init__(model, **kw)
        self.cloud = cloud
        self.name = "ollama-cloud" if cloud else "ollama-local"
        if cloud:
            api_key = api_key if api_key is not None else settings.SCENEIMG_OLLAMA_API_KEY
            if not api_key:
                raise ValueError("the ollama-cloud backend needs an API key: set OLLAMA_API_KEY")
            self._secrets = (api_key,)
            self.host = host or settings.SCENEIMG_OLLAMA_CLOUD_HOST
            headers = {"Authorization": f"Bearer {api_key}"}
        else:
            self.host = host or settings.SCENEIMG_OLLAMA_HOST
            headers = {}
        self._local = threading.local()
        self.client = ollama.Client(
            host=self.host,
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
            follow_redirects=False,  # a host setting is not licence to be sent elsewhere
            verify=tls_context(),
            event_hooks={"response": [self._remember_retry_after]},
        )
        if not cloud:
            # The client adds OLLAMA_API_KEY from the environment to any host; a local server must not get it.
            self.client._client.headers.pop("authorization", None)

    def _remember_retry_after(self, response):
        # ollama's ResponseError drops the headers; keep Retry-After for this thread's retry loop.
        self._local.retry_after = parse_retry_after(response.headers.get("retry-after"))

    def send(self, request):
        import ollama

        system, user, jpeg = request
        self._local.retry_after = None
        started = time.monotonic()
        try:
            response = self.client.chat(
                model=self.model,
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": user, "images": [jpeg]},
                ],
                format=VERDICT_SCHEMA,
                options={"temperature": 0, "num_predict": self.max_output_tokens},
                stream=False,
            )
        except ollama.ResponseError as exc:
            status = exc.status_code
            raise BackendError(
                f"HTTP {status}: {self.redact(exc.error)}",
                retryable=status in RETRYABLE_STATUS or status == -1, retry_after=self._local.retry_after,
                raw=self.redact(exc.error), status=status,
            ) from None
        except httpx.TimeoutException:
            raise BackendError(f"timed out after {self.timeout:g}s", retryable=True) from None
        except (httpx.TransportError, ConnectionError) as exc:
            raise BackendError(f"connection failed: {self.redact(exc) or type(exc).__name__}",
                               retryable=True) from None
        except ValueError as exc:  # a 2xx body that is not a chat response
            raise BackendError(f"unreadable reply: {self.redact(exc)}") from None
        latency = int((time.monotonic() - started) * 1000)
        raw = self.redact(json.dumps(response.model_dump(exclude_none=True), default=str))
        text = (response.message.content or "") if response.message else ""
        if not text:
            raise BackendError("no text in reply", raw=raw)
        return Reply(text=text, raw=raw, latency_ms=latency,
                     input_tokens=response.prompt_eval_count, output_tokens=response.eval_count)

    def close(self):
        self.client._client.close()


def make_backend(name, model, *, timeout=None, base_url=None, api_key=None):
    """The backend called `name` (openai, ollama-local, ollama-cloud) for `model`."""
    timeout = timeout or settings.SCENEIMG_VLM_TIMEOUT
    if name == "openai":
        return OpenAIBackend(model, base_url=base_url, api_key=api_key, timeout=timeout)
    if name in ("ollama-local", "ollama-cloud"):
        return OllamaBackend(model, cloud=name == "ollama-cloud", host=base_url, api_key=api_key, timeout=timeout)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def default_model(backend):
    if backend == "openai":
        return settings.SCENEIMG_VLM_MODEL
    return settings.SCENEIMG_VLM_OLLAMA_MODEL


def cost_usd(model, input_tokens, output_tokens, backend=""):
    """Estimated cost from the per-model price setting; None when the model has no price."""
    if backend == "ollama-local":
        return 0.0
    price = settings.SCENEIMG_VLM_PRICES.get(model)
    if price is None or input_tokens is None or output_tokens is None:
        return None
    return round((input_tokens * price[0] + output_tokens * price[1]) / 1_000_000, 8)


def _cause(exc):
    cause = exc.__cause__ or exc.__context__
    return f"{type(cause).__name__}: {cause}" if cause else str(exc)


def _openai_message(exc):
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
    return (exc.response.text or exc.message or "")[:300]


def _output_parts(reply, kind):
    """The texts of one kind of content part ("output_text", "refusal") in a Responses body, joined."""
    parts = []
    for item in reply.get("output") or []:
        for content in (item.get("content") or []) if isinstance(item, dict) else []:
            if isinstance(content, dict) and content.get("type") == kind:
                value = content.get("text" if kind == "output_text" else "refusal")
                if isinstance(value, str):
                    parts.append(value)
    return "".join(parts)


def _output_text(reply):
    """What the SDK's Response.output_text gives: the output_text parts of the message items."""
    messages = {**reply, "output": [i for i in reply.get("output") or [] if isinstance(i, dict) and i.get("type") == "message"]}
    return _output_parts(messages, "output_text")


def _without_none(value):
    """The body as the SDK's model_dump_json(exclude_none=True) stored it before."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value
