"""Ask a vision-language model to judge images: the original filter_vlm.py, with its flags."""
import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings
from tqdm import tqdm

from curation import runs
from curation.models import Run
from curation.registry import LaunchError
from sceneimg_site import queues
from vlm import backends
from vlm.inputs import DECISION_CHOICES
from vlm.judge import errors_path, judge_images
from vlm.launch import INPUT_KEYS, OUTPUT_KEYS, launch_vlm, plan_vlm, vlm_options


class Command(BaseCommand):
    help = ("Judge images with a vision-language model (OpenAI or Ollama) under a versioned prompt; "
            "store verdicts, set automatic decisions, write JSONL and copy files.")

    def add_arguments(self, parser):
        src = parser.add_argument_group("what to judge (inputs, optionally narrowed by a selection)")
        src.add_argument("-i", "--input-dir", help="folder of images (scanned recursively); new files are ingested")
        src.add_argument("--input-manifest",
                         help="the original's manifest: a JSON list, JSONL, or {\"id\": {...}}; each entry has the "
                              "caller's id and image_path (or image, path), or a stored image's image_id")
        src.add_argument("--run", type=int, help="images sighted, scored or judged in this run")
        src.add_argument("--decision", choices=DECISION_CHOICES, help="images with this final decision")
        src.add_argument("--passed-clip", action="store_true", help="images that passed a CLIP filter")
        src.add_argument("--judged", action="store_true",
                         help="images this prompt version, backend and model already judged: a new --min-score "
                              "re-decides them without asking the model")
        src.add_argument("--limit", type=int, help="only the first N images (spot checks)")
        parser.add_argument("-o", "--output", help="JSONL of verdicts; failures go to <output stem>.errors.json")
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
        parser.add_argument("--ollama-url", help="Ollama base URL for this run (default SCENEIMG_OLLAMA_HOST, "
                                                 "or SCENEIMG_OLLAMA_CLOUD_HOST with --backend ollama-cloud)")
        parser.add_argument("--ollama-api-key", help="API key for --backend ollama-cloud (default OLLAMA_API_KEY)")
        parser.add_argument("--enqueue", action="store_true", help="run on the vlm queue instead of here")

    def handle(self, *args, **o):
        overrides = {}
        if o["ollama_url"]:
            host = "SCENEIMG_OLLAMA_CLOUD_HOST" if o["backend"] == "ollama-cloud" else "SCENEIMG_OLLAMA_HOST"
            overrides[host] = o["ollama_url"]
        if o["ollama_api_key"]:
            overrides["SCENEIMG_OLLAMA_API_KEY"] = o["ollama_api_key"]
        if overrides and o["enqueue"]:
            raise CommandError("--ollama-url and --ollama-api-key apply to this process only; for --enqueue set "
                               "SCENEIMG_OLLAMA_HOST, SCENEIMG_OLLAMA_CLOUD_HOST or OLLAMA_API_KEY on the workers")
        # The original's per-run Ollama flags: the backends read these settings, for this command only.
        with override_settings(**overrides):
            self._handle(o)

    def _handle(self, o):
        # openai's transport (httpx2) logs every request at INFO; settings quiet only httpx.
        logging.getLogger("httpx2").setLevel(max(logging.WARNING, logging.getLogger("httpx2").level))
        options = vlm_options(**{k: o[k] for k in ("backend", "model", "prompt", "min_score", "workers", "timeout",
                                                   "seed", "limit", *INPUT_KEYS, *OUTPUT_KEYS)})
        try:
            plan = plan_vlm(options)
        except LaunchError as exc:
            raise CommandError(str(exc)) from None
        self._describe(plan)
        if o["enqueue"]:
            self._enqueue(plan)
            return
        outputs = {**plan.outputs, **plan.selection.as_json()} if plan.outputs else None
        bar = tqdm(total=0, unit="img", desc="vlm", disable=None)
        try:
            run = runs.run_in_foreground(
                Run.Kind.VLM,
                lambda t: judge_images(t, image_ids=plan.selection.ids, outputs=outputs, **plan.stage),
                plan.params, label=plan.label, progress=bar,
            )
        finally:
            bar.close()
        if plan.selection.errors:
            runs.add_counters(run.pk, {"input_errors": len(plan.selection.errors)})
            run.refresh_from_db()
        self._note_input_errors(plan.selection)
        self._report(run, o)

    def _describe(self, plan):
        for v in plan.created:
            self.stdout.write(f"prompt {v.name} synced as new version {v.content_hash[:12]}")
        version, active = plan.version, plan.active
        if active is None or active.pk != version.pk:
            self.stdout.write(self.style.WARNING(
                f"prompt {version.name} is not the active prompt ({active.name if active else 'none'}): verdicts "
                "are stored for comparison but image decisions are left as they are"))
        s = plan.selection.stats
        if s.get("paths"):
            self.stdout.write(f"inputs: {s['paths']} files, {s['known']} already stored, {s['ingested']} ingested, "
                              f"{s['failed']} failed")
        self.stdout.write(f"judging {len(plan.selection.ids)} images with {plan.stage['backend']}/"
                          f"{plan.stage['model']}, prompt {version.name} ({version.content_hash[:12]})")

    def _enqueue(self, plan):
        existing = runs.active_duplicate(Run.Kind.VLM, plan.params)
        try:
            run = launch_vlm(None, plan=plan)
        except LaunchError as exc:
            raise CommandError(str(exc)) from None
        if existing is not None:
            self.stdout.write(self.style.WARNING(f"the same work is already {existing.status} as run #{existing.pk}"))
            return
        self._note_input_errors(plan.selection)
        self.stdout.write(self.style.SUCCESS(
            f"run #{run.pk}: {len(plan.selection.ids)} images in {run.jobs_total} job(s) on the '{queues.VLM}' "
            f"queue (status {run.status})"))

    def _note_input_errors(self, selection):
        """Inputs that never became images (unreadable, rejected by ingest); the run counts them too."""
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
