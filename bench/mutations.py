"""Mutation check: does some test fail when the code it guards is broken? Not part of CI (minutes).

Each mutant is one minimal edit to the app code (file, old text, new text) and the tests that should
catch it. The repository is copied to a temporary folder; each edit is applied there, one at a time
(never to this checkout), and the named tests run on SQLite with -x. A mutant is "caught" when a test
fails, "SURVIVED" when they all pass: a promise no test holds.

    .venv/bin/python bench/mutations.py              every mutant
    .venv/bin/python bench/mutations.py fetcher ssrf those whose name contains one of the words
    .venv/bin/python bench/mutations.py --list

Before the mutants, each group of named tests runs unmutated (a failure is tried once more): if they
fail there, no verdict means anything. Run it on an otherwise quiet machine: a timing test failing
under load would count as a catch.
Exit status: 0 all caught; 1 some survived; 2 an old text is not exactly once in its file (the code
moved: update the mutant here), or the unmutated tests fail.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = (".venv", ".git", "__pycache__", "var", "media", "test-artifacts", "staticfiles", "*.egg-info",
        ".pytest_cache", "node_modules")


@dataclass
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple


MUTANTS = [
    # Near-duplicate groups
    Mutant("neardup-incremental-ignores-whole-groups", "curation/neardup.py",
           "qs = Image.objects.filter(id__in=near) | Image.objects.filter(dup_group_id__in=group_ids)",
           "qs = Image.objects.filter(id__in=near)",
           ("tests/curation/test_neardup.py",)),
    Mutant("neardup-person-keep-overridden", "curation/neardup.py",
           "if human == Decision.KEEP or (stage == AutoStage.NEAR_DUPLICATE and reason == want):",
           "if stage == AutoStage.NEAR_DUPLICATE and reason == want:",
           ("tests/curation/test_neardup.py",)),
    # The fetcher
    Mutant("fetcher-ssrf-checks-first-address-only", "crawl/fetcher.py",
           "    for *_, sockaddr in infos:\n        check_address(",
           "    for *_, sockaddr in infos[:1]:\n        check_address(",
           ("tests/crawl/test_fetcher.py",)),
    Mutant("fetcher-trusts-environment-proxies", "crawl/fetcher.py",
           "self.session.trust_env = False", "self.session.trust_env = True",
           ("tests/crawl/test_fetcher.py",)),
    Mutant("fetcher-no-per-host-limit", "crawl/fetcher.py",
           "limiter = _HostLimiter.get(host, self.per_host)", "limiter = threading.BoundedSemaphore(1000)",
           ("tests/crawl/test_fetcher.py",)),
    Mutant("fetcher-retry-after-uncapped", "crawl/fetcher.py",
           "MAX_RETRY_AFTER = 60.0", "MAX_RETRY_AFTER = 86400.0 * 365 * 100",
           ("tests/crawl/test_fetcher.py",)),
    Mutant("fetcher-size-cap-while-streaming-off", "crawl/fetcher.py",
           "if size > max_bytes:", "if size > max_bytes * 1000:",
           ("tests/crawl/test_fetcher.py",)),
    Mutant("fetcher-one-retry-too-many", "crawl/fetcher.py",
           "if resp.status_code not in RETRY_STATUSES or attempt >= self.retries:",
           "if resp.status_code not in RETRY_STATUSES or attempt > self.retries:",
           ("tests/crawl/test_fetcher.py",)),
    Mutant("fetcher-ipv4-mapped-ipv6-not-unwrapped", "crawl/addresses.py",
           "if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:",
           "if False:",
           ("tests/crawl/test_fetcher.py",)),
    # Ingest
    Mutant("ingest-pillow-bomb-warning-ignored", "crawl/ingest.py",
           'warnings.simplefilter("error", PILImage.DecompressionBombWarning)',
           'warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)',
           ("tests/crawl/test_ingest.py",)),
    Mutant("ingest-no-own-pixel-limit", "crawl/ingest.py",
           "if width <= 0 or height <= 0 or width * height > max_pixels:",
           "if width <= 0 or height <= 0:",
           ("tests/crawl/test_ingest.py",)),
    Mutant("ingest-pixel-limit-after-decoding", "crawl/ingest.py",
           "            width, height = im.size\n",
           "            im.load()\n            width, height = im.size\n",
           ("tests/crawl/test_ingest.py",)),
    Mutant("ingest-markup-kept-in-original-bytes", "crawl/ingest.py",
           "    if MARKUP.search(data):\n        return False\n", "",
           ("tests/crawl/test_ingest.py",)),
    Mutant("ingest-exif-orientation-ignored", "crawl/ingest.py",
           "if orientation not in (1, None):", "if False:",
           ("tests/crawl/test_ingest.py",)),
    Mutant("ingest-known-url-fetched-again", "crawl/ingest.py",
           "    if skip_known:\n", "    if False:\n",
           ("tests/crawl/test_importers.py", "tests/crawl/test_baidu_crawl.py")),
    # Runs
    Mutant("runs-queue-timeout-not-applied", "curation/runs.py",
           "q = django_rq.get_queue(queue)", "q = django_rq.get_queue(queue, default_timeout=-1)",
           ("tests/curation/test_runs.py",)),
    Mutant("runs-failure-callback-dropped", "curation/runs.py",
           "on_failure=Callback(job_failed), ", "",
           ("tests/curation/test_runs.py",)),
    # Review
    Mutant("review-undo-overwrites-later-decisions", "curation/review.py",
           "written = _apply(targets, user, notes, expected=expected)",
           "written = _apply(targets, user, notes)",
           ("tests/ui/test_review.py",)),
    Mutant("review-clear-forgets-the-automatic-decision", "curation/review.py",
           'update(human_decision=None, final_decision=F("auto_decision"))',
           "update(human_decision=None, final_decision=None)",
           ("tests/ui/test_review.py",)),
    # Export
    Mutant("export-stops-after-first-chunk", "curation/export.py",
           '        yield list(Image.objects.filter(pk__in=ids).order_by("pk").prefetch_related(*prefetch))\n',
           '        yield list(Image.objects.filter(pk__in=ids).order_by("pk").prefetch_related(*prefetch))\n'
           "        return\n",
           ("tests/curation/test_export_chunks.py",)),
    Mutant("export-minus-formulas-not-defused", "curation/export.py",
           r'_FORMULA = re.compile(r"^[=+\-@\t\r]")', r'_FORMULA = re.compile(r"^[=+@\t\r]")',
           ("tests/ui/test_export.py",)),
    # Baidu protocol
    Mutant("baidu-cipher-two-characters-swapped", "crawl/baidu_protocol.py",
           '_CIPHER_OUT = "7dgjmoru140852vsnkheb963wtqplifca"', '_CIPHER_OUT = "d7gjmoru140852vsnkheb963wtqplifca"',
           ("tests/crawl/test_baidu_protocol.py",)),
    Mutant("baidu-plain-urls-decoded-too", "crawl/baidu_protocol.py",
           'return value.startswith("ippr") or any(token in value for token, _ in _TOKENS)', "return True",
           ("tests/crawl/test_baidu_protocol.py",)),
    # VLM verdicts
    Mutant("normalise-score-not-clamped", "vlm/normalise.py",
           "score = min(1.0, max(0.0, score))", "score = score",
           ("tests/vlm/test_normalise.py", "tests/vlm/test_fakes.py")),
    Mutant("normalise-reason-not-cut", "vlm/normalise.py",
           "reason = _clean(reason)[:REASON_MAX] if reason else \"\"", "reason = _clean(reason) if reason else \"\"",
           ("tests/vlm/test_normalise.py", "tests/vlm/test_fakes.py")),
    Mutant("normalise-nul-kept", "vlm/normalise.py",
           'return " ".join(str(value).replace("\\x00", "").split())', 'return " ".join(str(value).split())',
           ("tests/vlm/test_normalise.py", "tests/vlm/test_judge.py")),
    Mutant("normalise-decision-case-sensitive", "vlm/normalise.py",
           'decision = str(raw_decision or "").strip().lower()',
           'decision = str(raw_decision or "").strip()',
           ("tests/vlm/test_normalise.py",)),
]


def copy_repo(dest):
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*SKIP))


def test_env(copy, redis_url):
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": str(copy),  # the copy's apps, not the editable install of this checkout
        "DATABASE_URL": "",  # SQLite, a file of our own
        "SCENEIMG_TEST_DB": str(copy / "mutations-test.sqlite3"),
        "SCENEIMG_VAR_DIR": str(copy / "var"),
        "REDIS_URL": redis_url,
    })
    return env


def check_imports_the_copy(copy, env):
    out = subprocess.run([sys.executable, "-c", "import crawl.fetcher; print(crawl.fetcher.__file__)"],
                         cwd=copy, env=env, capture_output=True, text=True)
    if not out.stdout.strip().startswith(str(copy)):
        sys.exit(f"python would import {out.stdout.strip() or out.stderr.strip()!r}, not the copy in {copy}")


def run_tests(copy, env, tests, timeout):
    """(passed, first failing test or reason, seconds)."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not browser", *tests]
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout} s", time.monotonic() - started
    seconds = time.monotonic() - started
    if proc.returncode == 0:
        return True, "", seconds
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, re.M)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["(no output)"]
    return False, failed[0] if failed else tail[0], seconds


