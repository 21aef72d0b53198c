"""Asking the model about many images at once: threads in this process, or spread over processes.

Each call costs Python work that holds the interpreter lock: building the request (the SDK walks the
whole schema), base64, parsing the reply, and the downscale of a large picture. At 64 concurrent
requests one process spends longer queueing for that lock than the model spends answering, so with
more than PER_PROCESS workers the calls are spread over child processes (one per core by default),
each with its share of the threads. This process only reads the files and writes the verdicts; the
children never touch the database: a Task (the bytes to send and the user message) goes in, an
Outcome comes back. They are forked from a forkserver, never from this process, whose threads
(heartbeat, database) may hold locks at the moment of a fork.
"""
import io
import multiprocessing
import os
import queue
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from django.conf import settings
from PIL import Image as PILImage

from vlm import backends
from vlm.normalise import NormaliseError, normalise

PER_PROCESS = 16  # concurrent requests below which one more process costs more than it saves
READERS = 8  # threads reading files for the child processes (storage may be remote)
DRAIN = 256  # outcomes taken from the children per loop
CHILD_SETTINGS = ("SCENEIMG_VLM_", "SCENEIMG_OPENAI_", "SCENEIMG_OLLAMA_")


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
    """Everything a call needs besides the image: the same in this process and in a child."""

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
    data: bytes
    user: str


class ChildDied(RuntimeError):
    """A child process ended while calls were in its hands; their images have no outcome."""


