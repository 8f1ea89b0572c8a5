"""The service's routes, one module per group; ``app.py`` includes each module's ``router``."""
