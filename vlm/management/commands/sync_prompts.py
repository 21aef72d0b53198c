"""Load prompts/ into PromptVersion: new or edited files become new versions, old ones stay."""
from django.core.management.base import BaseCommand, CommandError

from vlm.prompts import PromptError, active_version, prompts_dir, sync_prompts


class Command(BaseCommand):
    help = "Sync prompt files (prompts/vN.toml or vN.txt) into versioned PromptVersion rows."

    def add_arguments(self, parser):
        parser.add_argument("--dir", help=f"prompt folder (default {prompts_dir()})")

    def handle(self, *args, **opts):
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
