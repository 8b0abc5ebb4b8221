"""A model class of the user's own, as the command line names it: FILE.py:CLASS or package.module:CLASS, its
constructor's keywords as a JSON object, and its weights as published (a state dict, plain or under
"state_dict"; with no keywords, the class's from_state_dict where it has one); and how to call it, a ModelCalls
object named the same way (FILE.py:NAME, --model-calls)."""
import contextlib
import importlib
import importlib.util
import json
import sys
from pathlib import Path

from ..codecs.model_calls import ModelCalls
from ..errors import ModelError
from .checkpoints import read_state_dict

SHOWN_KEYS = 3  # weight names quoted in a message about weights that do not fit


def import_class(spec):
    """The CompressionModel subclass that spec (FILE.py:CLASS or package.module:CLASS) names."""
    from compressai.models import CompressionModel
    where, name, module = _named(spec, "--model-class", "CLASS")
    cls = getattr(module, name, None)
    if cls is None:
        found = sorted(key for key, value in vars(module).items()
                       if isinstance(value, type) and issubclass(value, CompressionModel) and value is not
                       CompressionModel)
        raise ModelError(f"--model-class: {where} has no {name!r}; its CompressionModel classes: "
                         f"{', '.join(found) or 'none'}")
    if not (isinstance(cls, type) and issubclass(cls, CompressionModel)):
        raise ModelError(f"--model-class: {where}:{name} is not a subclass of compressai's CompressionModel")
    return cls


def import_calls(spec):
    """The ModelCalls object that spec (FILE.py:NAME or package.module:NAME) names (docs/codecs.md, "Other
    signatures")."""
    where, name, module = _named(spec, "--model-calls", "NAME")
    calls = getattr(module, name, None)
    if not isinstance(calls, ModelCalls):
        found = sorted(key for key, value in vars(module).items() if isinstance(value, ModelCalls))
        what = "no" if calls is None else f"a {type(calls).__name__} named"
        raise ModelError(f"--model-calls: {where} has {what} {name!r}, not a ModelCalls (sgaplus.ModelCalls("
                         f"forward=, compress=, decompress=)); its ModelCalls: {', '.join(found) or 'none'}")
    return calls


def _named(spec, option, kind):
    """(where, name, the module imported) of an option's FILE.py:NAME or package.module:NAME."""
    where, colon, name = spec.rpartition(":")
    if not colon or not where or not name:
        raise ModelError(f"{option} {spec!r}: give FILE.py:{kind} or package.module:{kind}")
    return where, name, _import_file(Path(where), option) if where.endswith(".py") else _import_module(where, option)


@contextlib.contextmanager
def _on_path(folder):
    """folder first on sys.path for the import: a model file's own imports of its neighbours work."""
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))


def _import_file(path, option):
    if not path.is_file():
        raise ModelError(f"{option}: no file {path}")
    loaded = sys.modules.get(path.stem)
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == path.resolve():
        return loaded  # imported already (by the caller's own code)
    name = _free_module_name(path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # where the generic adapter finds the module's straight-through function
    with _on_path(path.resolve().parent):
        try:
            _run_import(path, lambda: spec.loader.exec_module(module), option)
        except ModelError:
            del sys.modules[name]
            raise
    return module


def _free_module_name(stem):
    """stem, or stem_2, stem_3, ...: a module name no imported module has."""
    name, number = stem, 1
    while name in sys.modules:
        number += 1
        name = f"{stem}_{number}"
    return name


def _import_module(name, option):
    with _on_path(Path.cwd()):  # as `python -m` would find it
        return _run_import(name, lambda: importlib.import_module(name), option)


def _run_import(what, load, option):
    """load(); any error the user's code raises while importing becomes one line."""
    try:
        return load()
    except Exception as error:  # the user's module may raise anything
        raise ModelError(f"{option}: importing {what} failed: {type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}") from None


def keywords(model_args):
    """The constructor's keywords from JSON text (None: none)."""
    if model_args is None:
        return {}
    try:
        value = json.loads(model_args) if isinstance(model_args, str) else model_args
    except ValueError as error:
        raise ModelError(f"--model-args is not JSON ({error}): give an object, e.g. '{{\"N\": 128}}'") from None
    if not isinstance(value, dict):
        raise ModelError(f"--model-args must be a JSON object of the constructor's keywords, got {model_args}")
    return value


def build(spec, checkpoint, model_args=None):
    """The model in eval mode: the class spec names, built with model_args (JSON text or a dict), with the
    weights in the checkpoint file."""
    cls, kwargs = import_class(spec), keywords(model_args)
    state = read_state_dict(checkpoint)
    if not kwargs and callable(getattr(cls, "from_state_dict", None)):
        make, how = (lambda: cls.from_state_dict(state)), f"{cls.__name__}.from_state_dict"
    else:
        make, how = (lambda: cls(**kwargs)), f"{cls.__name__}(**{json.dumps(kwargs)})"
    try:
        model = make()
    except Exception as error:  # the user's constructor may raise anything
        raise ModelError(f"{how} failed: {type(error).__name__}: {_first_line(error)}") from None
    _load_weights(model, state, checkpoint)
    return model.eval()


def _load_weights(model, state, checkpoint):
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        raise ModelError(f"the weights in {checkpoint} do not fit {type(model).__name__}: {len(missing)} missing "
                         f"({', '.join(missing[:SHOWN_KEYS]) or '-'}), {len(unexpected)} unexpected "
                         f"({', '.join(unexpected[:SHOWN_KEYS]) or '-'}); check --model-args")
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError) as error:
        raise ModelError(f"the weights in {checkpoint} do not fit {type(model).__name__}: "
                         f"{_first_line(error)}; check --model-args") from None


def _first_line(error):
    """The first informative line of an error's message (torch's load_state_dict puts a header first)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    informative = [line for line in lines if not line.startswith("Error(s) in loading state_dict")]
    return (informative or lines or [type(error).__name__])[0]