def apply(copy, mutant):
    """Apply the edit in the copy; returns the original text, or None when the old text is not there once."""
    path = copy / mutant.path
    original = path.read_text(encoding="utf-8")
    if original.count(mutant.old) != 1:
        return None
    path.write_text(original.replace(mutant.old, mutant.new), encoding="utf-8")
    return original


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("words", nargs="*", help="run only mutants whose name contains one of these")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the tests")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per test run (default 900)")
    parser.add_argument("--redis-url", default=os.environ.get("MUTATIONS_REDIS_URL", "redis://127.0.0.1:6379/12"),
                        help="a Redis database no one else uses: the tests flush it (default db 12; MUTATIONS_REDIS_URL)")
    return parser.parse_args()


def main():
    args = parse_args()
    chosen = [m for m in MUTANTS if not args.words or any(w in m.name for w in args.words)]
    if args.list or not chosen:
        for m in chosen or MUTANTS:
            print(f"{m.name:48} {m.path:26} {' '.join(m.tests)}")
        return 0 if chosen else 2
    with tempfile.TemporaryDirectory(prefix="sceneimg-mutations-") as tmp:
        copy = Path(tmp) / "repo"
        copy_repo(copy)
        env = test_env(copy, args.redis_url)
        check_imports_the_copy(copy, env)
        if not args.no_baseline and not baseline(copy, env, chosen, args.timeout):
            print("the tests fail without any mutation: fix that first", file=sys.stderr)
            return 2
        results = [run_one(copy, env, m, args.timeout) for m in chosen]
    return report(results)


