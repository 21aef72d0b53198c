"""Soak: reviewers, a URL import, killed workers and a Redis restart, for N minutes. Not a test.

Starts the real stack with scripts/run.sh (web server, workers, maintenance) on a Redis of its own and
a scratch media folder, a loopback image host, and then for --minutes:

- 16 reviewer clients sign in and decide images (keep or reject, each decision with its client id),
  browsing the gallery, its count and the detail pages in between;
- a URL import runs, launched again whenever its run has ended (ingest skips URLs already stored);
- every --kill-every seconds a random worker is killed with SIGKILL (with its work horse), as the
  OOM killer would; once, half-way, Redis is shut down and started again 10 s later (with its data).

Then it lets the maintenance loop reap what the kills left, and prints: requests, 5xx answers, client
errors (connection refused while the server was busy), reviews the server acknowledged but did not
keep (lost reviews), files without rows and rows without files (check_storage), runs still stuck
in queued or running, and the most requests and connections the image host saw at once (the per-host
limit, SCENEIMG_FETCH_PER_HOST = 4, holds across workers and their restarts). Anchor: 0 for 5xx, lost
reviews, rows without files and stuck runs.

    createdb -h 127.0.0.1 -U postgres sceneimg_soak
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sceneimg_soak .venv/bin/python bench/soak.py --minutes 2
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.procs import kill_all, tree, wait_for, workers  # noqa: E402

CLIENTS = 16
PASSWORD = "soak-pw-12345678"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    def __init__(self, folder):
        self.port, self.folder, self.proc = free_port(), folder, None

    def start(self):
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        wait_for(lambda: _ping(redis.Redis(port=self.port, socket_timeout=1)), timeout=10)

    def restart(self, outage):
        import redis

        try:
            redis.Redis(port=self.port, socket_timeout=5).shutdown(save=True)
        except redis.ConnectionError:
            pass
        self.proc.wait(timeout=10)
        time.sleep(outage)
        self.start()


def _ping(client):
    try:
        return client.ping()
    except Exception:
        return False


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = Counter()
        self.acknowledged = {}  # Review id the server said it wrote -> the decision's client id

    def add(self, key, n=1):
        with self.lock:
            self.counts[key] += n


class Reviewer(threading.Thread):
    def __init__(self, n, base, stats, stop):
        super().__init__(daemon=True, name=f"reviewer-{n}")
        self.username, self.base, self.stats, self.stop = f"soak{n}", base, stats, stop
        self.session = requests.Session()
        self.rng = random.Random(n)

    def request(self, method, path, **kw):
        try:
            resp = self.session.request(method, self.base + path, timeout=30, **kw)
        except requests.RequestException as exc:
            self.stats.add("client errors")
            self.stats.add(f"client error: {type(exc).__name__}")
            return None
        self.stats.add("requests")
        if resp.status_code >= 500:
            self.stats.add("5xx")
        return resp

    def sign_in(self):
        while not self.stop.is_set():
            page = self.request("GET", "/accounts/login/")
            if page is not None and page.status_code == 200:
                resp = self.request("POST", "/accounts/login/", data={
                    "username": self.username, "password": PASSWORD,
                    "csrfmiddlewaretoken": self.session.cookies.get("csrftoken", "")},
                    headers={"Referer": self.base + "/accounts/login/"}, allow_redirects=False)
                if resp is not None and resp.status_code == 302:
                    return True
            time.sleep(1)
        return False

    def run(self):
        if not self.sign_in():
            return
        while not self.stop.is_set():
            gallery = self.request("GET", self.rng.choice(["/", "/?final=none", "/?sort=old"]))
            ids = sorted({int(i) for i in re.findall(r"/images/(\d+)/", gallery.text)}) if gallery is not None else []
            self.request("GET", "/count/")
            if not ids:
                time.sleep(0.5)
                continue
            for pk in self.rng.sample(ids, min(3, len(ids))):
                if self.rng.random() < 0.2:
                    self.request("GET", f"/images/{pk}/")
                decision, client_id = self.rng.choice(["keep", "reject"]), uuid.uuid4().hex
                resp = self.request("POST", f"/images/{pk}/decide/", data={"decision": decision, "client_id": client_id},
                                    headers={"X-CSRFToken": self.session.cookies.get("csrftoken", ""), "HX-Request": "true",
                                             "Referer": self.base + "/"})
                if resp is not None and resp.status_code == 200:
                    # The answer names the Review rows it wrote (none when the image had that decision).
                    written = json.loads(resp.headers.get("HX-Trigger", "{}")).get("reviewed", {}).get("reviews", [])
                    with self.stats.lock:
                        self.stats.acknowledged.update({pk: client_id for pk in written})
                    self.stats.add("decisions acknowledged")
                    self.stats.add("reviews acknowledged", len(written))
            time.sleep(self.rng.uniform(0.1, 0.4))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--urls", type=int, default=4000, help="URLs in the import list")
    parser.add_argument("--kill-every", type=float, default=20.0, help="seconds between worker kills")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a scratch Postgres database (16 clients and 4 workers write at once)")
    return args


def start_stack(scratch, redis_port, host_port):
    """scripts/run.sh on a free port, a scratch var folder and the test's own Redis; (process, base URL)."""
    port = free_port()
    env = {**os.environ, "DEBUG": "1", "PORT": str(port), "SCENEIMG_VAR_DIR": str(scratch / "var"),
           "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "SCENEIMG_SKIP_SETUP": "1",
           "SCENEIMG_FETCH_ALLOW_PRIVATE": f"127.0.0.1:{host_port}", "SCENEIMG_STALE_RUN_SECONDS": "20",
           "SCENEIMG_MAINTENANCE_SECONDS": "10", "SCENEIMG_STOP_GRACE": "5",
           "SCENEIMG_LOGIN_FAILURES_PER_ADDRESS": "1000", "DJANGO_SETTINGS_MODULE": "sceneimg_site.settings"}
    os.environ.update(env)
    # A scratch database: the figures count rows, and the media folder is new each time.
    for command in (["migrate", "--noinput", "-v0"], ["flush", "--noinput"]):
        subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "manage.py", *command], cwd=ROOT, env=env, check=True)
    stack = subprocess.Popen([str(ROOT / "scripts" / "run.sh")], cwd=ROOT, env=env, start_new_session=True,
                             stdout=open(scratch / "run.log", "wb"), stderr=subprocess.STDOUT)
    return stack, f"http://127.0.0.1:{port}"


