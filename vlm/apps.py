from django.apps import AppConfig


class VlmConfig(AppConfig):
    name = "vlm"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from vlm import stages  # it imports models, which exist only once apps are loaded

        stages.register()
