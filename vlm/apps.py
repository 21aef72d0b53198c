import sys

from django.apps import AppConfig


class VlmConfig(AppConfig):
    name = "vlm"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from vlm import stages  # it imports models, which exist only once apps are loaded

        stages.register()
        if sys.argv[1:2] and sys.argv[1].startswith("rqworker"):  # rqworker, rqworker-pool
            # A worker forks a process for each job: importing the model clients once here spares every
            # VLM batch the second they take. Other commands never import them unless they call a model.
            import ollama  # noqa: F401
            import openai  # noqa: F401
