from django.apps import AppConfig


class VlmConfig(AppConfig):
    name = "vlm"
    default_auto_field = "django.db.models.BigAutoField"
