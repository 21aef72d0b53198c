"""Computing and storing the dashboard's figures; the page asks for a refresh when they are old."""
import time

import django_rq
from django.conf import settings
from django.utils import timezone
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job

from dashboard import figures
from dashboard.models import Snapshot
from sceneimg_site import queues

JOB_ID = "dashboard-refresh"  # one refresh at a time, however many people open the page
KEEP = 5


def refresh():
    started = time.monotonic()
    data = figures.compute()
    snapshot = Snapshot.objects.create(computed_at=timezone.now(), seconds=time.monotonic() - started, figures=data)
    stale = Snapshot.objects.order_by("-computed_at").values_list("id", flat=True)[KEEP:]
    Snapshot.objects.filter(id__in=list(stale)).delete()
    return snapshot


def latest():
    return Snapshot.objects.order_by("-computed_at").first()


def is_stale(snapshot):
    return snapshot is None or (timezone.now() - snapshot.computed_at).total_seconds() > \
        settings.SCENEIMG_DASHBOARD_MAX_AGE


def request_refresh():
    """Enqueue a refresh unless one is already waiting or running. False when Redis cannot be reached."""
    queue = django_rq.get_queue(queues.DEFAULT)
    try:
        try:
            job = Job.fetch(JOB_ID, connection=queue.connection)
            if job.get_status(refresh=True) in ("queued", "started", "deferred", "scheduled"):
                return True
        except NoSuchJobError:
            pass
        queue.enqueue("dashboard.refresh.refresh", job_id=JOB_ID, result_ttl=0, failure_ttl=3600)
    except RedisError:  # the page still shows the figures it has, and says they may be old
        return False
    return True
