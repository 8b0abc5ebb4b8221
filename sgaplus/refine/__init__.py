"""The refinement loop, the layer above the codecs: LatentRefiner (refiner.py) and its parts: the batch's state
(batch.py), the best latents (best.py), the history of checks (history.py), what it returns (results.py), what the
loss weighs (distortion.py), early stopping (stopping.py), a rate target (target.py), temperature schedules
(schedule.py), named settings (presets.py), memory planning (memory.py). It imports the ops, the codecs and
sgaplus.errors, never the files, the pipeline or the command line above it."""
