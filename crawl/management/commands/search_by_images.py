import logging
from pathlib import Path

from django.core.management.base import CommandError

from crawl import baidu_similar, jobs, launch, rounds
from crawl.ingest import add_filter_arguments, filter_params
from curation.models import Image, Run
from curation.stage_command import StageCommand


class Command(StageCommand):
    help = ("Expand seed images through Baidu reverse-image search (the original search_by_images.py), "
            "keeping candidates inside the dHash window around their seed.")

    def add_arguments(self, parser):
        parser.add_argument("-i", "--input-dir", help="folder of seed images, subfolders included")
        parser.add_argument("--glob", help="only seed files matching this pattern, relative to --input-dir "
                                           "(default: every image in it and its subfolders)")
        parser.add_argument("--seed-image-id", type=int, action="append", default=[],
                            help="an image already in the collection as a seed (repeatable)")
        parser.add_argument("-o", "--output", help="also write stored files in the original's layout: "
                                                   "DIR/<seed>/<sha1>.jpg, sidecar JSON, DIR/_global_index.jsonl")
        parser.add_argument("-n", "--limit-per-seed", type=int, default=150,
                            help="new images stored per seed (default 150)")
        parser.add_argument("--per-host", type=int, help="downloads at once per host (default SCENEIMG_FETCH_PER_HOST)")
        parser.add_argument("--batch-size", type=int, default=16, help="downloads in flight at once (default 16)")
        parser.add_argument("--max-concurrent", type=int, default=3, help="seeds searched at once (default 3)")
        parser.add_argument("--dhash-threshold", type=int, default=18,
                            help="drop candidates farther than this dHash distance from their seed (default 18)")
        parser.add_argument("--dhash-min-distance", type=int, default=4,
                            help="drop candidates this close to their seed or closer: copies of it (default 4)")
        parser.add_argument("--no-phash", action="store_true", help="turn the dHash window off")
        parser.add_argument("--no-dedup", action="store_true",
                            help="fetch URLs seen before again (one picture is still one Image)")
        parser.add_argument("-t", "--timestamp-subdir", action="store_true",
                            help="label the run with a timestamp (also the subfolder under --output)")
        parser.add_argument("--debug", action="store_true", help="verbose, and relaxed size/aspect filters")
        parser.add_argument("--label", default="", help="a name for this expansion")
        add_filter_arguments(parser)
        launch.add_pipeline_argument(parser)
        launch.add_collect_arguments(parser, unit="seed")
        self.add_enqueue_argument(parser)

    def handle(self, *args, **opts):
        seeds = []
        if opts["input_dir"]:
            try:
                seeds += baidu_similar.seed_specs_from_dir(opts["input_dir"], opts["glob"])
            except baidu_similar.SimilarError as exc:
                raise CommandError(str(exc)) from None
            if not seeds:
                raise CommandError(f"no seed images in {opts['input_dir']}"
                                   + (f" match {opts['glob']!r}" if opts["glob"] else ""))
        ids = opts["seed_image_id"]
        if ids:
            found = set(Image.objects.filter(pk__in=ids).values_list("pk", flat=True))
            missing = sorted(set(ids) - found)
            if missing:
                raise CommandError(f"no image with id {', '.join(map(str, missing))}")
            seeds += [{"image_id": i} for i in ids]
        if not seeds:
            raise CommandError("no seeds: give --input-dir or --seed-image-id")
        for name in ("limit_per_seed", "batch_size", "max_concurrent", "per_host", "until_kept", "max_fetches"):
            if opts[name] is not None and opts[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        if opts["dhash_min_distance"] > opts["dhash_threshold"] and not opts["no_phash"]:
            raise CommandError("--dhash-min-distance is above --dhash-threshold: every candidate would be dropped")
        if opts["debug"]:
            logging.getLogger("crawl").setLevel(logging.INFO)
        if opts["enqueue"]:  # a worker on another machine cannot read this machine's folder
            seeds = [baidu_similar.store_seed_upload(s["name"], Path(s["path"]).read_bytes()) if "path" in s else s
                     for s in seeds]
        label = opts["label"] or (launch.timestamp_label() if opts["timestamp_subdir"] else "")
        output = str(Path(opts["output"]).resolve()) if opts["output"] else None
        params = launch.similar_params(
            seeds, limit_per_seed=opts["limit_per_seed"], per_host=opts["per_host"], batch_size=opts["batch_size"],
            max_concurrent=opts["max_concurrent"], dhash_threshold=opts["dhash_threshold"],
            dhash_min_distance=opts["dhash_min_distance"], use_dhash=not opts["no_phash"],
            dedup=not opts["no_dedup"], debug=opts["debug"], output=output, label=label,
            until_kept=opts["until_kept"], max_fetches=opts["max_fetches"],
            **filter_params(opts), pipeline=launch.pipeline_option(opts))
        if opts["enqueue"]:
            run = launch.launch_similar(params)
            self.stdout.write(f"enqueued similar run #{run.pk} on queue 'crawl' ({run.status}): {len(seeds)} seeds")
            return
        self.stdout.write(f"expanding {len(seeds)} seeds, up to {opts['limit_per_seed']} candidates each"
                          + ("" if opts["no_phash"] else
                             f", dHash window {opts['dhash_min_distance']}..{opts['dhash_threshold']}"))
        run = self.run_stage(Run.Kind.SIMILAR, jobs.similar_stage(rounds.round_of_similar(params)), params,
                             label=label)
        if run is not None:
            c = run.counters
            notes = [f"{c[k]} {text}" for k, text in (("_seeds_noresult", "seeds without results"),
                                                      ("_seeds_same_only", "seeds with only copies of themselves"),
                                                      ("_seeds_failed", "seeds failed")) if c.get(k)]
            if notes:
                self.stdout.write("; ".join(notes))
            if run.error:
                self.stderr.write(f"warning: {run.error}")
