from django.apps import AppConfig


class CurationConfig(AppConfig):
    name = "curation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from curation import stages  # it imports models, which exist only once apps are loaded

        stages.register()
