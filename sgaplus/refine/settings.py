"""What a refinement is, as one frozen object: `RefinementSettings`, of four parts (the rounding, the budget, the
objective, the speed switches). The command line builds it from its options (each field's command-line help, type
and choices are its metadata: a new field is a new option), `sgaplus.patch` and `LatentRefiner` from keywords; it
validates itself (one-line UsageErrors naming the option), fills what is left unset from a preset, records itself
into a run's settings file and compares itself with an earlier run's for --resume (docs/refinement.md, "Settings").
"""
import dataclasses
from dataclasses import dataclass, fields, replace
from typing import Callable, Optional, Union

import torch

from ..errors import UsageError
from ..ops._common import check_positive
from ..ops.rounding import METHODS, RoundingConfig
from ..option_fields import on_off, option, positive_int
from . import presets
from .distortion import DISTORTIONS, objective_for
from .schedule import BUDGET_HOLD, TemperatureSchedule, budget_schedule, schedule_preset
from .schedule import PRESETS as SCHEDULES
from .stopping import EarlyStopping

BASELINES = ("base", "ste", "uniform")
SGA_METHODS = tuple(sorted(set(METHODS[2]) | set(METHODS[3])))
AUTOCAST_DTYPES = {None: None, "bfloat16": torch.bfloat16, "float16": torch.float16}
BATCH_SIZE = 8  # the default largest batch of same-size images, for refine and evaluate alike
TAU_MAX, SGA_PLUS_RATE = 1.0, 1e-3  # the schedules' defaults where --tau-max and --rate are not given


@dataclass(frozen=True)
class Rounding:
    method: str = option("ssl", "rounding relaxation", choices=SGA_METHODS + BASELINES)
    classes: int = option(2, "rounding classes", type=int, choices=(2, 3))
    a: Optional[float] = option(None, "ssl shape (default 2.3 for 2 classes, 1.4 for 3)", type=float)
    r: Optional[float] = option(None, "three-class factor (default 0.98)", type=float)
    n: Optional[float] = option(None, "three-class power (default 1.5)", type=float)
    seed: int = option(0, "noise seed", type=int)


@dataclass(frozen=True)
class Budget:
    preset: Optional[str] = option(
        None, f"the settings the options below default to (default: {presets.DEFAULT_PRESET}; with --resume, the "
        "earlier run's): " + "; ".join(f"{name}: {p.description}" for name, p in presets.PRESETS.items()),
        choices=tuple(presets.PRESETS))
    iterations: Optional[int] = option(None, "refinement steps (default: the preset's)", type=int)
    lr: Optional[float] = option(None, "Adam learning rate (default: the preset's)", type=float)
    schedule: Union[str, Callable, None] = option(
        None, "temperature schedule (default: the preset's): " + "; ".join(f"{k}: {v}" for k, v in SCHEDULES.items()),
        choices=tuple(SCHEDULES))
    tau_max: Optional[float] = option(None, "largest temperature, for --schedule sga+ or budget (default 1.0)",
                                      type=float)
    rate: Optional[float] = option(None, "temperature decay rate, for --schedule sga+ (default 1e-3)", type=float)
    check_every: Optional[int] = option(None, "steps between true-loss checks (default: the preset's)", type=int)
    early_stop: Optional[int] = option(
        None, "stop an image after PATIENCE checks without a relative improvement of --min-delta (default: the "
        "preset's)", type=positive_int, metavar="PATIENCE", off="refine every image for all its iterations")
    min_delta: Optional[float] = option(None, "relative improvement early stopping waits for (default: the "
                                              "preset's)", type=float)
    max_seconds: Optional[float] = option(
        None, "stop refining a batch after this many seconds, at the best check so far (default: no limit)",
        type=float, metavar="SECONDS")
    target_bpp: Optional[float] = option(None, "refine each image to a file of this many bits per pixel (lambda is "
                                               "adjusted; default: off)", type=float, exclusive="target")
    target_bytes: Optional[int] = option(None, "refine each image to a file of this many bytes", type=positive_int,
                                         exclusive="target")


@dataclass(frozen=True)
class Objective:
    lmbda: Optional[float] = option(None, "RD trade-off (default: the model's training lambda)", type=float)
    metric: Union[str, Callable, None] = option(
        None, "the distortion the loss weighs: lambda * 255^2 * MSE + bpp, or lambda * (1 - MS-SSIM) + bpp (default: "
        "what the model was trained for; with --model, the zoo's weights for it)", choices=tuple(DISTORTIONS))


