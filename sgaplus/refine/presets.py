"""Named refinement settings: the SGA+ paper's and a fast one (the command line's default).

How the fast preset was chosen, and what it was measured against, is in docs/refinement.md ("Presets"). Options
given explicitly override a preset's values.
"""
from dataclasses import dataclass
from typing import Optional, Union

from .schedule import schedule_preset
from .stopping import EarlyStopping


@dataclass(frozen=True)
class Preset:
    description: str
    iterations: int
    schedule: str  # a schedule preset name (schedule.PRESETS)
    lr: float
    early_stop: Optional[int]  # patience in checks, or None (off)
    min_delta: float
    check_every: int
    compile: Union[bool, str]  # True, False, or "auto": compile when the run is long enough to pay (compile_pays)


PRESETS = {
    "paper": Preset("the SGA+ paper's setting: 2000 iterations, its schedule exp(-1e-3 t), lr 5e-3, eager",
                    iterations=2000, schedule="sga+", lr=5e-3, early_stop=None, min_delta=1e-3, check_every=10,
                    compile=False),
    "fast": Preset("500 iterations on the budget schedule with lr 2e-2, compiled when the run is long enough",
                   iterations=500, schedule="budget", lr=2e-2, early_stop=None, min_delta=1e-3, check_every=10,
                   compile="auto"),
}
# "fast" ends within 0.3% of "paper" or lower on every bundled architecture and unseen image measured, in a quarter
# of its time (docs/refinement.md, "Presets"); "paper" reproduces the paper
DEFAULT_PRESET = "fast"
PYTHON_PRESET = "paper"  # LatentRefiner's settings left unset: the paper's, as they have been since 0.1
# "auto" compiles the relaxed loss when a run refines at least this many pixel-steps (iterations x the pixels of each
# batch, summed over batches): compiling costs a roughly fixed time and saves time in proportion to the pixels a step
# refines. Measured on CPU for the six bundled architectures (docs/refinement.md, "Presets"), a first compile
# (Inductor's cache cold) paid for itself after 24 M (factorized) to 446 M (ELIC) pixel-steps; this is the largest.
COMPILE_MIN_PIXEL_STEPS = 7000 * 65536


def compile_pays(pixel_steps):
    return pixel_steps >= COMPILE_MIN_PIXEL_STEPS


def preset(name):
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def refiner_options(name=None, batch_pixels=0, iterations=None):
    """A preset (default: DEFAULT_PRESET) as LatentRefiner keyword arguments:
    LatentRefiner(codec, "ssl", **refiner_options("fast", pixels)).
    batch_pixels (the pixels of one batch) decides a compile of "auto"; 0 leaves the run eager. iterations: another
    budget than the preset's (a budget-aware schedule is fitted to it), as --iterations does on the command line."""
    chosen = preset(DEFAULT_PRESET if name is None else name)
    iterations = chosen.iterations if iterations is None else iterations
    compile = compile_pays(iterations * batch_pixels) if chosen.compile == "auto" else chosen.compile
    stopping = None if chosen.early_stop is None else EarlyStopping(chosen.early_stop, chosen.min_delta)
    return {"iterations": iterations, "lr": chosen.lr, "schedule": schedule_preset(chosen.schedule, iterations),
            "check_every": chosen.check_every, "early_stopping": stopping, "compile": compile}
