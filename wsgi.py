"""WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi run``."""

import gc

from fit_service.app import create_app

app = create_app()

# What is loaded by now (modules, the app, schemas, prebuilt statements) lives as long as the
# process: take it out of the cyclic garbage collector's sight. A 1,000-session backfill batch
# allocates hundreds of thousands of objects and so triggers full collections, and each of
# those also walked the ~145,000 start-up objects (measured in-process: full collections took
# about three times as long without this). Each gunicorn worker imports this module itself,
# so this runs once per worker process.
gc.freeze()
