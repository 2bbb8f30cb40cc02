"""The experiments layer: suites (configs/suites/*.yaml) expanded into run specs, the runner with its claim files,
run records, leaderboards and their pictures (`plots`) rendered from them, learning curves and the one convergence
rule (`curves`), paired comparisons, the leakage audit, search spaces and
tuned configs (`tuned`), and Optuna studies (`tuning`).

Belongs here: what is run, recorded and reported. May import: every layer below (`genrec.common`, `genrec.data`,
`genrec.evaluation`) and the models (`baselines`, `zoo`); nothing below imports this package.
"""
