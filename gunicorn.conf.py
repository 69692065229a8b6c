"""gunicorn reads this file from the working directory (``./dev run``; or pass it with
``gunicorn -c gunicorn.conf.py wsgi:app``). Command-line flags still set the bind address,
workers and the rest; this file only makes gunicorn's own refusals (a request line or header
over its limits, a request that is not HTTP) answer ``application/problem+json`` like the
service's other errors (fit_service/api/server_errors.py)."""

from fit_service.api.server_errors import install

install()
