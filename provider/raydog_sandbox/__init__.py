"""``raydog_sandbox``: a local YellowDog-compatible platform that the unmodified yellowdog-sdk talks to.

Split the way moto splits a service: per service a ``models.py`` (state and lifecycle,
no HTTP) and a ``responses.py`` (parse the request, call the model, render the SDK's
wire format) in ``work/``, ``pools/`` and ``compute/``; ``backend.py`` composes the
models around one lock, ``routes.py`` holds the route table, ``scheduler.py`` the clock
and the runtime calls, ``nodes/`` the runtimes. ``python -m raydog_sandbox`` (or
``raydog sandbox``) serves it; ``server.start_sandbox`` runs one in process. It imports
nothing from the ``raydog`` provider, and the provider never imports it.
"""
