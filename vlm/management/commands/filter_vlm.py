"""Ask a vision-language model to judge images: the original filter_vlm.py, with its flags."""
import hashlib
import json
import logging

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from curation import runs
from curation.models import Run
from sceneimg_site import queues
from vlm import backends, jobs
from vlm.inputs import DECISION_CHOICES, InputError, select
from vlm.judge import errors_path, judge_images, save_selection
from vlm.prompts import PromptError, active_version, latest_version, sync_prompts


class Command(BaseCommand):
    help = ("Judge images with a vision-language model (OpenAI or Ollama) under a versioned prompt; "
            "store verdicts, set automatic decisions, write JSONL and copy files.")

    def add_arguments(self, parser):
        src = parser.add_argument_group("what to judge (inputs, optionally narrowed by a selection)")
        src.add_argument("--input-dir", help="folder of images (scanned recursively); new files are ingested")
        src.add_argument("--input-manifest", help="JSON or JSONL of image ids or paths (or objects with id/path)")
        src.add_argument("--run", type=int, help="images sighted, scored or judged in this run")
        src.add_argument("--decision", choices=DECISION_CHOICES, help="images with this final decision")
        src.add_argument("--passed-clip", action="store_true", help="images that passed a CLIP filter")
        src.add_argument("--limit", type=int, help="only the first N images (spot checks)")
        parser.add_argument("--output", help="JSONL of verdicts; failures go to <output stem>.errors.json")
        parser.add_argument("--backend", choices=backends.BACKENDS, default=settings.SCENEIMG_VLM_BACKEND)
        parser.add_argument("--model", help="e.g. gpt-4.1, llava:latest (default per backend from settings)")
        parser.add_argument("--prompt", help="prompt version name, e.g. v3 (default: the active one)")
        parser.add_argument("--min-score", type=float, default=settings.SCENEIMG_VLM_MIN_SCORE,
                            help="keep only when the model says keep with at least this score")
        parser.add_argument("--workers", type=int, default=settings.SCENEIMG_VLM_WORKERS, help="concurrent requests")
        parser.add_argument("--keep-dir", help="copy kept images here")
        parser.add_argument("--reject-dir", help="copy rejected images here")
        parser.add_argument("--timeout", type=float, default=settings.SCENEIMG_VLM_TIMEOUT,
                            help="seconds per request")
        parser.add_argument("--seed", type=int, default=0, help="seed of the retry jitter")
        parser.add_argument("--enqueue", action="store_true", help="run on the vlm queue instead of here")

    def handle(self, *args, **o):
        # openai's transport (httpx2) logs every request at INFO; settings quiet only httpx.
        logging.getLogger("httpx2").setLevel(max(logging.WARNING, logging.getLogger("httpx2").level))
        if o["workers"] < 1 or o["timeout"] <= 0 or not 0 <= o["min_score"] <= 1:
            raise CommandError("--workers must be >= 1, --timeout > 0 and --min-score between 0 and 1")
        backend, model = o["backend"], o["model"] or backends.default_model(o["backend"])
        try:
            backends.make_backend(backend, model, timeout=o["timeout"]).close()  # fail early on a missing key
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        try:
            created, _ = sync_prompts()
            active = active_version()
            version = latest_version(o["prompt"]) if o["prompt"] else active
            if version is None:
                raise PromptError("no prompt versions: add prompts/v1.toml and run sync_prompts")
        except PromptError as exc:
            raise CommandError(str(exc)) from None
        for v in created:
            self.stdout.write(f"prompt {v.name} synced as new version {v.content_hash[:12]}")
        if active is None or active.pk != version.pk:
            self.stdout.write(self.style.WARNING(
                f"prompt {version.name} is not the active prompt ({active.name if active else 'none'}): verdicts "
                "are stored for comparison but image decisions are left as they are"))
        try:
            selection = select(input_dir=o["input_dir"], input_manifest=o["input_manifest"], run=o["run"],
                               decision=o["decision"], passed_clip=o["passed_clip"], limit=o["limit"])
        except InputError as exc:
            raise CommandError(str(exc)) from None
        if selection.stats.get("paths"):
            s = selection.stats
            self.stdout.write(f"inputs: {s['paths']} files, {s['known']} already stored, {s['ingested']} ingested, "
                              f"{s['failed']} failed")
        self.stdout.write(f"judging {len(selection.ids)} images with {backend}/{model}, prompt {version.name} "
                          f"({version.content_hash[:12]})")

        stage_kwargs = {
            "prompt_version_id": version.pk, "backend": backend, "model": model, "min_score": o["min_score"],
            "workers": o["workers"], "timeout": o["timeout"], "seed": o["seed"],
        }
        outputs = {k: o[k] for k in ("output", "keep_dir", "reject_dir") if o[k]}
        params = {
            **stage_kwargs, "prompt": version.name, **outputs, "limit": o["limit"],
            "inputs": {k: o[k] for k in ("input_dir", "input_manifest", "run", "decision", "passed_clip") if o[k]},
            "images": len(selection.ids),
            "selection_sha": hashlib.sha256(json.dumps(selection.ids).encode()).hexdigest()[:16],
        }
        label = f"VLM {version.name} {backend}/{model}"
        if o["enqueue"]:
            self._enqueue(selection, stage_kwargs, outputs, params, label)
            return
        if outputs:
            outputs.update(selection.as_json())
        bar = tqdm(total=0, unit="img", desc="vlm", disable=None)
        try:
            run = runs.run_in_foreground(
                Run.Kind.VLM,
                lambda t: judge_images(t, image_ids=selection.ids, outputs=outputs or None, **stage_kwargs),
                params, label=label, progress=bar,
            )
        finally:
            bar.close()
        self._note_input_errors(run, selection)
        self._report(run, o)

    def _enqueue(self, selection, stage_kwargs, outputs, params, label):
        existing = runs.active_duplicate(Run.Kind.VLM, params)
        if existing is not None:
            self.stdout.write(self.style.WARNING(f"the same work is already {existing.status} as run #{existing.pk}"))
            return
        if outputs:
            outputs = {**outputs, "selection": save_selection(selection.as_json(), default_storage)}
        size = max(1, settings.SCENEIMG_VLM_BATCH_SIZE)
        chunks = [selection.ids[i:i + size] for i in range(0, len(selection.ids), size)] or [[]]
        batches = [
            (f"b{n}", {**stage_kwargs, "image_ids": chunk, "outputs": outputs or None, "batch_key": f"b{n}"})
            for n, chunk in enumerate(chunks)
        ]
        run = runs.launch(Run.Kind.VLM, jobs.filter_vlm_job, params, queue=queues.VLM, label=label, batches=batches)
        self._note_input_errors(run, selection)
        self.stdout.write(self.style.SUCCESS(
            f"run #{run.pk}: {len(selection.ids)} images in {run.jobs_total} job(s) on the '{queues.VLM}' queue "
            f"(status {run.status})"))

    def _note_input_errors(self, run, selection):
        """Inputs that never became images (unreadable, rejected by ingest) are counted on the run too."""
        if selection.errors:
            runs.add_counters(run.pk, {"input_errors": len(selection.errors)})
            run.refresh_from_db()
            for e in selection.errors[:5]:
                self.stdout.write(self.style.WARNING(f"input {e.get('path') or e.get('image_id')}: {e['error']}"))

    def _report(self, run, o):
        c = run.counters
        self.stdout.write(
            f"run #{run.pk} {run.status}: kept {c.get('kept', 0)}, rejected {c.get('rejected', 0)}, "
            f"errors {c.get('error', 0) + c.get('input_errors', 0)}, skipped (already judged) {c.get('skipped', 0)}; "
            f"tokens in {c.get('input_tokens', 0)} out {c.get('output_tokens', 0)}, "
            f"estimated cost ${c.get('cost_usd', 0):.4f}"
            + (f" (plus {c['unpriced_verdicts']} verdicts of a model without a price: SCENEIMG_VLM_PRICES)"
               if c.get("unpriced_verdicts") else "")
        )
        if o["output"]:
            self.stdout.write(f"verdicts: {o['output']}  errors: {errors_path(o['output'])}")
        if c.get("error"):
            self.stdout.write(self.style.WARNING(
                f"{c['error']} image(s) failed; run the same command again to retry only those"))
