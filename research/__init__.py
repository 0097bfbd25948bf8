"""The research write-ups (docs/results.md, the d = 300 sections, docs/energy-d300.md): tables and plots
made from the sweeps' CSVs, outside the trainer's import path (nothing in training/ imports it but the
`training report` command, lazily).
"""
