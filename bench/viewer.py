"""Review viewer in a real browser: key-to-image latency when preloaded, and decisions per minute.

Runs through pytest so that it reuses the browser tests' live server and Chromium (it is not part of the
test suite; `testpaths` is tests/). It makes its own images (stored JPEGs) in pytest-django's test
database, signs in and opens /viewer/.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/h_view .venv/bin/pytest bench/viewer.py -s -p no:cacheprovider
    VIEWER_PRESSES=200 VIEWER_DECISIONS=300 VIEWER_SIZE=1024x768 VIEWER_PACE_MS=40 ...   # the defaults

1. Latency: `s` (skip) pressed 200 times, each once the next image is preloaded (as a reviewer who looks
   at each picture for a moment). The time is taken in the page, performance.now() from the keydown to
   the animation frame that shows the new image (viewer.js's SceneImgViewer.timings).
2. Throughput: `k`/`r` alternately, each as soon as the previous decision's image has left the screen,
   until every image has a decision; then wait until every Review row is written. Decisions per minute =
   decisions / (first key to last Review row). Lost = presses - Review rows (must be 0), and the rows
   must be in the order of the presses.

3. Paced: the same decisions on fresh images, but the keys are sent from inside the page every
   VIEWER_PACE_MS (40: the 1,500 a minute of the anchor), each once its image is on screen, so the figure
   is the viewer's and the server's, not Playwright's round trip per key. Decisions per minute =
   decisions / (first key to last Review row); lost must be 0, rows in order.

Anchors: p95 key-to-image <= 50 ms; >= 1,500 decisions per minute. Each line prints its ratio.
"""
import os
import statistics
import time

import pytest

from curation.models import Review
from tests.browser.conftest import browser_page, browser_user, chromium, log_in, logged_in_page  # noqa: F401
from tests.factories import stored_image

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

LATENCY_ANCHOR_MS = 50.0
RATE_ANCHOR = 1500.0

pytestmark = pytest.mark.django_db(transaction=True)


def options():
    presses = int(os.environ.get("VIEWER_PRESSES", "200"))
    decisions = int(os.environ.get("VIEWER_DECISIONS", "300"))
    width, height = (int(v) for v in os.environ.get("VIEWER_SIZE", "1024x768").split("x"))
    return presses, decisions, width, height


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def shown(page):
    return page.evaluate("window.SceneImgViewer.state().id")