def baseline(copy, env, chosen, timeout):
    """Every mutant's tests pass unmutated; a failure is tried once more (a timing test on a busy machine)."""
    ok_all = True
    for tests in sorted({m.tests for m in chosen}):
        for attempt in (1, 2):
            ok, why, seconds = run_tests(copy, env, tests, timeout)
            state = "pass" if ok else f"FAIL: {why}"
            print(f"unmutated {' '.join(tests)}: {state} ({seconds:.0f} s){' (try 2)' if attempt == 2 else ''}",
                  flush=True)
            if ok:
                break
        ok_all = ok_all and ok
    return ok_all


def run_one(copy, env, mutant, timeout):
    original = apply(copy, mutant)
    if original is None:
        print(f"{mutant.name:48} OLD TEXT NOT FOUND exactly once in {mutant.path}: {mutant.old!r}", flush=True)
        return mutant, "missing", ""
    try:
        passed, why, seconds = run_tests(copy, env, mutant.tests, timeout)
    finally:
        (copy / mutant.path).write_text(original, encoding="utf-8")
    verdict = "SURVIVED" if passed else "caught"
    print(f"{mutant.name:48} {verdict:8} {seconds:5.0f} s  {why}", flush=True)
    return mutant, verdict, why


def report(results):
    survived = [m.name for m, verdict, _ in results if verdict == "SURVIVED"]
    missing = [m.name for m, verdict, _ in results if verdict == "missing"]
    caught = len(results) - len(survived) - len(missing)
    print(f"\n{len(results)} mutants: {caught} caught, {len(survived)} survived, {len(missing)} not applied")
    for name in survived:
        print(f"  SURVIVED (no test caught it): {name}")
    for name in missing:
        print(f"  NOT APPLIED (old text moved; update bench/mutations.py): {name}")
    if missing:
        return 2
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
