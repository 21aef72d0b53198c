"""The S3 backend (SCENEIMG_S3_BUCKET): django-storages' S3Storage, private, with a race-free `save_once`.

Loaded only when settings name it, so processes on the file system never import boto3.
"""
import threading

from botocore.config import Config
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.files.base import ContentFile
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

# 412: the name exists (our condition failed). 409: another conditional write to it was in flight,
# which may still fail, so that one is checked.
_EXISTS = {"PreconditionFailed", "412"}
_IN_FLIGHT = {"ConditionalRequestConflict", "409"}

_SESSIONS = {}  # boto3 sessions by credentials, shared by every storage instance and thread of the process
_SESSION_LOCK = threading.Lock()


def s3_options():
    """S3Storage's options from SCENEIMG_S3_* settings (see docs/deployment.md)."""
    endpoint = settings.SCENEIMG_S3_ENDPOINT_URL or None
    style = settings.SCENEIMG_S3_ADDRESSING_STYLE or ("path" if endpoint else "virtual")
    return {
        "bucket_name": settings.SCENEIMG_S3_BUCKET,
        "endpoint_url": endpoint,
        "region_name": settings.SCENEIMG_S3_REGION or None,
        "access_key": settings.SCENEIMG_S3_ACCESS_KEY or None,
        "secret_key": settings.SCENEIMG_S3_SECRET_KEY or None,
        "location": settings.SCENEIMG_S3_PREFIX.strip("/"),
        "default_acl": None,  # the bucket's own policy: private
        "querystring_auth": True,
        "querystring_expire": settings.SCENEIMG_S3_URL_EXPIRY,
        # Names are content-addressed: the same name is the same bytes, never a renamed second copy.
        "file_overwrite": True,
        "client_config": Config(
            signature_version="s3v4", s3={"addressing_style": style},
            connect_timeout=settings.SCENEIMG_S3_TIMEOUT, read_timeout=settings.SCENEIMG_S3_TIMEOUT,
            retries={"max_attempts": 4, "mode": "standard"},
        ),
    }


class PrivateS3Storage(S3Storage):
    """S3Storage configured from SCENEIMG_S3_* settings, with a race-free `save_once`."""

    def __init__(self, **overrides):
        super().__init__(**{**s3_options(), **overrides})

    @property
    def connection(self):
        # S3Storage gives each thread its own boto3 session and resource, and each new session loads
        # botocore's service models from disk again: a second or more of CPU per thread, paid by each
        # import batch's 16 threads (which also race to create default_storage itself, one instance
        # each). Threads still get their own resource (they are not thread-safe), made one at a time
        # from one session per set of credentials in this process.
        if getattr(self._connections, "connection", None) is None:
            with _SESSION_LOCK:
                return super().connection
        return self._connections.connection

    def _create_session(self):
        key = (self.session_profile, self.access_key, self.secret_key, self.security_token)
        if key not in _SESSIONS:
            _SESSIONS[key] = super()._create_session()
        return _SESSIONS[key]

    def save_once(self, name, data):
        """Write `data` at `name` unless an object is already there; returns `name` either way."""
        key = self._normalize_name(clean_name(name))
        params = self._get_write_parameters(key, ContentFile(data, name=name))
        try:
            self.connection.meta.client.put_object(
                Bucket=self.bucket_name, Key=key, Body=data, IfNoneMatch="*", **params)
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            status = str(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in _EXISTS or status in _EXISTS:
                return name
            if code not in _IN_FLIGHT and status not in _IN_FLIGHT:
                raise
            if not self.exists(name):  # the conflicting write failed: ours must land
                self.connection.meta.client.put_object(Bucket=self.bucket_name, Key=key, Body=data, **params)
        return name
