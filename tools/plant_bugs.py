"""Plant one-line bugs, one at a time, and check that the tests named for each fail. Run by hand, not in CI:

    python tools/plant_bugs.py            # every plant (minutes each: the named tests run for each)
    python tools/plant_bugs.py -k vbr     # the plants whose name contains "vbr"

The plants go into a copy of the project's files in a temporary folder (the working tree is never touched, so
nothing else running from it can import a planted bug): each plant replaces an exact line of the copy (it must
occur once), pytest runs the named tests there, and the line is put back. A plant whose tests pass is a gap in
the suite: it is reported as MISSED and the tool exits 1.
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Plant:
    name: str
    path: str
    line: str  # the line as it is (stripped of its indentation)
    planted: str  # what replaces it (same indentation)
    tests: tuple  # pytest arguments that must fail with the plant


PLANTS = [
    Plant("ssl defaults swapped", "sgaplus/ops/rounding/config.py", "DEFAULT_SSL_A = {2: 2.3, 3: 1.4}  # the paper's "
          "best settings", "DEFAULT_SSL_A = {2: 1.4, 3: 2.3}", ("tests/test_paper_formulas.py",)),
    Plant("a user's ssl a replaced by the default", "sgaplus/ops/rounding/config.py",
          'a = DEFAULT_SSL_A[self.classes] if self.a is None else check_positive("a", self.a)',
          'a = DEFAULT_SSL_A[self.classes] if check_positive("a", self.a or 1) else None',
          ("tests/test_paper_formulas.py",)),
    Plant("three-class r ignored", "sgaplus/ops/rounding/config.py",
          'r = DEFAULT_R if self.r is None else check_positive("r", self.r)',
          'r = DEFAULT_R if check_positive("r", self.r or 1) else None', ("tests/test_paper_formulas.py",)),
    Plant("centre rounds half up (PyTorch path)", "sgaplus/ops/rounding/chunked.py", "c = torch.round(v)",
          "c = torch.floor(v + 0.5)", ("tests/test_edge_cases.py", "-k", "half_to_even")),
    Plant("kernels' temperature divides once", "kernels/rounding.py",
          "x = gap * inv_tau2 + fast_log(fast_div(u, 1.0 - u)) * inv_tau",
          "x = gap * inv_tau + fast_log(fast_div(u, 1.0 - u)) * inv_tau", ("tests/test_paper_formulas.py",)),
    Plant("half-dtype means reach the kernels uncast", "sgaplus/ops/rounding/op.py",
          "means = means.float()  # exact; the kernels then see means in y's dtype or float32, nothing else",
          "pass", ("tests/test_validation.py", "-k", "mixed")),
    Plant("scale hyperprior's z from y instead of |y|", "sgaplus/codecs/compressai.py",
          "return self.model.h_a(y if self.has_means else torch.abs(y))", "return self.model.h_a(y)",
          ("tests/test_compressai_models.py", "-k", "unrefined and bmshj2018-hyperprior]")),
    Plant("checkerboard non-anchors see no anchors", "sgaplus/codecs/tree.py", "anchors = outputs[0][0]",
          "anchors = None", ("tests/test_compressai_models.py", "-k", "unrefined and elic2022-chandelier")),
    Plant("variable-rate symbols recovered naively", "sgaplus/codecs/vbr.py",
          "return candidates.gather(0, (reconstructed - t).abs().argmin(dim=0, keepdim=True))[0]",
          "return torch.sign(t) * torch.round(t.abs() - offsets)",
          ("tests/test_architectures.py", "-k", "refine_encode_decode and hyperprior-vbr")),
    Plant("a context model's first check is the fixed point's, not the decoder's", "sgaplus/refine/refiner.py",
          "base = self._check(batch, exact=self.codec.exact_encoder)", "base = self._check(batch)",
          ("tests/test_architectures.py", "-k", "exactly_where")),
    Plant("images in a batch share one distortion", "sgaplus/refine/distortion.py",
          "return ((x_hat - x) ** 2).flatten(1).mean(dim=1)", "return ((x_hat - x) ** 2).mean().expand(x.shape[0])",
          ("tests/test_refine.py", "-k", "alone")),
    Plant("the zoo's lambdas shifted by one quality", "sgaplus/files/loading.py",
          '"info": {"lmbda": registry.ZOO_LAMBDAS[metric].get(quality), "source": "zoo",',
          '"info": {"lmbda": registry.ZOO_LAMBDAS[metric].get((quality or 0) + 1), "source": "zoo",',
          ("tests/test_zoo.py",)),
    Plant("SGA+ schedule decays twice as fast", "sgaplus/refine/schedule.py",
          "return min(max(math.exp(-self.rate * step), self.tau_min), self.tau_max)",
          "return min(max(math.exp(-2 * self.rate * step), self.tau_min), self.tau_max)",
          ("tests/test_paper_formulas.py", "-k", "defaults")),
    Plant("early stopping counts an improvement as a stall", "sgaplus/refine/stopping.py",
          "self.reference[image], self.stale[image] = best_loss, 0", "self.stale[image] += 1",
          ("tests/test_refine_decisions.py",)),
    Plant("an image keeps its last check, not its best", "sgaplus/refine/best.py",
          "if not self.beaten(image, row, check):", "if False:", ("tests/test_refine_decisions.py",)),
    Plant("early stopping stops one check after the patience", "sgaplus/refine/stopping.py",
          "return self.stale[image] >= self.rule.patience", "return self.stale[image] > self.rule.patience",
          ("tests/test_refine_decisions.py",)),
    Plant("a rate target's tolerance taken as twice as wide", "sgaplus/refine/target.py",
          "return abs(bpp - self.bpp) <= self.tolerance * self.bpp",
          "return abs(bpp - self.bpp) <= 2 * self.tolerance * self.bpp", ("tests/test_refine_decisions.py",)),
    Plant("a rate target's bound excluded", "sgaplus/refine/target.py",
          "return abs(bpp - self.bpp) <= self.tolerance * self.bpp",
          "return abs(bpp - self.bpp) < 0.99 * self.tolerance * self.bpp", ("tests/test_refine_decisions.py",)),
    Plant("generic adapter: the model's roundings left hard", "sgaplus/codecs/forward_roundings.py",
          "sample = self.shared(args[0]).clone()", "sample = torch.round(args[0])",
          ("tests/test_forward_codec.py", "-k", "one_relaxed_sample")),
    Plant("generic adapter: a straight-through rounding passes the identity's gradient",
          "sgaplus/codecs/forward_roundings.py", "if func in DETACHES and self.is_marked(args[0]):", "if False:",
          ("tests/test_forward_idioms.py", "-k", "helper_objects")),
    Plant("generic adapter: each rounding of a latent drawn separately", "sgaplus/codecs/shared_samples.py",
          "known, found = self.lookup(keys) if self.keys else (None, None)", "known, found = None, None",
          ("tests/test_forward_checkerboard.py", "-k", "relaxed_step")),
    Plant("generic adapter: the decoded image unclamped against the forward's clamped", "sgaplus/codecs/forward.py",
          "return x_hat.clamp(0, 1)  # an image, as the refiner measures it (some models' decompress does not clamp)",
          "return x_hat", ("tests/test_forward_idioms.py", "-k", "unclamped")),
    Plant("a subclass's own synthesis rounds its latents again", "sgaplus/codecs/forward_roundings.py",
          "return args[0]  # kept", "return func(*args, **kwargs)",
          ("tests/test_forward_idioms.py", "-k", "files_hold and invertible")),
    Plant("generic adapter: a later rounding's sample detached", "sgaplus/codecs/shared_samples.py",
          "drawn = torch.where(found, known.to(drawn.dtype), drawn)",
          "drawn = torch.where(found, known.detach().to(drawn.dtype), drawn)",
          ("tests/test_forward_checkerboard.py", "-k", "relaxed_step")),
    Plant("generic adapter: a masked copy's zeros relaxed", "sgaplus/codecs/shared_samples.py",
          "sample = torch.where(flat == 0, flat.to(drawn.dtype), drawn)", "sample = drawn",
          ("tests/test_forward_checkerboard.py", "-k", "relaxed_step")),
    Plant("kernels: a row's noise offset taken from the batch (flat index)", "kernels/rounding.py",
          "counters = (program - row * blocks_per_row) * (BLOCK // G) + tl.arange(0, BLOCK // G)",
          "counters = program * (BLOCK // G) + tl.arange(0, BLOCK // G)",
          ("tests/test_noise.py", "-k", "row_by_row and triton")),
    Plant("PyTorch path: a row's noise continues the batch's stream", "sgaplus/ops/rounding/chunked.py",
          "generator = torch.Generator(device=y.device).manual_seed(seed)",
          "generator = generator if row else torch.Generator(device=y.device).manual_seed(seed)",
          ("tests/test_noise.py", "-k", "row_by_row and torch")),
    Plant("refiner: an image's noise keyed by its place in the batch", "sgaplus/refine/noise.py",
          "self.generators = [torch.Generator(device=x.device).manual_seed(image_key(seed, image)) for image in x]",
          "self.generators = [torch.Generator(device=x.device).manual_seed(seed + i) for i in range(len(x))]",
          ("tests/test_batch_invariance.py", "-k", "torch and mbt2018-mean-ssl")),
    Plant("evaluate --resume trusts a pair whose file was deleted", "sgaplus/evaluate/pairs.py",
          "if all((out / row[kind][\"file\"]).is_file() for kind in KINDS)})", "})",
          ("tests/test_evaluate.py", "-k", "deleted")),
    Plant("torchrun: rank 0 keeps only its own rows", "sgaplus/distributed.py",
          "return None if gathered is None else [item for part in gathered for item in part]",
          "return None if gathered is None else gathered[0]", ("tests/test_distributed.py", "-k", "evaluate")),
    Plant("evaluate --resume ignores the ranks' pairs files", "sgaplus/evaluate/pairs.py",
          "return [out / MERGED] * (out / MERGED).exists() + rank_files(out)",
          "return [out / MERGED] * (out / MERGED).exists()", ("tests/test_distributed.py", "-k", "evaluate")),
    Plant("evaluate refines one image at a time", "sgaplus/evaluate/run.py",
          'limits = memory.plan(refiners["refined"], sizes, evaluation.batch_size, evaluation.device)',
          "limits = {size: 1 for size in sizes}", ("tests/test_evaluate.py", "-k", "together")),
    Plant("a CPU batch refines its images together", "sgaplus/refine/memory.py",
          'ONE_IMAGE_DEVICES = ("cpu",)  # device types on which every image refines alone, whatever the batch size '
          'asked for', "ONE_IMAGE_DEVICES = ()", ("tests/test_batch_invariance.py", "-k", "refine_writes")),
    Plant("a missed target size exits 0", "sgaplus/pipeline.py", "if not missed:", "if True:",
          ("tests/test_cli.py", "-k", "target_size_is")),
    Plant("sgaplus.patch: undo leaves the patched compress", "sgaplus/integration/patch.py",
          'handle._undo += [refinement.restore, lambda: delattr(model, "compress")]',
          "handle._undo += [refinement.restore]", ("tests/test_patch.py", "-k", "exception")),
    Plant("sgaplus.patch: the patched compress skips refinement", "sgaplus/integration/patch.py",
          'return {**out, "strings": [list(strings) for strings in zip(*images)]}', "return out",
          ("tests/test_run.py", "-k", "eval_model")),
    Plant("other signatures: the compress call's arguments not passed to forward",
          "sgaplus/integration/call_arguments.py",
          "return model(x, **{key: given[key] for key in self.forward_names})", "return model(x)",
          ("tests/test_other_signatures.py", "-k", "quality_map_codecs_own")),
    Plant("other signatures: every image given the first image's arguments", "sgaplus/integration/call_arguments.py",
          "return self.images[self.index] if size == self.image_size else self.test",
          "return self.images[0] if size == self.image_size else self.test",
          ("tests/test_other_signatures.py", "-k", "quality_map_codecs_own")),
    Plant("other signatures: a variable-rate model's inputscale ignored", "sgaplus/integration/call_arguments.py",
          "if float(gain) != 0:", "if False:",
          ("tests/test_other_signatures.py", "-k", "variable_rate_models_compress")),
]


def copy_project(folder):
    """The project's files (tracked and not ignored) copied into folder, with kernels/ also at sgaplus/kernels so
    that the copy imports its own kernels, not the installed ones."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    shutil.copytree(folder / "kernels", folder / "sgaplus" / "kernels")


