"""The order store (connector/store/base.py)."""

import logging

# Alembic narrates at INFO from its import on (its plugins, each revision run): the connector's commands
# say what happened in a sentence of their own, and a worker's log has no use for it. Set here, before any
# module of the store imports alembic.
logging.getLogger("alembic").setLevel(logging.WARNING)
