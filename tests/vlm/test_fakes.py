"""Every switch of both fakes, driven through the official clients by our backends."""
import json

import pytest

from tests.conftest import encode, photo_like
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai_responses import FakeOpenAI
from tests.fakes.vlm_common import reply_text, verdict_for
from tests.vlm.conftest import OLLAMA_KEY, OPENAI_KEY
from vlm import backends, model_input
from vlm.normalise import normalise

KINDS = {"openai": FakeOpenAI, "ollama-local": FakeOllama}


@pytest.fixture(scope="module")
def jpeg():
    data, size = model_input.prepare_image(encode(photo_like(1200, 900, 3)), 512)
    assert size == (450, 338)  # decoded at 3/8, the smallest scale that keeps 3/4 of the 512 side
    return data


def call(kind, mode, jpeg, timeout=2.0, **fake_kw):
    with KINDS[kind](mode, slow_seconds=1.0, **fake_kw) as fake:
        backend = backends.make_backend(kind, "test-model", timeout=timeout, base_url=fake.base_url, api_key=OPENAI_KEY)
        try:
            return fake, backend.call("system text", "user text", jpeg)
        finally:
            backend.close()


@pytest.mark.parametrize("kind", KINDS)
def test_valid_reply_becomes_the_fakes_verdict_with_tokens(kind, jpeg):
    fake, reply = call(kind, "valid", jpeg)
    assert normalise(reply.text).as_dict() == verdict_for(jpeg)
    assert reply.input_tokens > 500 and reply.output_tokens > 0
    # The raw body is kept whole: the response object with the model's text inside it, JSON-escaped.
    body = json.loads(reply.raw)
    assert body["model"] == "test-model"
    assert json.dumps(reply.text)[1:-1] in reply.raw
    assert fake.requests[0]["image_size"] == [450, 338]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["fenced", "prose"])
def test_fenced_and_prose_replies_still_give_the_verdict(kind, mode, jpeg):
    _, reply = call(kind, mode, jpeg)
    assert reply.text != reply_text("valid", jpeg)
    assert normalise(reply.text).as_dict() == verdict_for(jpeg)


@pytest.mark.parametrize("kind", KINDS)
def test_invalid_decision_is_read_as_reject_as_the_original_did(kind, jpeg):
    _, reply = call(kind, "invalid_decision", jpeg)
    verdict = normalise(reply.text)
    assert verdict.decision == "reject" and verdict.notes == ["decision 'maybe' read as reject"]


@pytest.mark.parametrize("kind", KINDS)
def test_score_above_one_is_clamped(kind, jpeg):
    _, reply = call(kind, "score_high", jpeg)
    assert '1.7' in reply.text
    assert normalise(reply.text).score == 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_500_character_reason_is_cut(kind, jpeg):
    _, reply = call(kind, "long_reason", jpeg)
    assert len(normalise(reply.text).reason) == 160


@pytest.mark.parametrize("kind", KINDS)
def test_duplicate_mixed_case_tags_are_merged(kind, jpeg):
    _, reply = call(kind, "dup_tags", jpeg)
    assert normalise(reply.text).tags == ["kitchen", "mug", "clutter"]


@pytest.mark.parametrize("kind", KINDS)
def test_429_is_retryable_and_carries_retry_after(kind, jpeg):
    with pytest.raises(backends.BackendError) as err:
        call(kind, "rate_limit", jpeg, retry_after=7)
    assert err.value.status == 429 and err.value.retryable and err.value.retry_after == 7.0


@pytest.mark.parametrize("kind", KINDS)
def test_500_is_retryable_without_retry_after(kind, jpeg):
    with pytest.raises(backends.BackendError, match="HTTP 500") as err:
        call(kind, "server_error", jpeg)
    assert err.value.retryable and err.value.retry_after is None and "server had an error" in err.value.raw


@pytest.mark.parametrize("kind", KINDS)
def test_reply_slower_than_timeout_times_out(kind, jpeg):
    with pytest.raises(backends.BackendError, match="timed out after 0.2s") as err:
        call(kind, "slow", jpeg, timeout=0.2)
    assert err.value.retryable


@pytest.mark.parametrize("kind", KINDS)
def test_reset_connection_is_a_retryable_connection_error(kind, jpeg):
    with pytest.raises(backends.BackendError, match="connection failed") as err:
        call(kind, "reset", jpeg)
    assert err.value.retryable