def disturb(args, stack, own_redis, stats, import_again):
    """Until the time is up: kill a random worker every --kill-every seconds, restart Redis once half-way,
    and launch the import again whenever it has ended."""
    started = time.monotonic()
    ends = started + args.minutes * 60
    rng, next_kill, restarted = random.Random(7), started + args.kill_every, False
    while time.monotonic() < ends:
        time.sleep(1)
        now = time.monotonic()
        if now >= next_kill:
            running = workers(stack.pid)
            if running:
                victim = rng.choice(sorted(running))
                kill_all([*tree(victim), victim])
                stats.add("worker kills")
            next_kill = now + args.kill_every
        if not restarted and now >= started + args.minutes * 30:
            own_redis.restart(outage=10)
            stats.add("redis restarts")
            restarted = True
        try:
            import_again()
        except Exception:
            stats.add("launch errors (Redis down)")


def figures_after(args, stats, host):
    """What the run left: the anchored figures (lost reviews, storage out of step, stuck runs) and the rest."""
    from django.utils import timezone

    from curation import runs
    from curation.models import Image, Review, Run
    from curation.storage_check import check

    acknowledged = list(stats.acknowledged)
    kept = set(Review.objects.filter(pk__in=acknowledged).values_list("pk", flat=True))
    lost = [pk for pk in acknowledged if pk not in kept]
    report = check(fix=False, min_age=0)
    # Stuck: running without a heartbeat for 30 s, or queued with no job left to start it.
    silent = timezone.now() - timedelta(seconds=30)
    stuck = [run for run in Run.objects.filter(status__in=Run.ACTIVE)
             if (run.status == Run.Status.RUNNING and (run.heartbeat_at or run.created_at) < silent)
             or runs.jobs_lost(run, grace_seconds=60)]
    running_import = Run.objects.filter(kind=Run.Kind.IMPORT, status=Run.Status.RUNNING).first()
    figures = [
        ("minutes", round(args.minutes, 2)),
        ("requests", stats.counts["requests"]),
        ("5xx", stats.counts["5xx"]),
        ("client errors (no answer)", stats.counts["client errors"]),
        ("decisions acknowledged", stats.counts["decisions acknowledged"]),
        ("reviews acknowledged (rows written)", stats.counts["reviews acknowledged"]),
        ("lost reviews", len(lost)),
        ("worker kills", stats.counts["worker kills"]),
        ("redis restarts", stats.counts["redis restarts"]),
        ("import launches", stats.counts["import launches"]),
        ("images stored", Image.objects.count()),
        ("runs failed (worker died / jobs lost)", Run.objects.filter(status=Run.Status.FAILED).count()),
        ("orphan files (no row)", len(report.orphans) + len(report.young)),
        ("rows without files", len(report.missing)),
        ("stuck runs", len(stuck)),
        ("import still running (heartbeat fresh)", int(running_import is not None)),
        # The per-host limit holds across workers (crawl/politeness.py): at most SCENEIMG_FETCH_PER_HOST.
        ("image host: most /slow requests at once", host.peak),
        ("image host: most connections open at once", host.peak_connections),
    ]
    return figures + sorted((name, n) for name, n in stats.counts.items() if name.startswith("client error:"))