def process_count(workers):
    """Processes for `workers` concurrent requests: SCENEIMG_VLM_PROCESSES (0: the cores), at most one
    per PER_PROCESS workers, so the original's 2 workers stay in this process."""
    configured = settings.SCENEIMG_VLM_PROCESSES or os.cpu_count() or 1
    return max(1, min(configured, workers // PER_PROCESS))


def judge_all(images, spec, *, workers, user_for, writer, tracker, processes=None):
    """Judge `images` (Image rows) with `workers` concurrent requests, handing each Outcome to
    `writer`; `user_for(image)` is the user message. Returns the CPU seconds child processes used."""
    processes = process_count(workers) if processes is None else processes
    if processes <= 1:
        _in_threads(images, spec, workers, user_for, writer, tracker)
        return 0.0
    return _in_processes(images, spec, processes, workers, user_for, writer, tracker)


def judge_task(task, client, spec, policy, stop_wait):
    """One image: downscale if needed, ask with bounded retries, normalise. Never raises."""
    outcome = Outcome(task.image_id)
    try:
        jpeg, _ = backends.prepare_image(task.data, spec.side)
        reply = backends.call_with_retries(
            lambda: client.call(spec.system, task.user, jpeg), policy,
            backends.rng_for(spec.seed, task.image_id), wait=stop_wait, label=f"image #{task.image_id}",
        )
    except backends.BackendError as exc:
        outcome.error, outcome.raw = client.redact(str(exc)), client.redact(exc.raw)
        return outcome
    except Exception as exc:  # a broken file or a bug for one image must not lose the others
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
    smallest = backends.SMALLEST_FRACTION * side
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


def _in_threads(images, spec, workers, user_for, writer, tracker):
    stop = threading.Event()
    policy = backends.RetryPolicy.from_settings()
    client = backends.make_backend(spec.backend, spec.model, timeout=spec.timeout, base_url=spec.base_url)

    def judge_one(image):
        try:
            task = read_task(image, user_for, spec.side)
        except Exception as exc:
            return Outcome(image.pk, error=client.redact(f"cannot read the image: {type(exc).__name__}: {exc}")[:2000])
        return judge_task(task, client, spec, policy, stop.wait)

    queue_ = iter(images)
    in_flight = set()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vlm") as pool:
        try:
            while True:
                while len(in_flight) < workers * 2 and not stop.is_set():
                    image = next(queue_, None)
                    if image is None:
                        break
                    in_flight.add(pool.submit(judge_one, image))
                if not in_flight:
                    break
                finished, in_flight = wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    writer.add(future.result())
                writer.maybe_flush()
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


_context = None


def _mp_context():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["vlm.calls"])  # imported once, in the server: forks start warm
    return _context


class _Children:
    """The child processes and their queues: tasks in, outcomes out, one stop event, a CPU total."""

    def __init__(self, spec, processes, threads):
        ctx = _mp_context()
        self.tasks, self.results, self.stop = ctx.Queue(), ctx.Queue(), ctx.Event()
        self.cpu = ctx.Value("d", 0.0)
        self.threads, self.finished = threads, False
        snapshot = {k: getattr(settings, k) for k in dir(settings) if k.startswith(CHILD_SETTINGS)}
        self.procs = [ctx.Process(target=_child_main, name=f"vlm-calls-{n}", daemon=True,
                                  args=(self.tasks, self.results, self.stop, self.cpu, spec, threads, snapshot))
                      for n in range(processes)]
        for p in self.procs:
            p.start()

    def drain(self):
        """Outcomes that came back within half a second; raises ChildDied when a child has ended."""
        try:
            out = [self.results.get(timeout=0.5)]
        except queue.Empty:
            dead = [p for p in self.procs if p.exitcode is not None]
            if dead:
                raise ChildDied(f"a judging process ended with exit code {dead[0].exitcode}") from None
            return []
        while len(out) < DRAIN:
            try:
                out.append(self.results.get_nowait())
            except queue.Empty:
                break
        return out

    def finish(self):
        """Every child thread ends once the tasks before its None are done (or skipped after a stop)."""
        if not self.finished:
            self.finished = True
            for _ in range(len(self.procs) * self.threads):
                self.tasks.put(None)

    def close(self, grace):
        """Wait up to `grace` seconds for the children to finish, then end what is left; their CPU seconds."""
        self.finish()
        deadline = time.monotonic() + grace
        for p in self.procs:
            p.join(max(0.1, deadline - time.monotonic()))
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
        for q in (self.tasks, self.results):
            q.cancel_join_thread()  # unread items must not keep this process from exiting
            q.close()
        return self.cpu.value


def _in_processes(images, spec, processes, workers, user_for, writer, tracker):
    children = _Children(spec, processes, threads=-(-workers // processes))
    outstanding = 0

    def feed(image):
        try:
            children.tasks.put(read_task(image, user_for, spec.side))
        except Exception as exc:
            children.results.put(Outcome(image.pk, error=backends.redact(
                f"cannot read the image: {type(exc).__name__}: {exc}")[:2000]))

    source = iter(images)
    readers = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="vlm-read")
    try:
        while True:
            while outstanding < workers * 2:
                image = next(source, None)
                if image is None:
                    break
                readers.submit(feed, image)
                outstanding += 1
            if not outstanding:
                break
            for outcome in children.drain():
                writer.add(outcome)
                outstanding -= 1
            writer.maybe_flush()
            tracker.check_cancelled()
    except BaseException:
        # Cancelled or a child died: the calls in hand end at their next wait; keep what comes back.
        children.stop.set()
        readers.shutdown(cancel_futures=True)
        children.finish()
        deadline = time.monotonic() + spec.timeout
        while outstanding and time.monotonic() < deadline:
            alive = any(p.is_alive() for p in children.procs)
            try:
                outcomes = children.drain()
            except ChildDied:
                outcomes = []
            for outcome in outcomes:
                writer.add(outcome)
                outstanding -= 1
            if not alive and not outcomes:
                break
        writer.flush()
        children.close(grace=1)
        raise
    readers.shutdown()
    return children.close(grace=spec.timeout)


def _child_main(tasks, results, stop, cpu, spec, threads, snapshot):
    """A child process: `threads` threads taking tasks until each gets its None."""
    if not settings.configured:
        settings.configure(**snapshot)  # a fresh interpreter: the parent's settings, test overrides included
    client = backends.make_backend(spec.backend, spec.model, timeout=spec.timeout, base_url=spec.base_url)
    policy = backends.RetryPolicy.from_settings()

    def work():
        while True:
            task = tasks.get()
            if task is None:
                return
            if not stop.is_set():  # after a stop the rest is only drained, never asked about
                results.put(judge_task(task, client, spec, policy, stop.wait))

    pool = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    client.close()
    with cpu.get_lock():
        cpu.value += time.process_time()
