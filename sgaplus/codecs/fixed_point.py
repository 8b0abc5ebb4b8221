"""The hard y_hat an encoder with a causal (raster-scan) context writes, computed in parallel: a fixed point of
"predict every position's means from the current y_hat, round y around them" (docs/refinement.md, "Context
models": the causal fixed point is the serial encoder's answer)."""
import torch

MAX_SWEEPS = 128  # parallel fixed-point sweeps before the exact hard y_hat is computed serially instead
SWEEP_TOLERANCE = 1e-4  # converged: no symbol changed and no value of y_hat moved more than this in a sweep
# the most a fixed point's y_hat may differ from the decoder's serial one before the refiner checks serially: the
# two agree to float precision times the context's gain (about 1e-5 on the bundled models)
DECODER_DRIFT_TOLERANCE = 1e-3


def round_around_means(y, scales, means):
    """(symbols, y_hat) of y rounded around its means: the quantizer of every Gaussian conditional coder."""
    symbols = torch.round(y - means)
    return symbols, symbols + means


def causal_fixed_point(y, parameters, start=None, serial=None, quantize=round_around_means):
    """(y_hat, scales, means, sweeps). parameters(y_hat) -> (scales, means) of every position from the causal
    context of y_hat; start: a first guess (default y); serial() -> the exact y_hat, computed when MAX_SWEEPS sweeps
    do not converge (sweeps is then MAX_SWEEPS + 1); quantize(y, scales, means) -> (symbols, y_hat): the coder's
    quantizer. Each row (image) settles on its own and then keeps its answer while the others sweep on, so that its
    answer is the one it would reach alone; sweeps is the batch's."""
    y_hat = y if start is None else start
    symbols = answer = None  # answer: (y_hat, scales, means), each row's from the sweep it settled in
    settled = torch.zeros(y.shape[0], dtype=torch.bool, device=y.device)
    for sweep in range(1, MAX_SWEEPS + 1):
        scales, means = parameters(y_hat)
        new_symbols, new = quantize(y, scales, means)
        if symbols is None:
            answer = (new, scales, means)
        else:
            now = ~settled & (new_symbols == symbols).flatten(1).all(1) \
                & ((new - y_hat).abs().flatten(1).amax(1) <= SWEEP_TOLERANCE)
            answer = [_rows_where(now, latest, kept) for latest, kept in zip((new, scales, means), answer)]
            settled = settled | now
            if bool(settled.all()):
                return (*answer, sweep)
        y_hat, symbols = _rows_where(settled, answer[0], new), new_symbols
    y_hat = _rows_where(settled, answer[0], serial())
    scales, means = parameters(y_hat)
    return y_hat, _rows_where(settled, answer[1], scales), _rows_where(settled, answer[2], means), MAX_SWEEPS + 1


def _rows_where(rows, chosen, other):
    """chosen's rows where rows (B,) is true, other's elsewhere."""
    return torch.where(rows.view(-1, *[1] * (chosen.dim() - 1)), chosen, other)
