from django.apps import AppConfig


class LabelsConfig(AppConfig):
    name = "labels"
    verbose_name = "Reviewers' labels and notes"

    def ready(self):
        from labels import stages

        stages.register()
