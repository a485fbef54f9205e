"""The operator commands: stats, buried, requeue, delete, reset and top.

`jobs` holds their logic (and re-exports the rest), `cli` their click commands; `base` is
what they share, `stats` and `reset` one command each.
"""
