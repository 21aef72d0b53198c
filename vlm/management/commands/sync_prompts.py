"""Load prompts/ into PromptVersion: new or edited files become new versions, old ones stay."""
from django.core.management.base import BaseCommand, CommandError

from vlm.prompts import PromptError, active_version, import_original, prompts_dir, sync_prompts


class Command(BaseCommand):
    help = ("Sync prompt files (prompts/vN.toml or vN.txt) into versioned PromptVersion rows, or import one of "
            "the original scripts' prompt files with --from-original.")

    def add_arguments(self, parser):
        parser.add_argument("--dir", help=f"prompt folder (default {prompts_dir()})")
        parser.add_argument("--from-original", metavar="FILE",
                            help="import an original prompt file (prompt/filter_vlm_vN.txt, or filter_vlm.py): its "
                                 "SYSTEM_PROMPT and USER_PROMPT_TEMPLATE, read without running it")
        parser.add_argument("--name", help="the version name for --from-original (default original-vN)")

    def handle(self, *args, **opts):
        if opts["from_original"]:
            try:
                version, created = import_original(opts["from_original"], opts["name"])
            except PromptError as exc:
                raise CommandError(str(exc)) from None
            what = "new version" if created else "unchanged  "
            self.stdout.write(f"{what} {version.name} {version.content_hash[:12]}  from {opts['from_original']}")
            self.stdout.write(f"use it with: manage.py filter_vlm --prompt {version.name} ...")
            return
        if opts["name"]:
            raise CommandError("--name goes with --from-original")
        try:
            created, unchanged = sync_prompts(opts.get("dir"))
        except PromptError as exc:
            raise CommandError(str(exc)) from None
        for v in created:
            self.stdout.write(f"new version  {v.name:<8} {v.content_hash[:12]}  from {v.source_file}")
        for v in unchanged:
            self.stdout.write(f"unchanged    {v.name:<8} {v.content_hash[:12]}")
        active = active_version()
        self.stdout.write(self.style.SUCCESS(
            f"{len(created)} new, {len(unchanged)} unchanged; active prompt: "
            f"{f'{active.name} ({active.content_hash[:12]})' if active else 'none'}"
        ))
