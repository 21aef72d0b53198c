"""Thin RQ jobs for the import stages: plain parameters in, the stage function does the work."""
from crawl import importers
from crawl.ingest import Filters
from curation import runs


def import_folder_job(run_id, path, recursive=False, label="", **params):
    runs.run_job(run_id, lambda t: importers.import_folder(
        t, path, recursive=recursive, label=label, filters=Filters.from_params(params)))


def import_urls_job(run_id, file, label="", workers=8, **params):
    runs.run_job(run_id, lambda t: importers.import_urls(
        t, importers.parse_url_list(importers.read_url_file(file)), label=label, workers=workers,
        filters=Filters.from_params(params)))
