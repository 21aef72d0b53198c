"""Media storage: the local file system by default, or a private S3-compatible bucket (SCENEIMG_S3_BUCKET).

Stored names are content-addressed (images/ab/cd/<sha256>.jpg), so a name always means the same bytes and
"store once" needs no lock: `save_once` writes a name only if it is absent. On S3 that is one conditional
PUT (If-None-Match: *); a second worker storing the same picture at the same moment gets 412 and keeps
the object the first one wrote, so there is one object per name and never a renamed copy. On the file
system the bytes go to a temporary file that is renamed to the name once complete, so no name ever holds
part of a picture, even when the worker writing it is killed. The bucket is private: browsers get an
image through a short-lived presigned URL, or through the app (`delivery_url`).
"""
import os
import tempfile

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage

PARTIAL_PREFIX = ".part-"  # a file being written; a killed writer's is an orphan for check_storage


def save_once(name, data, storage=None):
    """Store `data` under the content-addressed `name` once; an existing object is already right."""
    storage = storage or default_storage
    own = getattr(storage, "save_once", None)
    if own is not None:
        return own(name, data)
    if storage.exists(name):
        return name
    if isinstance(storage, FileSystemStorage):
        _write_whole(storage, storage.path(name), data)
    else:
        saved = storage.save(name, ContentFile(data))
        if saved != name:  # a storage that renames a clashing name: the first file is the same bytes
            storage.delete(saved)
    return name


def _write_whole(storage, path, data):
    """Write a temporary file beside `path`, then rename it to `path`. Django's own save writes in place,
    so a writer killed midway left a truncated picture that every later "store once" kept. Two writers
    of one name rename the same bytes over each other, which leaves the same file."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=folder, prefix=PARTIAL_PREFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            mode = storage.file_permissions_mode
            os.fchmod(out.fileno(), 0o644 if mode is None else mode)  # mkstemp's 0600 would hide it from the web server
        os.replace(partial, path)
    except BaseException:
        os.unlink(partial)
        raise


def is_remote(storage=None):
    """True when media lives in object storage (curation/s3.py), not on this machine's disk."""
    return hasattr(storage or default_storage, "querystring_expire")


def delivery_url(name, *, filename=None, storage=None):
    """A short-lived URL a browser can fetch `name` from directly, or None when the app must serve it
    (the file system, or SCENEIMG_MEDIA_DELIVERY=proxy for an endpoint browsers cannot reach)."""
    storage = storage or default_storage
    if settings.SCENEIMG_MEDIA_DELIVERY == "proxy" or not is_remote(storage):
        return None
    parameters = {"ResponseContentDisposition": f'attachment; filename="{filename}"'} if filename else None
    return storage.url(name, parameters=parameters, expire=settings.SCENEIMG_S3_URL_EXPIRY)