@dataclass(frozen=True)
class Speed:
    device: Optional[str] = option(None, "cpu, cuda or cuda:N (default: cuda where there is one, else cpu)")
    batch_size: int = option(BATCH_SIZE, "same-size images refined together", type=positive_int)
    autocast: Optional[str] = option(None, "codec convolutions under autocast", choices=("bfloat16", "float16"))
    channels_last: bool = option(False, "image and latents in channels_last format", action="store_true")
    compile: Union[bool, str, None] = option(
        None, "torch.compile the relaxed loss (default: the preset's; fast: when the run is long enough for it to "
        "pay)", action="boolean")
    cuda_graphs: bool = option(False, "compile the relaxed loss with mode='reduce-overhead' (CUDA graphs; CUDA only)",
                               action="store_true")
    tf32: Optional[bool] = option(None, "float32 convolutions of the relaxed steps on TF32 tensor cores, or not "
                                        "(default: torch's setting)", type=on_off, metavar="{on,off}")


PARTS = {"rounding": Rounding, "budget": Budget, "objective": Objective, "speed": Speed}
RECORDED = ("rounding", "budget", "objective")  # what --resume compares (the speed switches may change)


@dataclass(frozen=True)
class RefinementSettings:
    """A refinement's settings: RefinementSettings.of(method="ssl", iterations=500, ...) from flat keywords (each
    field's name; also EarlyStopping as early_stopping and a distortion as distortion), .resolved(preset) with the
    unset budget filled from a preset, .checked() validated."""
    rounding: Rounding = Rounding()
    budget: Budget = Budget()
    objective: Objective = Objective()
    speed: Speed = Speed()

    @staticmethod
    def keywords():
        """The flat keyword names of every field."""
        return {f.name: part for part, cls in PARTS.items() for f in fields(cls)}

    @classmethod
    def of(cls, early_stopping=dataclasses.MISSING, distortion=None, **keywords):
        """From flat keywords; TypeError naming an unknown one."""
        owners = cls.keywords()
        unknown = sorted(set(keywords) - set(owners))
        if unknown:
            raise TypeError(f"unknown refinement setting {unknown[0]!r}; settings: {', '.join(owners)}")
        if early_stopping is not dataclasses.MISSING:  # the Python API's EarlyStopping, or None for off
            if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
                raise TypeError(f"early_stopping must be an EarlyStopping or None, got "
                                f"{type(early_stopping).__name__}")
            keywords["early_stop"] = 0 if early_stopping is None else early_stopping.patience
            keywords["min_delta"] = None if early_stopping is None else early_stopping.min_delta
        if distortion is not None:
            keywords["metric"] = distortion
        parts = {part: PARTS[part](**{k: v for k, v in keywords.items() if owners[k] == part}) for part in PARTS}
        return cls(**parts)

    def flat(self):
        """{field name: value} of every field."""
        return {f.name: getattr(getattr(self, part), f.name) for part, cls in PARTS.items() for f in fields(cls)}

    def resolved(self, default_preset=None):
        """The budget's unset fields (and compile) from its preset, else `default_preset`; a rate target's run
        keeps no early stopping it did not ask for; 0 patience is off. default_preset None: presets.DEFAULT_PRESET."""
        default_preset = default_preset or presets.DEFAULT_PRESET
        budget, speed = self.budget, self.speed
        chosen = presets.preset(budget.preset or default_preset)
        values = {name: getattr(chosen, name) for name in ("iterations", "lr", "schedule", "min_delta",
                                                          "check_every") if getattr(budget, name) is None}
        if budget.early_stop is None:
            target = budget.target_bpp is not None or budget.target_bytes is not None
            values["early_stop"] = 0 if target else chosen.early_stop or 0
        budget = replace(budget, preset=budget.preset or default_preset, **values)
        return replace(self, budget=budget, speed=replace(speed, compile=chosen.compile if speed.compile is None
                                                          else speed.compile)).checked()

    def checked(self):
        """self, or a UsageError (one line, naming the option) for a value that cannot be used."""
        try:
            self.rounding_config()
            self.temperature_schedule()
            self.early_stopping()
            _check_budget(self.budget)
            _check_speed(self.speed)
            if self.objective.lmbda is not None:
                check_positive("lmbda", self.objective.lmbda)
        except ValueError as error:
            raise UsageError(str(error)) from None
        return self

    def rounding_config(self):
        """The op's configuration (None for the baselines)."""
        rounding = self.rounding
        if rounding.method not in SGA_METHODS + BASELINES:
            raise ValueError(f"unknown method {rounding.method!r}; valid: {', '.join(SGA_METHODS + BASELINES)}")
        if rounding.method in BASELINES:
            return None
        return RoundingConfig(rounding.method, rounding.classes, False, rounding.a, rounding.r, rounding.n)

    def temperature_schedule(self):
        """The schedule: a schedule object as given, or the named one with --rate/--tau-max where it takes them
        (None before resolution)."""
        budget = self.budget
        name, rate, tau_max = budget.schedule, budget.rate, budget.tau_max
        if name is None:
            return None  # unresolved: the preset's
        if callable(name):
            if rate is not None or tau_max is not None:
                raise ValueError("--rate and --tau-max apply to a named schedule (sga+, budget)")
            return name
        if name == "sga+":
            return TemperatureSchedule(rate=SGA_PLUS_RATE if rate is None else rate,
                                       tau_max=TAU_MAX if tau_max is None else tau_max)
        if rate is not None:
            raise ValueError(f"--rate applies to --schedule sga+, not {name}")
        if name == "budget":
            return budget_schedule(budget.iterations or 1, tau_max=TAU_MAX if tau_max is None else tau_max,
                                   hold_fraction=BUDGET_HOLD)
        if tau_max is not None:
            raise ValueError(f"--tau-max applies to --schedule sga+ or budget, not {name}")
        return schedule_preset(name, budget.iterations or 1)

    def early_stopping(self):
        """An EarlyStopping, or None (off)."""
        budget = self.budget
        if not budget.early_stop:
            return None
        return EarlyStopping(budget.early_stop, **({} if budget.min_delta is None else {"min_delta": budget.min_delta}))

    def for_codec(self, codec):
        """The objective made concrete for a codec: the metric it was trained for unless one is asked for, and the
        lambda asked for, else None (its training lambda) or, for another metric, that metric's equivalent."""
        metric, lmbda = objective_for(codec, self.objective.metric, self.objective.lmbda)
        return replace(self, objective=Objective(lmbda, metric))

    def for_pixels(self, pixels):
        """compile "auto" decided for a run refining these pixels (of each batch or each image: every step refines
        all of them, and the compiled step is reused by every batch)."""
        if self.speed.compile != "auto":
            return self
        pays = presets.compile_pays(self.budget.iterations * sum(pixels))
        return replace(self, speed=replace(self.speed, compile=pays))

    def record(self):
        """What a run's settings file records of them, and --resume compares: all but the speed switches."""
        return {part: {name: _recordable(value) for name, value in dataclasses.asdict(getattr(self, part)).items()}
                for part in RECORDED}


