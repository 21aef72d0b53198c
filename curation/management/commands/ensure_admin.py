import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the 'admin' superuser with a random password, printed once, if there is none."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, **opts):
        User = get_user_model()
        if User.objects.filter(username=opts["username"]).exists():
            self.stdout.write(f"admin user '{opts['username']}' exists (its password was printed when it was "
                              f"made; reset it with: python manage.py changepassword {opts['username']})")
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(opts["username"], "", password)
        self.stdout.write(f"created admin user '{opts['username']}' with password: {password}")
