"""WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi run``."""

from fit_service.app import create_app

app = create_app()
