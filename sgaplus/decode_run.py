"""`sgaplus decode`'s work: a bitstream decoded to a PNG, with the model it names."""
from pathlib import Path

from .errors import UsageError
from .files.bitstream import decode
from .files.images import write_png
from .files.loading import codec_for_id


def run(file, outputs, model, max_pixels):
    """Decode `file` to outputs.out (a PNG; outputs.force: overwrite it) with `model` (a ModelChoice: the checkpoint
    or model class a bitstream of one needs); the exit status."""
    target = outputs.out
    if target.is_dir():
        raise UsageError(f"--out {target} is a folder; name the PNG file to write")
    if not target.parent.is_dir():
        raise UsageError(f"--out {target}: the folder {target.parent} does not exist")
    outputs.refuse_overwrite([target])
    model.checked()  # its options checked before the file is read
    data = Path(file).read_bytes()
    x_hat, model_id = decode(data, lambda model_id: codec_for_id(model_id, model.checkpoint, model.model_class,
                                                                   model.model_args, model.model_calls), max_pixels)
    write_png(target, x_hat)
    print(f"decoded {file} ({model_id}, {x_hat.shape[-1]}x{x_hat.shape[-2]}) to {target}")
    return 0
