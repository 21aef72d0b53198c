"""A Redis outage of a dozen seconds does not stop the workers for good: scripts/run.sh starts them
again, and a run whose jobs were waiting in Redis finishes once it is back."""
import shutil
import subprocess
import time

import django_rq
import pytest
import redis
from django_rq.queues import DjangoRQ

from curation import runs
from curation.models import Run
from sceneimg_site import queues
from tests.curation import slow_jobs
from tests.faults.procs import kill_all, tree, workers
from tests.faults.test_run_script import ROOT, answers, free_port
from tests.workers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 12


class OwnRedis:
    """A redis-server of this test's own on a free loopback port, that keeps its data across a restart."""

    def __init__(self, folder):
        self.port, self.folder, self.proc = free_port(), folder, None

    def start(self):
        binary = shutil.which("redis-server")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                                      "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(self.ping, timeout=10)

    def stop(self):
        try:
            self.client().shutdown(save=True)  # what a restart of a persistent Redis keeps
        except redis.ConnectionError:
            pass  # it went while answering, as SHUTDOWN does
        self.proc.wait(timeout=10)

    def client(self):
        return redis.Redis(port=self.port, socket_timeout=2)

    def ping(self):
        try:
            return self.client().ping()
        except redis.ConnectionError:
            return False

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")
def test_a_run_finishes_across_a_redis_restart(worker_env, tmp_path, monkeypatch):
    own = OwnRedis(tmp_path)
    own.start()
    port = free_port()
    env = {**worker_env, "REDIS_URL": own.url, "PORT": str(port), "SCENEIMG_VAR_DIR": str(tmp_path / "var"),
           "SCENEIMG_SKIP_SETUP": "1", "SCENEIMG_STOP_GRACE": "5", "DEBUG": "1"}
    proc = subprocess.Popen([str(ROOT / "scripts" / "run.sh")], cwd=ROOT, env=env, start_new_session=True,
                            stdout=open(tmp_path / "run.log", "wb"), stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: answers(port) and len(workers(proc.pid)) == 4, timeout=90), \
            (tmp_path / "run.log").read_text()[-3000:]
        # Two jobs on one worker's queue: the first runs into the outage, the second waits in Redis.
        monkeypatch.setattr(django_rq, "get_queue",
                            lambda name, **kw: DjangoRQ(name, connection=own.client(), default_timeout=600))
        run = runs.launch(Run.Kind.DEDUP, slow_jobs.sleep_job, {"outage": True}, queue=queues.DEFAULT,
                          batches=[("a", {"seconds": 3}), ("b", {"seconds": 3})])
        assert wait_for(lambda: Run.objects.get(pk=run.pk).status == "running", timeout=60)
        own.stop()
        time.sleep(OUTAGE_SECONDS)
        own.start()
        assert wait_for(lambda: Run.objects.get(pk=run.pk).status != "running", timeout=150), \
            (tmp_path / "var" / "worker-export.log").read_text()[-3000:]
        run.refresh_from_db()
        assert run.status == "done", run.error
        assert run.jobs_done == 2
        # The worker gave up on Redis during the outage; run.sh started it again.
        assert "starting it again" in (tmp_path / "var" / "worker-export.log").read_text()
    finally:
        kill_all(list(tree(proc.pid)) + [proc.pid])
        proc.wait(timeout=10)
        own.proc.kill()