@pytest.mark.parametrize("kind", KINDS)
def test_configurable_latency_is_seen_by_the_client(kind, jpeg):
    _, reply = call(kind, "valid", jpeg, latency=0.05)
    assert reply.latency_ms >= 50  # a lower bound only: sleeping guarantees at least this much


@pytest.mark.parametrize("kind", KINDS)
def test_script_then_fallback_mode(kind, jpeg):
    with KINDS[kind]("valid", script=["server_error"]) as fake:
        backend = backends.make_backend(kind, "m", timeout=2, base_url=fake.base_url, api_key=OPENAI_KEY)
        with pytest.raises(backends.BackendError):
            backend.call("s", "u", jpeg)
        assert normalise(backend.call("s", "u", jpeg).text).decision in ("keep", "reject")
        assert [r["mode"] for r in fake.requests] == ["server_error", "valid"]


def test_openai_request_is_a_strict_json_schema_response_with_a_data_url(jpeg):
    fake, _ = call("openai", "valid", jpeg, api_key=OPENAI_KEY)
    r = fake.requests[0]
    assert r["path"] == "/v1/responses" and r["format_type"] == "json_schema" and r["strict"] is True
    assert r["instructions"] == "system text" and r["store"] is False
    assert r["auth"] == f"Bearer {OPENAI_KEY}"


def test_openai_wrong_key_is_a_non_retryable_401(jpeg):
    with FakeOpenAI("valid", api_key="sk-other") as fake:
        backend = backends.make_backend("openai", "m", timeout=2, base_url=fake.base_url, api_key=OPENAI_KEY)
        with pytest.raises(backends.BackendError, match="HTTP 401") as err:
            backend.call("s", "u", jpeg)
    assert not err.value.retryable


def test_ollama_request_sends_schema_as_format_and_no_stream(jpeg):
    fake, _ = call("ollama-local", "valid", jpeg)
    r = fake.requests[0]
    assert r["path"] == "/api/chat" and r["format"] == backends.VERDICT_SCHEMA and r["stream"] is False
    assert r["options"]["temperature"] == 0


def test_ollama_cloud_sends_the_key_as_bearer(settings, jpeg):
    settings.SCENEIMG_OLLAMA_API_KEY = OLLAMA_KEY
    with FakeOllama("valid", api_key=OLLAMA_KEY) as fake:
        backend = backends.make_backend("ollama-cloud", "m", timeout=2, base_url=fake.base_url)
        assert normalise(backend.call("s", "u", jpeg).text).decision in ("keep", "reject")
    assert fake.requests[0]["auth"] == f"Bearer {OLLAMA_KEY}"


def test_ollama_local_never_sends_the_cloud_key(monkeypatch, jpeg):
    monkeypatch.setenv("OLLAMA_API_KEY", OLLAMA_KEY)  # the ollama client would add it to any host
    fake, _ = call("ollama-local", "valid", jpeg)
    assert fake.requests[0]["auth"] == ""


def test_missing_keys_are_clear_errors(settings):
    settings.SCENEIMG_OPENAI_API_KEY = ""
    settings.SCENEIMG_OLLAMA_API_KEY = ""
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        backends.make_backend("openai", "m")
    with pytest.raises(ValueError, match="OLLAMA_API_KEY"):
        backends.make_backend("ollama-cloud", "m")
    with pytest.raises(ValueError, match="unknown backend"):
        backends.make_backend("bard", "m")


def test_image_is_downscaled_to_the_configured_side_and_flattened():
    png = encode(photo_like(300, 1000, 1, mode="RGBA"), "PNG")
    data, size = model_input.prepare_image(png, 256)
    assert size == (77, 256) and data[:3] == b"\xff\xd8\xff"
    small, size = model_input.prepare_image(encode(photo_like(100, 80, 2)), 256)
    assert size == (100, 80)  # never enlarged


def test_the_spliced_request_is_the_whole_request_encoded_plainly(jpeg):
    """The request is encoded once per system prompt and the user text and image spliced in: it must be
    the same JSON as encoding everything, for texts that need escaping too."""
    import base64

    backend = backends.make_backend("openai", "test-model", timeout=1, base_url="http://127.0.0.1:9/v1",
                                    api_key=OPENAI_KEY)
    try:
        for system, user in [("system text", "user text"), ("système «x»", 'a "quoted"\nline\\ with é and \u2028'),
                             ("system text", "")]:
            sent = json.loads(backend.request(system, user, jpeg))
            data_url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
            assert sent == backend.fields(system, user, data_url)
        assert len(backend._frames) == 2  # one encoding per system prompt
    finally:
        backend.close()
