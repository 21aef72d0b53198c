"""scripts/run.sh itself: TERM and INT stop every process it started, a worker that dies is started
again, and exports have a worker of their own that crawls cannot hold up."""
import os
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.faults.procs import alive, kill_all, tree, workers
from tests.workers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture
def run_sh(worker_env, tmp_path):
    port = free_port()
    env = {**worker_env, "PORT": str(port), "SCENEIMG_VAR_DIR": str(tmp_path / "var"), "SCENEIMG_SKIP_SETUP": "1",
           "SCENEIMG_STOP_GRACE": "5", "DEBUG": "1"}
    proc = subprocess.Popen([str(ROOT / "scripts" / "run.sh")], cwd=ROOT, env=env, start_new_session=True,
                            stdout=open(tmp_path / "run.log", "wb"), stderr=subprocess.STDOUT)
    seen = {}
    try:
        started = wait_for(lambda: answers(port) and len(workers(proc.pid)) == 4, timeout=90)
        seen.update(tree(proc.pid))
        assert started, (tmp_path / "run.log").read_text()[-3000:]
        yield proc, port, seen, tmp_path
    finally:
        kill_all(list(tree(proc.pid)) + [proc.pid])
        proc.wait(timeout=10)


def stops_everything(proc, port, seen, sig):
    os.kill(proc.pid, sig)  # to the script alone, as systemd or `kill` would send it
    proc.wait(timeout=30)
    assert wait_for(lambda: not any(alive(p) for p in seen), timeout=10), {
        p: cmd for p, cmd in seen.items() if alive(p)}
    assert not answers(port)


def test_workers_per_queue_restarted_when_they_die_and_term_stops_everything(run_sh):
    proc, port, seen, tmp_path = run_sh
    # Exports (and bulk reviews on default) have a worker of their own that a long crawl cannot hold up.
    listening = [[q for q in cmd.split("rqworker", 1)[1].split() if not q.startswith("-")]
                 for cmd in workers(proc.pid).values()]
    assert sorted(map(sorted, listening)) == [["crawl"], ["default", "export"], ["score"], ["vlm"]]

    # The periodic maintenance ran once at the start: dead runs reaped, expired seed uploads removed.
    log = tmp_path / "var" / "worker-maintenance.log"
    assert wait_for(lambda: log.exists() and "seed file(s)" in log.read_text(), timeout=60)
    assert "marked 0 run(s) failed" in log.read_text()

    (victim, _), = [(p, c) for p, c in workers(proc.pid).items() if " vlm" in c]
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: any(" vlm" in c and p != victim for p, c in workers(proc.pid).items()), timeout=20)
    assert "starting it again" in (tmp_path / "var" / "worker-vlm.log").read_text()
    seen.update(tree(proc.pid))

    stops_everything(proc, port, seen, signal.SIGTERM)
    assert proc.returncode == 0


def test_int_stops_everything(run_sh):
    stops_everything(*run_sh[:3], signal.SIGINT)
