"""`sgaplus evaluate`: the RD curve of a set of images with and without refinement (run.py), from rate points
(points.py), with its finished pairs on disk (pairs.py) and its curves, BD metrics, table and plot (curves.py)."""
