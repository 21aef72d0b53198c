"""A database connection killed under the app (Postgres restart, failover, idle timeout in a pooler)
costs nothing but a reconnect: the next request succeeds."""
import psycopg
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.test import RequestFactory

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="terminates a Postgres backend")


def _terminate(pid):
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params["dbname"] = "postgres"
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def _get(path, cookie):
    """Through the real WSGI handler, which (unlike the test client) runs close_old_connections at the
    start and end of the request, as a deployed server does."""
    environ = RequestFactory()._base_environ(PATH_INFO=path, HTTP_COOKIE=cookie, SERVER_NAME="localhost")
    status = []
    body = b"".join(WSGIHandler()(environ, lambda s, h, *a: status.append(s)))
    return int(status[0].split()[0]), body


@pytest.mark.django_db(transaction=True)
def test_request_after_the_connection_was_terminated(client, django_user_model, settings):
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] > 0  # persistent connections: the case at risk
    settings.ALLOWED_HOSTS = ["localhost"]  # the requests below name it, whatever DEBUG says
    client.force_login(django_user_model.objects.create_user("rev", password="pw-rev-12345678"))
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    assert _get("/", cookie)[0] == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    _terminate(pid)
    status, body = _get("/", cookie)
    assert status == 200, body[:500]
