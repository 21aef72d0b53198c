"""Request checks that hold for every view, before any view code runs."""
from django.http import HttpResponseBadRequest


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
