"""End to end: one refinement step (forward + backward + Adam) of the bundled model, fused op vs eager."""
import pytest
import torch
from registry import DEVICE, STEP_IMAGE, synchronize

from sgaplus.files.images import load_shipped_image
from sgaplus.files.loading import load_codec
from sgaplus.ops.rounding.reference import sga_round_reference
from sgaplus.refine.refiner import LatentRefiner, pad_to_multiple


class EagerRefiner(LatentRefiner):
    """The same loop with the paper-style PyTorch rounding in place of the fused op."""

    def _relaxed(self, value, offsets, tau, noise, stream=0):
        generator = None if noise is None else torch.Generator(device=value.device).manual_seed(int(noise) + stream)
        return sga_round_reference(value, tau, self.rounding, means=offsets, generator=generator)


def kodak_size_batch(batch):
    image = load_shipped_image("hubble_deep_field")
    return image[:, :STEP_IMAGE[0], :STEP_IMAGE[1]].unsqueeze(0).repeat(batch, 1, 1, 1)


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("rounding", ["eager", "fused"])
def test_refinement_step(benchmark, rounding, batch):
    codec = load_codec().to(DEVICE)
    refiner = (EagerRefiner if rounding == "eager" else LatentRefiner)(codec, "ssl")
    x = kodak_size_batch(batch).to(DEVICE)
    with torch.no_grad():
        y = codec.analysis(pad_to_multiple(x, codec.multiple))
        z = codec.hyper_analysis(y)
    y, z = y.requires_grad_(), z.requires_grad_()
    optimizer = torch.optim.Adam([y, z], lr=5e-3)

    def step():
        loss, _ = refiner.relaxed_loss(x, y, z, 0.5)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()
        synchronize(DEVICE)

    step()
    benchmark.extra_info.update(suite="refine-step", contender=rounding, batch=batch, device=DEVICE,
                                image=f"{STEP_IMAGE[1]}x{STEP_IMAGE[0]}")
    benchmark.group = f"refine-step batch={batch}"
    benchmark.pedantic(step, rounds=3 if DEVICE == "cpu" else 20, warmup_rounds=1)
