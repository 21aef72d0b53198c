"""Sign-in throttling, per account and per client address.

Failures are counted in a shared cache (Redis, so every web process sees the same counts). Once an
account or an address reaches its limit, sign-ins are refused without checking the password until
SCENEIMG_LOGIN_LOCKOUT_SECONDS have passed since its last failure. It is an authentication backend,
so the site's login page and the admin's are covered alike.
"""
import hashlib
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.core.cache import caches
from django.core.exceptions import PermissionDenied

log = logging.getLogger(__name__)

CACHE = "throttle"


def client_address(request):
    """The client's address: REMOTE_ADDR, or the header a trusted proxy sets (SCENEIMG_CLIENT_IP_HEADER).
    Behind a proxy REMOTE_ADDR is the proxy, and one address for everybody would lock everybody out."""
    header = settings.SCENEIMG_CLIENT_IP_HEADER
    if header:
        value = request.headers.get(header, "")
        # X-Forwarded-For lists every hop; the last one was added by our own proxy.
        value = value.split(",")[-1].strip()
        if value:
            return value
    return request.META.get("REMOTE_ADDR", "")


def _keys(request, username):
    keys = []
    if username:
        digest = hashlib.sha256(str(username).casefold().encode()).hexdigest()
        keys.append((f"account:{digest}", settings.SCENEIMG_LOGIN_FAILURES_PER_ACCOUNT))
    if request is not None:
        keys.append((f"address:{client_address(request)}", settings.SCENEIMG_LOGIN_FAILURES_PER_ADDRESS))
    return keys


def locked(request, username):
    """True while the account or the address has used up its failures."""
    cache = caches[CACHE]
    try:
        counts = cache.get_many([key for key, _ in _keys(request, username)])
    except Exception:
        # Refusing every sign-in while the cache is down would lock everyone out; say so instead.
        log.warning("login throttle unavailable: sign-ins are not throttled", exc_info=True)
        return False
    return any(counts.get(key, 0) >= limit for key, limit in _keys(request, username))


def failed(request, username):
    cache = caches[CACHE]
    timeout = settings.SCENEIMG_LOGIN_LOCKOUT_SECONDS
    try:
        for key, _ in _keys(request, username):
            cache.add(key, 0, timeout)
            cache.incr(key)
            cache.touch(key, timeout)  # the lockout runs from the last failure
    except Exception:
        log.warning("login throttle unavailable: failure not counted", exc_info=True)


def succeeded(request, username):
    """A right password clears its account's failures; the address keeps its count, or one valid
    account would let an address reset its own limit between guesses at others."""
    try:
        caches[CACHE].delete_many([key for key, _ in _keys(None, username)])
    except Exception:
        log.warning("login throttle unavailable", exc_info=True)


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(User.USERNAME_FIELD)
        if locked(request, username):
            if request is not None:
                request.login_throttled = True
            raise PermissionDenied("too many failed sign-ins")  # authenticate() stops at this
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            failed(request, username)
        else:
            succeeded(request, username)
        return user


class LoginView(auth_views.LoginView):
    """The login page; a throttled attempt is answered 429 with a message that says why."""

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if getattr(self.request, "login_throttled", False):
            minutes = max(1, round(settings.SCENEIMG_LOGIN_LOCKOUT_SECONDS / 60))
            # Not a form error: the login template words every form error as a wrong password.
            form.errors.clear()
            messages.error(self.request, f"Too many failed sign-ins. Try again in {minutes} minute"
                                         f"{'s' if minutes != 1 else ''}.")
            response = self.render_to_response(self.get_context_data(form=form), status=429)
        return response
