"""WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi run``."""

import sys

from fit_service.app import create_app
from fit_service.config import ConfigError
from fit_service.gc_tuning import tune_for_serving

try:
    app = create_app()
except ConfigError as exc:
    # One line naming the variable, not a traceback through the importer (flask, gunicorn).
    # Exit status 3 is gunicorn's "worker failed to boot", which stops the arbiter; any other
    # status would have it start worker after worker, each failing the same way.
    print(f"fit-service configuration error: {exc}", file=sys.stderr)
    raise SystemExit(3) from None
except OSError as exc:
    # create_app's one file-system step is making the instance folder (for the SQLite file):
    # under a file, without permission or on a read-only file system. Anything else is named
    # as it is, not blamed on that setting.
    reason = exc.strerror or type(exc).__name__
    if exc.filename is not None:
        message = f"FIT_INSTANCE_PATH: cannot use the folder {exc.filename} ({reason})"
    else:
        message = f"an input/output error at start-up ({reason})"
    print(f"fit-service cannot start: {message}", file=sys.stderr)
    raise SystemExit(3) from None

# Each gunicorn worker imports this module itself, so this runs once per worker
# (fit_service/gc_tuning.py says why).
tune_for_serving()