def _check_budget(budget):
    if budget.iterations is not None and (isinstance(budget.iterations, bool) or not isinstance(
            budget.iterations, int) or budget.iterations < 0):
        raise ValueError(f"iterations must be an integer >= 0, got {budget.iterations!r}")
    if budget.check_every is not None and not (isinstance(budget.check_every, int) and budget.check_every > 0):
        raise ValueError(f"check_every must be an integer > 0, got {budget.check_every!r}")
    for name in ("lr", "max_seconds", "target_bpp"):
        if getattr(budget, name) is not None:
            check_positive(name, getattr(budget, name))
    if budget.target_bpp is not None and budget.target_bytes is not None:
        raise ValueError("--target-bpp and --target-bytes both set the target size; give one")
    if (budget.target_bpp is not None or budget.target_bytes is not None) and budget.early_stop:
        raise ValueError("--early-stop and a target size exclude each other (the target moves lambda)")


def _check_speed(speed):
    if speed.autocast not in AUTOCAST_DTYPES:
        raise ValueError(f"autocast must be one of {', '.join(map(str, AUTOCAST_DTYPES))}, got {speed.autocast!r}")
    if speed.tf32 not in (None, True, False):
        raise ValueError(f"tf32 must be True, False or None, got {speed.tf32!r}")
    if speed.cuda_graphs and speed.compile not in (None, "auto", False, True, "inductor"):
        raise ValueError(f"cuda_graphs compiles with inductor (mode='reduce-overhead'); got compile={speed.compile!r}")
    if speed.device is not None:
        checked_device(speed.device)


def checked_device(text):
    """The device as torch names it, if this machine has it (None: cuda where there is one, else cpu)."""
    if text is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ValueError(f"unknown device {text!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {text}: CUDA is not available on this machine (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {text!r}; use cpu, cuda or cuda:N")
    return str(device)


def _recordable(value):
    """A setting as JSON holds it: a schedule or distortion object by its name."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else getattr(
        value, "name", type(value).__name__)


def compare_recorded(before, now, where):
    """A UsageError naming what changed unless an earlier run's recorded settings (a dict, as read from its
    settings file) are these."""
    if before != now:
        earlier, current = _dotted(before), _dotted(now)
        changed = [key for key, value in current.items() if earlier.get(key, _MISSING) != value]
        raise UsageError(f"cannot resume: the earlier run in {where} used other settings "
                         f"({', '.join(changed) or 'another format'}); use another --out")


_MISSING = object()  # a setting an earlier record lacks


def _dotted(record):
    """A recorded settings dict with its groups' settings as "group.name" keys ({} for anything else)."""
    flat = {}
    for key, value in (record.items() if isinstance(record, dict) else ()):
        flat.update({f"{key}.{name}": inner for name, inner in value.items()} if isinstance(value, dict)
                    else {key: value})
    return flat


def recorded_preset(settings):
    """The preset an earlier run's recorded settings (a dict or None) name, if one of ours."""
    try:
        name = settings["budget"]["preset"]
    except (KeyError, TypeError):
        return None
    return name if name in presets.PRESETS else None
