"""Tailor: a real-time personalization engine (a Bytewax dataflow; segments and recs in Redis).

The code lives in the repository's top-level folders; this package names them, so that
everything installs under one name: `tailor.flows` (the dataflow and the CLI),
`tailor.operators` (the steps, Redis I/O under `tailor.operators.redis`) and `tailor.state`
(per-user state and the models, no I/O).
"""
