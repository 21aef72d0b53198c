"""Bounded retries: exponential backoff with seeded jitter, Retry-After honoured, clients' own retries off."""
import email.utils
import time

import pytest

from tests.conftest import encode, photo_like
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai_responses import FakeOpenAI
from tests.vlm.conftest import OPENAI_KEY
from vlm import backends, model_input
from vlm.backends import BackendError, Reply, RetryPolicy, call_with_retries, parse_retry_after, rng_for

FAKES = {"openai": FakeOpenAI, "ollama-local": FakeOllama}


class Recorder:
    def __init__(self):
        self.waits = []

    def __call__(self, seconds):
        self.waits.append(seconds)
        return False


def flaky(errors, reply=None):
    errors = list(errors)
    calls = []

    def call():
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return reply or Reply(text="{}", raw="{}")
    call.calls = calls
    return call


def test_retries_until_success_and_backoff_doubles_with_jitter_under_the_cap():
    policy = RetryPolicy(retries=5, backoff=1.0, backoff_max=3.0)
    wait = Recorder()
    call = flaky([BackendError("x", retryable=True)] * 4)
    reply = call_with_retries(call, policy, rng_for(1, 42), wait=wait)
    assert reply.attempts == 5 and len(call.calls) == 5
    ceilings = [1.0, 2.0, 3.0, 3.0]
    assert all(c / 2 <= w <= c for w, c in zip(wait.waits, ceilings, strict=True))


def test_jitter_is_reproducible_by_seed_and_differs_between_seeds():
    policy = RetryPolicy(retries=3, backoff=1.0, backoff_max=30.0)

    def waits(seed):
        wait = Recorder()
        with pytest.raises(BackendError):
            call_with_retries(flaky([BackendError("x", retryable=True)] * 9), policy, rng_for(seed, 7), wait=wait)
        return wait.waits

    assert waits(3) == waits(3)
    assert waits(3) != waits(4)


def test_retries_are_bounded_and_the_error_says_how_many_attempts():
    call = flaky([BackendError("HTTP 500: boom", retryable=True)] * 10)
    with pytest.raises(BackendError, match=r"HTTP 500: boom \(after 3 attempts\)"):
        call_with_retries(call, RetryPolicy(retries=2), rng_for(0, 1), wait=Recorder())
    assert len(call.calls) == 3


def test_non_retryable_errors_are_not_retried():
    call = flaky([BackendError("HTTP 401", retryable=False)])
    with pytest.raises(BackendError):
        call_with_retries(call, RetryPolicy(retries=5), rng_for(0, 1), wait=Recorder())
    assert len(call.calls) == 1


def test_retry_after_is_honoured_instead_of_backoff_and_capped():
    wait = Recorder()
    call = flaky([BackendError("429", retryable=True, retry_after=7.0),
                  BackendError("429", retryable=True, retry_after=500.0)])
    call_with_retries(call, RetryPolicy(retries=3, backoff=0.1, retry_after_max=60.0), rng_for(0, 1), wait=wait)
    assert wait.waits == [7.0, 60.0]


def test_a_cancelled_wait_stops_retrying():
    call = flaky([BackendError("x", retryable=True)] * 5)
    with pytest.raises(BackendError):
        call_with_retries(call, RetryPolicy(retries=5), rng_for(0, 1), wait=lambda s: True)
    assert len(call.calls) == 1


def test_parse_retry_after_seconds_and_http_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after(later) <= 31


@pytest.mark.parametrize("kind", FAKES)
def test_429_then_success_through_the_real_client_waits_retry_after(kind):
    jpeg, _ = model_input.prepare_image(encode(photo_like(64, 48, 1)), 64)
    with FAKES[kind]("valid", script=["rate_limit", "server_error"], retry_after=4) as fake:
        backend = backends.make_backend(kind, "m", timeout=2, base_url=fake.base_url, api_key=OPENAI_KEY)
        wait = Recorder()
        reply = call_with_retries(lambda: backend.call("s", "u", jpeg), RetryPolicy(retries=3, backoff=0.5),
                                  rng_for(0, 1), wait=wait)
    assert reply.attempts == 3
    assert wait.waits[0] == 4.0 and 0.25 <= wait.waits[1] <= 1.0
    assert [r["mode"] for r in fake.requests] == ["rate_limit", "server_error", "valid"]


@pytest.mark.parametrize("kind", FAKES)
@pytest.mark.parametrize("mode", ["server_error", "reset", "rate_limit"])
def test_clients_do_not_retry_on_their_own(kind, mode):
    """One call is one request: only our loop retries, so the bound is ours."""
    jpeg, _ = model_input.prepare_image(encode(photo_like(64, 48, 1)), 64)
    with FAKES[kind](mode, retry_after=0) as fake:
        backend = backends.make_backend(kind, "m", timeout=2, base_url=fake.base_url, api_key=OPENAI_KEY)
        with pytest.raises(BackendError):
            backend.call("s", "u", jpeg)
        assert len(fake.requests) == 1
        with pytest.raises(BackendError):
            call_with_retries(lambda: backend.call("s", "u", jpeg), RetryPolicy(retries=2), rng_for(0, 1),
                              wait=Recorder())
        assert len(fake.requests) == 1 + 3
