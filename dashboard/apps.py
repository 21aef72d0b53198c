from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Progress dashboard"

    def ready(self):
        from dashboard import stages

        stages.register()
