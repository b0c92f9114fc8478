"""`tailor serve`: a read-only HTTP API over the Redis contract (README, HTTP API).

`reads` reads Redis (async, one pool per process), `app` maps routes onto it, `metrics` counts
requests, `openapi` describes the routes and `command` runs the server. Why Starlette on
uvicorn: docs/design/serve.md.
"""
