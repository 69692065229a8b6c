"""WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi run``."""

import gc
import sys

from fit_service.app import create_app
from fit_service.config import ConfigError

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

# Garbage-collector settings for the serving process (each gunicorn worker imports this module
# itself, so this runs once per worker). A 1,000-session backfill batch allocates hundreds of
# thousands of objects that live until the response: with the default thresholds that set off
# two or three full collections per batch, each walking every live object, the ~145,000
# start-up ones included. Measured in-process per batch: GC ~0.7-1.2 s with the defaults,
# ~0.3 s with the start-up objects frozen, ~0.1 s frozen and with a young generation of 50,000.
# What is loaded by now (modules, the app, schemas, prebuilt statements) lives as long as the
# process, so it leaves the collector's sight; the larger young generation only delays the
# collection of cyclic garbage (reference counting frees the rest at once).
gc.freeze()
gc.set_threshold(50_000, 20, 20)
