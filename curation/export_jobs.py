"""Thin RQ job and launcher for the export stage."""
from curation import runs
from curation.models import Run
from sceneimg_site import queues


def output_path(run_id, fmt):
    from curation.export import export_root

    root = export_root()
    root.mkdir(parents=True, exist_ok=True)
    return root / (f"export-{run_id}.zip" if fmt == "zip" else f"export-{run_id}")


def export_job(run_id, filter="", format="zip", out=None):
    from curation.export import export

    out = out or output_path(run_id, format)
    return runs.run_job(run_id, lambda t: export(t, filter, out, format))


def launch_export(filter_string, fmt="zip", *, user=None, label="", out=None):
    """Queue an export run (or return the identical one already queued or running)."""
    params = {"filter": filter_string, "format": fmt}
    if out:
        params["out"] = str(out)
    return runs.launch(Run.Kind.EXPORT, export_job, params, queue=queues.EXPORT, user=user,
                       label=label or f"export {filter_string or 'all images'}"[:200])
