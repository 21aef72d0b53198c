"""How an export lies on disk: imagefolder (zip or folder), webdataset tar shards, a parquet of the metadata.

Every writer is deterministic: the same entries in the same order give the same bytes. Entries carry
the snapshot's time, fixed permissions and no owner, never the time of writing, so a snapshot exported
again a year later is identical. Each writer keeps a sha256 per file it wrote, for the manifest.
"""
import hashlib
import io
import os
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

COPY_BUFFER = 1024 * 1024
FILE_MODE = 0o644
SHARD_NAME = "sceneimg-{:06d}.tar"
PARQUET_BATCH = 10_000


@dataclass(frozen=True)
class Written:
    name: str
    size: int
    sha256: str

    def as_dict(self):
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


def _copy_hashing(src, write):
    digest, size = hashlib.sha256(), 0
    while chunk := src.read(COPY_BUFFER):
        digest.update(chunk)
        write(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def sha256_of(path):
    with open(path, "rb") as fh:
        return _copy_hashing(fh, lambda chunk: None)


class ZipWriter:
    """A ZIP_STORED archive (JPEG and PNG do not compress further), complete only once renamed from .part."""

    def __init__(self, path, when):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".part")
        # A zip stores times in two-second steps; say so here rather than leave zipfile to round.
        self.date_time = (*when.timetuple()[:5], when.second - when.second % 2)
        self.files = []
        self.zf = zipfile.ZipFile(self.partial, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def add_stream(self, name, src, size):
        info = zipfile.ZipInfo(name, date_time=self.date_time)
        info.compress_type = zipfile.ZIP_STORED
        info.create_system = 3  # Unix, whatever the platform that writes it
        info.external_attr = (0o100000 | FILE_MODE) << 16
        info.file_size = size
        with self.zf.open(info, "w", force_zip64=size > zipfile.ZIP64_LIMIT) as dst:
            written, digest = _copy_hashing(src, dst.write)
        self.files.append(Written(name, written, digest))

    def add_file(self, name, path):
        with open(path, "rb") as src:
            self.add_stream(name, src, os.path.getsize(path))

    def add_bytes(self, name, data):
        self.add_stream(name, io.BytesIO(data), len(data))

    def close(self):
        self.zf.close()
        os.replace(self.partial, self.path)

    def abort(self):
        self.zf.close()
        self.partial.unlink(missing_ok=True)


class FolderWriter:
    """Files under a folder, with the snapshot's time as their modification time."""

    def __init__(self, root, when):
        self.root = Path(root)
        self.mtime = when.timestamp()
        self.files = []
        self.root.mkdir(parents=True, exist_ok=True)

    def add_stream(self, name, src, size=None):
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as dst:
            written, digest = _copy_hashing(src, dst.write)
        os.utime(path, (self.mtime, self.mtime))
        self.files.append(Written(name, written, digest))

    def add_file(self, name, path):
        with open(path, "rb") as src:
            self.add_stream(name, src)

    def add_bytes(self, name, data):
        self.add_stream(name, io.BytesIO(data))

    def close(self):
        pass

    def abort(self):
        pass  # a half-written folder stays for a person to look at; the run says it failed


class ShardWriter:
    """webdataset tar shards: samples `<key>.<ext>` side by side, at most `shard_size` samples a shard.

    img2dataset's layout: the image and its `<key>.json` metadata, keys in order, shards
    `sceneimg-000000.tar`, `sceneimg-000001.tar`, ... in the output folder beside the other files.
    """

    def __init__(self, root, when, shard_size):
        if shard_size < 1:
            raise ValueError("shard size must be at least 1")
        self.folder = FolderWriter(root, when)
        self.mtime = int(when.timestamp())
        self.shard_size = shard_size
        self.shard_names = []
        self.tar = None
        self.in_shard = 0

    @property
    def files(self):
        return self.folder.files

    def _member(self, name, size):
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, self.mtime, FILE_MODE
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def add_sample(self, key, parts):
        """parts: [(extension, readable file, size)], written in that order."""
        if self.tar is None or self.in_shard >= self.shard_size:
            self._close_shard()
            name = SHARD_NAME.format(len(self.shard_names))
            self.shard_names.append(name)
            self.tar = tarfile.open(self.folder.root / name, "w", format=tarfile.USTAR_FORMAT)
            self.in_shard = 0
        for ext, src, size in parts:
            self.tar.addfile(self._member(f"{key}.{ext}", size), src)
        self.in_shard += 1

    def _close_shard(self):
        if self.tar is None:
            return
        self.tar.close()
        self.tar = None
        name = self.shard_names[-1]
        path = self.folder.root / name
        size, digest = sha256_of(path)
        os.utime(path, (self.mtime, self.mtime))
        self.folder.files.append(Written(name, size, digest))

    def add_file(self, name, path):
        self._close_shard()
        self.folder.add_file(name, path)

    def add_bytes(self, name, data):
        self._close_shard()
        self.folder.add_bytes(name, data)

    def close(self):
        self._close_shard()

    def abort(self):
        if self.tar is not None:
            self.tar.close()


class ParquetRows:
    """A parquet file of flat metadata rows, in row groups of exactly PARQUET_BATCH rows (the last one
    shorter), so the same rows give the same file however they were handed over.

    columns: [(name, kind)], kind one of "int", "float", "bool", "string".
    """

    def __init__(self, path, columns):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        types = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "string": pa.string()}
        self.schema = pa.schema([(name, types[kind]) for name, kind in columns])
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.pending = []

    def _write(self, rows):
        self.writer.write_table(self.pa.Table.from_pylist(rows, schema=self.schema), row_group_size=PARQUET_BATCH)

    def add(self, row):
        self.pending.append(row)
        if len(self.pending) == PARQUET_BATCH:
            self._write(self.pending)
            self.pending = []

    def close(self):
        if self.pending:
            self._write(self.pending)
        self.writer.close()
