"""What model a command asks for, as one frozen object (`ModelChoice`): a bundled model, CompressAI's zoo, a
checkpoint file or a model class of the user's own, and for a variable-rate model a level or gain. The command line
declares its options from the fields; load() makes the codec."""
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from ..codecs import registry
from ..errors import UsageError
from ..option_fields import option
from .loading import DEFAULT_BUNDLED_ARCHITECTURE, bundled_architectures, load_codec, load_model_class

BUNDLED = bundled_architectures()


@dataclass(frozen=True)
class ModelChoice:
    bundled: Optional[str] = option(None, f"a bundled model, offline: {', '.join(BUNDLED)}", choices=BUNDLED,
                                    metavar="ARCHITECTURE")
    model: Optional[str] = option(
        None, f"a CompressAI image model: its zoo weights (downloaded), or with --checkpoint its weights as a "
        f"CompressAI state dict: {', '.join(registry.architectures())}", choices=registry.architectures(),
        metavar="ARCHITECTURE")
    quality: Optional[int] = option(None, "zoo quality, or bundled model quality (default: 3 for the zoo, the middle "
                                          "one bundled)", type=int)
    checkpoint: Optional[Path] = option(None, "an sgaplus checkpoint file (see tools/train_base.py), or with --model "
                                              "a CompressAI state dict", type=Path)
    model_class: Optional[str] = option(None, "a CompressionModel class of your own (or package.module:CLASS), with "
                                              "its weights as published in --checkpoint; refine needs --lmbda",
                                        metavar="FILE.py:CLASS")
    model_args: Optional[str] = option(None, "--model-class's constructor keywords, a JSON object (default: none; "
                                             "then the class's from_state_dict if any)", metavar="JSON")
    model_calls: Optional[str] = option(
        None, "how to call a model whose forward, compress or decompress take more than CompressAI's arguments: a "
        "sgaplus.ModelCalls in a file (or package.module:NAME); docs/codecs.md", metavar="FILE.py:NAME")
    level: Optional[int] = option(None, "a variable-rate model's rate level (default: the middle one; with --lmbda or "
                                        "a target size, the nearest to it)", type=int, exclusive="rate")
    gain: Optional[float] = option(None, "a variable-rate model's gain, between its levels' gains", type=float,
                                   exclusive="rate")

    def checked(self, lmbda_needed=False):
        """self, or a UsageError (one line) for options that name no model or two; lmbda_needed: the run has no
        --lmbda, which a model class of the user's own needs."""
        if self.model_class is None:
            if self.model_args is not None:
                raise UsageError("--model-args gives --model-class's constructor keywords; give --model-class too")
            if self.model_calls is not None:
                raise UsageError("--model-calls says how to call --model-class's model; give --model-class too")
            if self.bundled and (self.model or self.checkpoint):
                raise UsageError(f"--bundled and {'--model' if self.model else '--checkpoint'} both name a model; "
                                 f"give one")
            return self
        others = [f"--{name.replace('_', '-')}" for name in ("bundled", "model", "quality", "level", "gain")
                  if getattr(self, name) is not None]
        if others:
            raise UsageError(f"--model-class and {', '.join(others)} both choose a model; give --model-class alone")
        if self.checkpoint is None:
            raise UsageError("--model-class needs its weights: --checkpoint FILE (a state dict, plain or under "
                             "'state_dict')")
        if lmbda_needed:
            raise UsageError("--model-class needs --lmbda: sgaplus does not know the lambda this model was trained "
                             "with")
        return self

    @property
    def architecture(self):
        """The bundled architecture the options name (the default one unless another model is named)."""
        return self.bundled or DEFAULT_BUNDLED_ARCHITECTURE

    def names_quality(self):
        """Whether the options pin the weights (a quality, a zoo model, a file): no nearest quality is looked for."""
        return bool(self.model or self.quality or self.checkpoint or self.model_class)

    def load(self, metric="mse", lmbda=None, **rate):
        """The codec (lmbda: a model class's; rate: another quality or level than the options')."""
        if self.model_class is not None:
            return load_model_class(self.model_class, self.checkpoint, self.model_args, lmbda, self.model_calls)
        chosen = replace(self, **rate)
        return load_codec(chosen.model, chosen.quality, chosen.checkpoint, self.architecture, chosen.level,
                          chosen.gain, metric)

    def record(self):
        """The model as a run's settings file records it (--resume compares it)."""
        model = str(self.checkpoint) if self.checkpoint else f"{self.model or 'bundled ' + self.architecture}:" \
                                                             f"{self.quality}"
        if self.checkpoint and (self.model or self.model_class):
            model += f" ({self.model or self.model_class} {self.model_args or ''})".replace(" )", ")")
        return {"model_options": model, "model_calls": self.model_calls, "level": self.level, "gain": self.gain}

    def name(self):
        """The model's name in reports."""
        if self.model_class:
            return self.model_class.rpartition(":")[2]
        return self.model or (Path(self.checkpoint).stem if self.checkpoint else self.architecture)
