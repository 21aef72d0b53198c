from django.apps import AppConfig


class CrawlConfig(AppConfig):
    name = "crawl"
    default_auto_field = "django.db.models.BigAutoField"
