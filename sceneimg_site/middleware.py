"""Request checks that hold for every view, before any view code runs."""
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.shortcuts import resolve_url
from django.urls import reverse


class RequestTooLarge(RequestDataTooBig):
    """More body than the cap was read (Django answers 400)."""


class CountingStream:
    """A request body stream that refuses to be read past `limit` bytes, whatever Content-Length said."""

    def __init__(self, stream, limit):
        self.stream, self.limit, self.seen = stream, limit, 0

    def _count(self, data):
        self.seen += len(data)
        if self.seen > self.limit:
            raise RequestTooLarge(f"request body over the {self.limit}-byte limit")
        return data

    def read(self, size=-1):
        # Ask for one byte more than is left, so a body over the cap is noticed, never swallowed.
        left = self.limit - self.seen + 1
        return self._count(self.stream.read(left if size is None or size < 0 else min(size, left)))

    def close(self):
        self.stream.close()

    def readline(self, size=-1):
        left = self.limit - self.seen + 1
        return self._count(self.stream.readline(left if size is None or size < 0 else min(size, left)))


def _sign_in_paths():
    return {resolve_url(settings.LOGIN_URL), reverse("admin:login")}


class UploadLimitMiddleware:
    """Caps request bodies before a byte of them is read, and refuses uploads from anonymous clients.

    Runs after AuthenticationMiddleware and before any view, so neither CSRF's form parsing nor a view
    spools a body that is too large, or any file that someone who has not signed in sends.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        refused = self.refuse(request)
        return refused if refused is not None else self.get_response(request)

    def refuse(self, request):
        raw = request.META.get("CONTENT_LENGTH") or "0"
        if not (raw.isascii() and raw.isdigit()):
            return HttpResponseBadRequest("Content-Length: not a number", content_type="text/plain")
        declared = int(raw)
        if not declared and request.method in ("GET", "HEAD", "OPTIONS"):
            return None
        if request.user.is_authenticated:
            limit = settings.SCENEIMG_MAX_REQUEST_BYTES
        else:
            # The sign-in forms take no file, but some clients send every form as multipart; the small
            # anonymous cap keeps whatever they carry in memory and tiny.
            if request.content_type == "multipart/form-data" and request.path not in _sign_in_paths():
                return HttpResponseForbidden("Sign in before uploading files.", content_type="text/plain")
            limit = settings.SCENEIMG_MAX_ANONYMOUS_REQUEST_BYTES
        if declared > limit:
            return HttpResponse(f"Request body of {declared} bytes is over the {limit}-byte limit.",
                                status=413, content_type="text/plain")
        request._stream = CountingStream(request._stream, limit)
        return None


def nul_parameter(params):
    """The name of the first parameter whose name or value holds a NUL character, or None.

    Postgres refuses NUL in text, so such a value would reach the ORM only to fail with a 500.
    """
    for name, items in params.lists():
        if "\x00" in name:
            return name.replace("\x00", "\\x00")
        for value in items:
            if isinstance(value, str) and "\x00" in value:
                return name
    return None


class RejectNulMiddleware:
    """A NUL in the querystring or a form field is a 400 that names the parameter.

    The check runs in process_view, after the body-size and sign-in checks of UploadLimitMiddleware,
    so reading the form here never parses an upload that those would have refused.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        name = nul_parameter(request.GET)
        if name is None and request.method == "POST":
            name = nul_parameter(request.POST)
        if name is not None:
            return HttpResponseBadRequest(f"{name}: contains a NUL character, which is not allowed",
                                          content_type="text/plain")
        return None
