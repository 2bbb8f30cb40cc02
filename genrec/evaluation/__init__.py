"""The evaluation layer: metrics as pure functions over per-user hit matrices, the full-ranking evaluator with its
user and item groups (`groups`), the scorer/recommender protocols and their top-k adapter, and `FitContext` (what
`fit` receives, including `validate`, the one door to the validation part).

Belongs here: how any model is scored. May import: `genrec.common`, `genrec.data`.
"""
