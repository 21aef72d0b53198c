"""Strict readers for settings that come from the environment (healthchecks.io style)."""
import os

from django.core.exceptions import ImproperlyConfigured


def env_str(name, default=""):
    """The variable's value; an empty value counts as unset."""
    return os.environ.get(name) or default


def env_bool(name, default=False):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name, default):
    return _env_number(name, default, int, "an integer")


def env_float(name, default):
    return _env_number(name, default, float, "a number")


def _env_number(name, default, kind, what):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {what}, not {raw!r}") from None


def env_list(name, default=""):
    raw = os.environ.get(name, default)
    return [part.strip() for part in raw.split(",") if part.strip()]
