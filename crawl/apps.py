from django.apps import AppConfig


class CrawlConfig(AppConfig):
    name = "crawl"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from crawl import stages  # it imports models, which exist only once apps are loaded

        stages.register()
