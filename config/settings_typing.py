"""The settings django-stubs loads while type checking: the project's own, with a placeholder
secret, so that `mypy` runs as it is (the real settings refuse to load without SECRET_KEY when
DEBUG is off, and the type checker needs no secret)."""

import os

os.environ.setdefault("SECRET_KEY", "type-checking-only-not-a-secret")

from config.settings import *  # noqa: F403
