"""Asking the model about many images at once, in threads, and what each call sends.

Each call's Python work holds the interpreter lock (building the request, base64, parsing the reply),
and at 64 concurrent requests threads queue for that lock: the cheaper each call, the closer the stage
runs to the model's own limit. So a large picture goes as its stored thumbnail when that is already
big enough, else as a reduced-scale JPEG decode (vlm.model_input), and the OpenAI call skips the SDK's
typed request and response models (vlm.backends).

Every picture is read and downscaled ahead of its call, by one thread per core, while the calls
before it wait for the model. A call that finishes hands its thread straight to a picture that is
ready, so reading and decoding are not between one reply and the next request, and the first
requests go out one by one as their pictures are ready instead of all 64 together at the end.
"""
import io
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from PIL import Image as PILImage

from vlm import backends, model_input
from vlm.normalise import NormaliseError, normalise


@dataclass
class Outcome:
    image_id: int
    decision: str | None = None
    score: float | None = None
    reason: str = ""
    tags: list = field(default_factory=list)
    raw: str = ""
    error: str = ""
    latency_ms: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class Spec:
    """Everything a call needs besides the image."""

    backend: str
    model: str
    timeout: float
    system: str
    seed: int = 0
    side: int = 1024
    base_url: str | None = None


@dataclass
class Task:
    image_id: int
    data: bytes  # the picture: as stored, then as it will be sent
    user: str
    request: object = None  # what the backend sends (backends.Backend.request)


def judge_all(images, spec, *, workers, user_for, writer, tracker):
    """Judge `images` (Image rows) with `workers` concurrent requests, handing each Outcome to
    `writer`; `user_for(image)` is the user message."""
    stop = threading.Event()
    policy = backends.RetryPolicy.from_settings()
    client = backends.make_backend(spec.backend, spec.model, timeout=spec.timeout, base_url=spec.base_url)

    def prepare(image):
        """The picture as it will be sent (a Task), or the Outcome that says why it cannot be."""
        try:
            task = read_task(image, user_for, spec.side)
        except Exception as exc:
            return Outcome(image.pk, error=client.redact(f"cannot read the image: {type(exc).__name__}: {exc}")[:2000])
        try:
            task.data, _ = model_input.prepare_image(task.data, spec.side)
            task.request = client.request(spec.system, task.user, task.data)
        except Exception as exc:  # a broken file must not lose the others
            return Outcome(image.pk, error=client.redact(f"{type(exc).__name__}: {exc}")[:2000])
        return task

    def judge_one(prepared):
        task = prepared.result()
        return task if isinstance(task, Outcome) else judge_task(task, client, spec, policy, stop.wait)

    todo = iter(images)
    finished = queue.SimpleQueue()  # futures as they complete: no scan of every call in flight per result
    in_flight = set()
    # Decoding releases the interpreter lock, so one preparing thread per core uses every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="vlm-prepare") as preparing, \
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vlm") as pool:
        try:
            draining = False
            while True:
                # Twice the calls at once: the pictures of the next round are prepared while this one waits.
                while len(in_flight) < workers * 2 and not stop.is_set():
                    image = next(todo, None)
                    if image is None:
                        draining = True
                        break
                    future = pool.submit(judge_one, preparing.submit(prepare, image))
                    in_flight.add(future)
                    future.add_done_callback(finished.put)
                if not in_flight:
                    break
                try:
                    future = finished.get(timeout=0.5)
                    while True:
                        in_flight.discard(future)
                        writer.add(future.result())
                        future = finished.get_nowait()
                except queue.Empty:
                    pass
                # Once every image is asked for, what came back is written at once rather than by the
                # batch: the last replies then wait for a few rows' write, not for a whole batch's.
                writer.maybe_flush(eager=draining)
                tracker.check_cancelled()
        except BaseException:
            # Cancelled (or interrupted): let running calls give up at their next wait, keep what came back.
            stop.set()
            for future in in_flight:
                future.cancel()
            for future in in_flight:
                if not future.cancelled():
                    writer.add(future.result())
            writer.flush()
            raise
        finally:
            client.close()


def judge_task(task, client, spec, policy, stop_wait):
    """One prepared picture: ask with bounded retries, normalise. Never raises."""
    outcome = Outcome(task.image_id)
    try:
        reply = backends.call_with_retries(
            lambda: client.send(task.request), policy,
            backends.rng_for(spec.seed, task.image_id), wait=stop_wait, label=f"image #{task.image_id}",
        )
    except backends.BackendError as exc:
        outcome.error, outcome.raw = client.redact(str(exc)), client.redact(exc.raw)
        return outcome
    except Exception as exc:  # a bug for one image must not lose the others
        outcome.error = client.redact(f"{type(exc).__name__}: {exc}")[:2000]
        return outcome
    outcome.raw, outcome.latency_ms = reply.raw, reply.latency_ms
    outcome.input_tokens, outcome.output_tokens = reply.input_tokens, reply.output_tokens
    try:
        verdict = normalise(reply.text)
    except NormaliseError as exc:
        outcome.error = client.redact(str(exc))
        return outcome
    outcome.decision, outcome.score = verdict.decision, verdict.score
    outcome.reason, outcome.tags = client.redact(verdict.reason), [client.redact(t) for t in verdict.tags]
    return outcome


def read_task(image, user_for, side):
    """The bytes to send for a stored image: its thumbnail when that is already large enough for the
    model (no decode at all), else the file, downscaled later by prepare_image."""
    data = _thumbnail_if_enough(image, side)
    if data is None:
        with image.file.storage.open(image.file.name, "rb") as fh:
            data = fh.read()
    return Task(image.pk, data, user_for(image))


def _thumbnail_if_enough(image, side):
    """Only with SCENEIMG_THUMB_SIZE near the model's side (the 320 px default never is); the
    thumbnail's own header decides, since the setting may have changed since it was made."""
    smallest = model_input.SMALLEST_FRACTION * side
    if not image.thumbnail or max(image.width or 0, image.height or 0) <= side:
        return None  # the file goes as it is, or is a small re-encode
    if settings.SCENEIMG_THUMB_SIZE < smallest:
        return None
    try:
        with image.thumbnail.storage.open(image.thumbnail.name, "rb") as fh:
            data = fh.read()
        with PILImage.open(io.BytesIO(data)) as im:
            fits = im.format == "JPEG" and im.mode == "RGB" and smallest <= max(im.size) <= side
    except (OSError, ValueError):
        return None
    return data if fits else None
