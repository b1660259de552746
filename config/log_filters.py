"""Logging filters wired in settings.LOGGING."""

import logging

from django.core.exceptions import PermissionDenied


class ForbiddenInOneLine(logging.Filter):
    """Django logs every 403 with the PermissionDenied's traceback; the line already says what was
    refused and where, and a refusal is not a bug, so the traceback goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PermissionDenied):
            record.exc_info, record.exc_text = None, None
        return True
