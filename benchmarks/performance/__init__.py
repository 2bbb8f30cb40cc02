"""The performance benchmarks behind `python benchmarks/perf.py` (leaderboard/performance.md + .csv).

One module per section, each a recipe read top to bottom with one `run(bench)` function: `matmul` (fp32/bf16
peak), `evaluate` (section `eval`: full-ranking evaluation speed), `decode` (section `beam`: constrained beam
search vs HF generate), `train` (ColaRec training throughput and MFU per preset), `speed` (eager vs fast kernels
in fp32 and bf16 side by side, the `bf16: null` resolution, the validation share of a fit), `gid` (GID
construction), `profile` (where a ColaRec training step spends its time), `recbole` (adapter overhead) and `gpu`
(the `gpu_*` rows on a CUDA device). What they share lives
in three modules: `fixtures` (the ml-100k dataset and split, models, user batches and the training-step loop,
built once or built the same way everywhere), `flops` (the ColaRec FLOP model MFU divides by) and `report` (the
rows, timing, and the leaderboard files). `sections` lists the sections in the order a full run takes them.
These are benchmarks, not tests: nothing here asserts a target (the tests check the fast paths' outputs).
"""
