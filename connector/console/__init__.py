"""The seller's console: the orders that need a person, what each needs, and the buttons that act.

Server-rendered (Starlette + Jinja2, plain forms, no JavaScript build), behind a login, with CSRF tokens on
every action. Its data comes from Temporal's visibility (search attributes) and each order's `status`
query, its log lines from the store: no second copy of the truth.
"""
