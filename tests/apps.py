from django.apps import AppConfig


class ReceiptsStepConfig(AppConfig):
    """Loads the step that tests/test_add_a_step.py declares into a real process: how a deployment
    adds a step, with EXTRA_APPS=tests.apps.ReceiptsStepConfig."""

    name = "tests"
    label = "receipts_step"

    def ready(self) -> None:
        from tests.test_add_a_step import declare

        declare()
