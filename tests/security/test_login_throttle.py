"""Sign-in is throttled per account and per client address: password guessing stops after a few
failures, for a while, on the site's login page and the admin's alike."""
import time

import pytest
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def limits(settings, redis_conn):
    settings.SCENEIMG_LOGIN_FAILURES_PER_ACCOUNT = 3
    settings.SCENEIMG_LOGIN_FAILURES_PER_ADDRESS = 6
    settings.SCENEIMG_LOGIN_LOCKOUT_SECONDS = 60


@pytest.fixture
def rita(db):
    return User.objects.create_user("rita", password="pw-rita-12345678", is_staff=True)


def sign_in(client, username, password, addr="10.1.1.1", url="/accounts/login/"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=addr)


def signed_in(client):
    return "_auth_user_id" in client.session


def test_right_password_refused_after_too_many_failures_on_the_account(client, rita):
    for _ in range(3):
        assert sign_in(client, "rita", "wrong").status_code == 200
    response = sign_in(client, "rita", "pw-rita-12345678", addr="10.9.9.9")  # another address: still locked
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert not signed_in(client)


def test_username_case_does_not_escape_the_account_limit(client, rita):
    for name in ("rita", "RITA", "Rita"):
        sign_in(client, name, "wrong")
    assert sign_in(client, "rita", "pw-rita-12345678").status_code == 429


def test_failures_below_the_limit_then_success_resets_the_account(client, rita):
    for _ in range(2):
        sign_in(client, "rita", "wrong")
    assert sign_in(client, "rita", "pw-rita-12345678").status_code == 302 and signed_in(client)
    client.logout()
    for _ in range(2):
        sign_in(client, "rita", "wrong")
    assert sign_in(client, "rita", "pw-rita-12345678").status_code == 302


def test_one_address_spraying_many_accounts_is_stopped(client, rita):
    for n in range(6):
        sign_in(client, f"nobody{n}", "guess", addr="10.6.6.6")
    assert sign_in(client, "rita", "pw-rita-12345678", addr="10.6.6.6").status_code == 429
    assert not signed_in(client)
    # Another address is not punished for it.
    assert sign_in(client, "rita", "pw-rita-12345678", addr="10.7.7.7").status_code == 302


def test_admin_login_shares_the_limit(client, rita):
    for _ in range(3):
        sign_in(client, "rita", "wrong", url="/admin/login/")
    sign_in(client, "rita", "pw-rita-12345678", url="/admin/login/")
    assert not signed_in(client)


def test_lockout_ends(client, rita, settings):
    settings.SCENEIMG_LOGIN_LOCKOUT_SECONDS = 1
    for _ in range(3):
        sign_in(client, "rita", "wrong")
    assert sign_in(client, "rita", "pw-rita-12345678").status_code == 429
    time.sleep(2.1)
    assert sign_in(client, "rita", "pw-rita-12345678").status_code == 302


def test_client_address_header_behind_a_proxy(client, rita, settings):
    settings.SCENEIMG_CLIENT_IP_HEADER = "X-Real-IP"
    for n in range(6):
        client.post("/accounts/login/", {"username": f"x{n}", "password": "g"},
                    REMOTE_ADDR="10.0.0.2", HTTP_X_REAL_IP="203.0.113.5")
    ok = client.post("/accounts/login/", {"username": "rita", "password": "pw-rita-12345678"},
                     REMOTE_ADDR="10.0.0.2", HTTP_X_REAL_IP="203.0.113.6")
    assert ok.status_code == 302  # same proxy, another client


def test_sign_in_still_works_when_the_throttle_cache_is_down(client, rita, settings):
    settings.CACHES = {**settings.CACHES, "throttle": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}}}
    assert sign_in(client, "rita", "wrong").status_code == 200
    assert sign_in(client, "rita", "pw-rita-12345678").status_code == 302
