"""Django's PostgreSQL backend with a health check that asks the server only when
the connection shows a sign of trouble (see `base.DatabaseWrapper.is_usable`)."""
