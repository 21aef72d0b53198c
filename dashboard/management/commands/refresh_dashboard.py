from django.core.management.base import BaseCommand

from dashboard.refresh import refresh


class Command(BaseCommand):
    help = "Compute the progress dashboard's figures now (the page also refreshes them in the background)."

    def handle(self, *args, **options):
        snapshot = refresh()
        self.stdout.write(f"dashboard figures computed in {snapshot.seconds:.2f} s")
