"""Storage and Image rows out of step: files no row names, rows whose files are gone.

Ingest writes an image's file and thumbnail before its row, so a worker killed in between leaves
files without a row (harmless but wasted); a row without its file comes from storage lost or edited
by hand, and shows as a broken card. Used by `manage.py check_storage` and bench/soak.py.
"""
from dataclasses import dataclass, field
from datetime import timedelta
from datetime import timezone as dt_timezone

from django.core.files.storage import default_storage
from django.utils import timezone

from curation.models import Image

FOLDERS = ("images", "thumbs")


@dataclass
class Report:
    orphans: list = field(default_factory=list)  # storage names no row names
    young: list = field(default_factory=list)  # orphans younger than min_age: maybe being written now
    missing: list = field(default_factory=list)  # (image id, [names of its missing files])
    removed: list = field(default_factory=list)

    @property
    def consistent(self):
        return not (self.orphans or self.missing)


def stored_names(folder):
    """Every file name under `folder` in the default storage, recursively."""
    if not default_storage.exists(folder):
        return
    todo = [folder]
    while todo:
        current = todo.pop()
        subfolders, files = default_storage.listdir(current)
        todo.extend(f"{current}/{sub}" for sub in subfolders)
        for name in files:
            yield f"{current}/{name}"


def _modified(name):
    moment = default_storage.get_modified_time(name)
    return moment.replace(tzinfo=dt_timezone.utc) if timezone.is_naive(moment) else moment


def check(*, fix=False, min_age=3600):
    """Compare storage with the rows. With `fix`, remove files no row names that are older than
    `min_age` seconds (a younger one may belong to an ingest that has not written its row yet).

    Holds every stored name and every row's names in memory: about 250 bytes an image.
    """
    report = Report()
    # Rows first, then the listing: ingest writes files before the row, so every row read here has its
    # files in the listing unless they are really gone. (The other order reports an image stored in
    # between as a row without files.)
    rows = list(Image.objects.values_list("pk", "file", "thumbnail").iterator(chunk_size=5000))
    stored = set()
    for folder in FOLDERS:
        stored.update(stored_names(folder))
    named = set()
    for pk, file_name, thumb_name in rows:
        gone = [n for n in (file_name, thumb_name) if n and n not in stored]
        if gone:
            report.missing.append((pk, gone))
        named.update(n for n in (file_name, thumb_name) if n)
    cutoff = timezone.now() - timedelta(seconds=min_age)
    for name in sorted(stored - named):
        try:
            old = _modified(name) < cutoff
        except FileNotFoundError:
            continue  # removed since the listing
        if not old:
            report.young.append(name)
            continue
        report.orphans.append(name)
        # Its row may have been written since the listing: look once more right before removing.
        if fix and not Image.objects.filter(file=name).exists() and not Image.objects.filter(thumbnail=name).exists():
            default_storage.delete(name)
            report.removed.append(name)
    return report
