"""The rate points of an evaluation: `RatePoints` (what the command asks for: an architecture's qualities or levels,
or checkpoint files, with a lambda each for a model class of the user's own) and the RatePoint list it names, each
a label and a function that loads its codec."""
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Optional

from ..codecs import registry
from ..errors import UsageError
from ..files.loading import DEFAULT_BUNDLED_ARCHITECTURE, bundled_models, calls_named, load_codec, load_model_class
from ..files.model_choice import BUNDLED, ModelChoice
from ..option_fields import option, same_option


@dataclass
class RatePoint:
    """One point of the curve: its label (in file names) and a function that loads its codec."""
    label: str
    load: Callable


@dataclass(frozen=True)
class RatePoints:
    bundled: Optional[str] = option(None, "a bundled architecture: its qualities", choices=BUNDLED,
                                    metavar="ARCHITECTURE")
    model: Optional[str] = same_option(ModelChoice, "model")
    qualities: Optional[list] = option(None, "the qualities (default: all)", type=int, nargs="+", metavar="Q")
    levels: Optional[list] = option(None, "a variable-rate model's levels (default: all)", type=int, nargs="+",
                                    metavar="L")
    checkpoint: Optional[list] = option(None, "one rate point per file: sgaplus checkpoints, or state dicts of --model "
                                              "or --model-class", type=Path, nargs="+", metavar="FILE")
    model_class: Optional[str] = same_option(ModelChoice, "model_class")
    model_args: Optional[str] = same_option(ModelChoice, "model_args")
    model_calls: Optional[str] = same_option(ModelChoice, "model_calls")
    lmbda: Optional[list] = option(None, "one RD trade-off per --checkpoint file (default: each model's training "
                                         "lambda)", type=float, nargs="+")

    def record(self):
        return {"bundled": self.bundled, "model": self.model, "qualities": self.qualities, "levels": self.levels,
                "checkpoint": [str(c) for c in self.checkpoint or ()], "model_class": self.model_class,
                "model_args": self.model_args, "model_calls": self.model_calls, "lmbda": self.lmbda}

    def model_choice(self):
        """The model these points are of, as one model's options (their first checkpoint file)."""
        return ModelChoice(self.bundled, self.model, model_class=self.model_class, model_args=self.model_args,
                           model_calls=self.model_calls, checkpoint=(self.checkpoint or [None])[0])

    def name(self):
        """The model's name in reports."""
        return self.model_choice().name()

    def points(self, metric="mse"):
        """The rate points: checkpoint files (one point each; a --model-class's with one lambda each), or the
        qualities of the zoo's or the bundled architecture (default: all), or a variable-rate model's levels
        (default: all). Two or more, else a UsageError."""
        self.model_choice().checked()
        if self.model_class is not None and not self.lmbda:
            raise UsageError("--model-class needs --lmbda, one per --checkpoint file: its training lambdas are not "
                             "known")
        points = self._files() if self.checkpoint else self._architecture(metric)
        if len(points) < 2:
            raise UsageError(f"evaluate draws a curve and its BD metrics: it needs two rate points or more, got "
                             f"{len(points)} ({points[0].label})")
        return points

    def _files(self):
        if self.lmbda and len(self.lmbda) != len(self.checkpoint):
            raise UsageError(f"--lmbda gives one lambda per --checkpoint file: {len(self.lmbda)} lambdas for "
                             f"{len(self.checkpoint)} files")
        if self.qualities or self.levels:
            raise UsageError("with --checkpoint files, each file is a rate point: --qualities and --levels do not "
                             "apply")
        labels = [Path(c).stem for c in self.checkpoint]
        if len(set(labels)) != len(labels):
            raise UsageError("two --checkpoint files share a name; the rate points are named by their files")
        lmbdas = self.lmbda or [None] * len(self.checkpoint)
        if self.model_class is not None:
            calls = calls_named(self.model_calls)  # refused now, before any work
            return [RatePoint(label, partial(load_model_class, self.model_class, c, self.model_args, lmbda, calls))
                    for label, c, lmbda in zip(labels, self.checkpoint, lmbdas)]
        return [RatePoint(label, partial(_with_lmbda, partial(load_codec, self.model, checkpoint=c), lmbda))
                for label, c, lmbda in zip(labels, self.checkpoint, lmbdas)]

    def _architecture(self, metric):
        if self.lmbda:
            raise UsageError(f"--lmbda gives one lambda per --checkpoint file: {len(self.lmbda)} lambdas for 0 files")
        bundled = self.bundled or DEFAULT_BUNDLED_ARCHITECTURE
        first = load_codec(self.model, (self.qualities or [None])[0], bundled=bundled, metric=metric)
        if first.variable_rate:
            if self.qualities:
                raise UsageError(f"{first.model_id} is a variable-rate model: choose its rate points with --levels")
            return [RatePoint(f"level{level}", partial(load_codec, self.model, bundled=bundled, level=level,
                                                       metric=metric))
                    for level in self.levels or range(len(first.model.levels))]
        if self.levels:
            raise UsageError(f"--levels chooses the rate points of a variable-rate model; {first.model_id} has "
                             f"qualities")
        qualities = self.qualities or (registry.zoo_qualities(self.model, metric) if self.model
                                       else sorted(bundled_models(bundled)))
        return [RatePoint(f"q{quality}", partial(load_codec, self.model, quality, bundled=bundled, metric=metric))
                for quality in qualities]


def _with_lmbda(load, lmbda):
    codec = load()
    codec.lmbda = codec.lmbda if lmbda is None else lmbda
    return codec
