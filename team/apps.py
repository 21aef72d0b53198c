from django.apps import AppConfig


class TeamConfig(AppConfig):
    name = "team"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from team import stages  # it imports models, which exist only once apps are loaded

        stages.register()
