"""Plumbing shared by every layer: errors, paths, atomic file writes, seeds/versions, typed configs, the registry.

Belongs here: code with no notion of users, items or metrics. May import: nothing else of the project (the
registry names models and datasets as "module:attr" strings and imports them only when asked for).
"""