def run(plant, folder):
    """True when the plant's tests fail with it in place (in the copy of the project in folder)."""
    paths = [folder / plant.path] + ([folder / "sgaplus" / plant.path] if plant.path.startswith("kernels/") else [])
    original = paths[0].read_text()
    lines = [i for i, text in enumerate(original.splitlines()) if text.strip() == plant.line]
    if len(lines) != 1:
        raise SystemExit(f"{plant.name}: the line occurs {len(lines)} times in {plant.path}: {plant.line!r}")
    text = original.splitlines(keepends=True)
    indent = text[lines[0]][:len(text[lines[0]]) - len(text[lines[0]].lstrip())]
    text[lines[0]] = indent + plant.planted + "\n"
    try:
        for path in paths:
            path.write_text("".join(text))
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *plant.tests],
                              cwd=folder, capture_output=True, text=True)
    finally:
        for path in paths:
            path.write_text(original)
    return proc.returncode != 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", default="", help="run the plants whose name contains this")
    args = parser.parse_args(argv)
    missed = []
    with tempfile.TemporaryDirectory(prefix="sgaplus-plants-") as folder:
        copy_project(Path(folder))
        for plant in [p for p in PLANTS if args.k in p.name]:
            caught = run(plant, Path(folder))
            print(f"{'caught' if caught else 'MISSED'}: {plant.name} ({plant.path}; {' '.join(plant.tests)})",
                  flush=True)
            if not caught:
                missed.append(plant.name)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