def print_figures(figures):
    width = max(len(name) for name, _ in figures)
    for name, value in figures:
        print(f"{name:<{width}}  {value}")
    anchored = {"5xx", "lost reviews", "rows without files", "stuck runs"}
    bad = [name for name, value in figures if name in anchored and value]
    print("anchor: 0 for " + ", ".join(sorted(anchored)) + (f"; over: {', '.join(bad)}" if bad else "; all at 0"))


def main():
    args = parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="sceneimg-soak-"))
    own_redis = OwnRedis(scratch)
    own_redis.start()
    from tests.fakes.image_host import ImageHost

    host = ImageHost("127.0.0.1").__enter__()
    stack, base = start_stack(scratch, own_redis.port, host.server.server_address[1])
    try:
        if not wait_for(lambda: _answers(base) and len(workers(stack.pid)) == 4, timeout=180):
            sys.exit(f"the stack did not start; see {scratch / 'run.log'}")
        import django

        django.setup()
        from django.contrib.auth.models import User

        from crawl import launch
        from curation.models import Run

        for n in range(CLIENTS):
            User.objects.filter(username=f"soak{n}").delete()
            User.objects.create_user(f"soak{n}", password=PASSWORD)
        listing = scratch / "urls.txt"
        listing.write_text("".join(
            host.url(f"/slow/{n}.jpg?s=0.2" if n % 3 == 0 else f"/img/{n}.jpg") + "\n" for n in range(args.urls)))
        stats, stop = Stats(), threading.Event()

        def import_again():
            if not Run.objects.filter(kind=Run.Kind.IMPORT, status__in=Run.ACTIVE).exists():
                launch.launch_import_urls(launch.import_urls_params(str(listing), label="soak", workers=4), None)
                stats.add("import launches")

        import_again()
        reviewers = [Reviewer(n, base, stats, stop) for n in range(CLIENTS)]
        for r in reviewers:
            r.start()
        disturb(args, stack, own_redis, stats, import_again)
        stop.set()
        for r in reviewers:
            r.join(35)
        # Let the maintenance loop reap the runs the kills left (stale after 20 s, checked every 10 s).
        time.sleep(45)
        print_figures(figures_after(args, stats, host))
    finally:
        os.kill(stack.pid, signal.SIGTERM)
        try:
            stack.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill_all([*tree(stack.pid), stack.pid])
        own_redis.proc.kill()
        host.__exit__(None, None, None)
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"scratch folder kept: {scratch}")


def _answers(base):
    try:
        return requests.get(base + "/accounts/login/", timeout=2).status_code == 200
    except requests.RequestException:
        return False


if __name__ == "__main__":
    main()