def test_viewer_bench(logged_in_page):  # noqa: F811 (the fixture imported above)
    page = logged_in_page
    presses, decisions, width, height = options()
    count = max(presses + 1, decisions)
    started = time.monotonic()
    images = [stored_image(10_000 + i, width=width, height=height) for i in range(count + decisions)]
    print(f"\n{len(images)} images of {width}×{height} made in {time.monotonic() - started:.1f} s")
    images, paced = images[:count], images[count:]

    # 1. Key to image, preloaded.
    page.goto(f"{page.base_url}/viewer/?sort=old")
    page.wait_for_function("id => window.SceneImgViewer && window.SceneImgViewer.state().id === id", arg=images[0].pk)
    ready = """() => {
      const s = window.SceneImgViewer.state();
      return [...document.querySelectorAll('.viewer-img')].filter(el => s.preloaded.includes(Number(el.dataset.id)))
        .every(el => el.complete && el.naturalWidth > 0) && s.preloaded.length >= Math.min(4, s.loaded - s.index);
    }"""
    for i in range(presses):
        page.wait_for_function(ready)
        page.keyboard.press("s")
        page.wait_for_function("n => window.SceneImgViewer.timings.length === n", arg=i + 1)
    timings = page.evaluate("window.SceneImgViewer.timings")
    assert shown(page) == images[presses].pk
    p50, p95 = statistics.median(timings), percentile(timings, 95)
    print(f"key to image (preloaded, {len(timings)} presses): p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
          f"max {max(timings):.1f} ms; ratio to the {LATENCY_ANCHOR_MS:.0f} ms anchor "
          f"{p95 / LATENCY_ANCHOR_MS:.2f} (lower is better)")

    # 2. Decisions as fast as the viewer takes them.
    page.goto(f"{page.base_url}/viewer/?sort=old&human=none")
    page.wait_for_function("id => window.SceneImgViewer && window.SceneImgViewer.state().id === id", arg=images[0].pk)
    page.evaluate("performance.setResourceTimingBufferSize(10000)")
    keys = ["k" if i % 2 == 0 else "r" for i in range(decisions)]
    started = time.monotonic()
    for i, key in enumerate(keys):
        page.keyboard.press(key)
        if i + 1 < decisions:
            page.wait_for_function("id => window.SceneImgViewer.state().id === id", arg=images[i + 1].pk)
    pressed = time.monotonic() - started
    deadline = time.monotonic() + 120
    while Review.objects.count() < decisions and time.monotonic() < deadline:
        page.wait_for_timeout(20)
    elapsed = time.monotonic() - started
    rows = list(Review.objects.order_by("pk").values_list("image_id", "new"))
    want = [(im.pk, "keep" if key == "k" else "reject") for im, key in zip(images, keys, strict=False)]
    rate = len(rows) / (elapsed / 60)
    print(f"decisions: {decisions} pressed in {pressed:.1f} s, {len(rows)} Review rows after {elapsed:.1f} s, "
          f"lost {decisions - len(rows)}, in order {rows == want}")
    print(f"decisions per minute: {rate:,.0f}; ratio to the {RATE_ANCHOR:,.0f}/minute anchor "
          f"{rate / RATE_ANCHOR:.2f} (higher is better)")
    # Where the time goes: one request is out at a time, carrying the decisions that piled up meanwhile.
    spans = page.evaluate("""() => performance.getEntriesByType('resource')
      .filter(e => /\\/(decide|review\\/decisions)\\/$/.test(e.name)).map(e => [e.startTime, e.responseEnd])""")
    if len(spans) > 1:
        durations = [end - start for start, end in spans]
        gaps = [spans[i + 1][0] - spans[i][1] for i in range(len(spans) - 1)]
        print(f"decision requests: {len(spans)} ({decisions / len(spans):.1f} decisions each), "
              f"each {statistics.mean(durations):.1f} ms on average (p95 {percentile(durations, 95):.1f} ms), "
              f"{statistics.mean(gaps):.1f} ms between one answer and the next request")
    assert rows == want
    paced_in_page(page, paced, pace_ms())
    assert page.js_errors == []


PACED = """async ([n, pace]) => {
  const viewer = window.SceneImgViewer;
  const sleep = ms => new Promise(done => setTimeout(done, ms));
  const start = performance.now();
  let waits = 0;
  for (let i = 0; i < n; i++) {
    const due = start + i * pace;
    if (performance.now() < due) await sleep(due - performance.now());
    // The key for image i only once image i is on screen, as a person would see it first.
    while (viewer.state().index !== i) { waits++; await sleep(2); }
    document.dispatchEvent(new KeyboardEvent("keydown", { key: i % 2 ? "r" : "k", bubbles: true }));
  }
  return { seconds: (performance.now() - start) / 1000, waits };
}"""


def pace_ms():
    return float(os.environ.get("VIEWER_PACE_MS", "40"))


def paced_in_page(page, images, pace):
    """3. Keys sent from inside the page every `pace` ms (40 ms: 1,500 a minute), each once its image
    is on screen: the viewer's own limit, without the bench's round trip to the browser per key."""
    before = Review.objects.count()
    page.goto(f"{page.base_url}/viewer/?sort=old&human=none")
    page.wait_for_function("id => window.SceneImgViewer && window.SceneImgViewer.state().id === id", arg=images[0].pk)
    started = time.monotonic()
    keys = page.evaluate(PACED, [len(images), pace])
    deadline = time.monotonic() + 120
    while Review.objects.count() < before + len(images) and time.monotonic() < deadline:
        page.wait_for_timeout(20)
    elapsed = time.monotonic() - started
    rows = list(Review.objects.order_by("pk").values_list("image_id", "new"))[before:]
    want = [(im.pk, "reject" if i % 2 else "keep") for i, im in enumerate(images)]
    rate = len(rows) / (elapsed / 60)
    print(f"paced in the page, a key every {pace:.0f} ms ({60_000 / pace:,.0f}/minute offered): {len(images)} keys "
          f"in {keys['seconds']:.1f} s ({keys['waits']} short waits for an image), {len(rows)} Review rows after "
          f"{elapsed:.1f} s, lost {len(images) - len(rows)}, in order {rows == want}")
    print(f"decisions per minute, paced: {rate:,.0f}; ratio to the {RATE_ANCHOR:,.0f}/minute anchor "
          f"{rate / RATE_ANCHOR:.2f} (higher is better)")
    assert rows == want
