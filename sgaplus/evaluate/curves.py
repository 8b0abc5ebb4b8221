"""`sgaplus evaluate`'s outputs from its finished pairs: the curves (the averages over the images per rate point) in
CompressAI's eval_model format (base.json, refined.json: `python -m compressai.utils.plot` reads them), BD metrics
(bd.json), every pair (images.csv), a plot (rd.png) and the terminal's table."""
import csv
import io

from ..bd import bd_psnr, bd_rate
from ..files.images import write_atomic
from ..pipeline import mean_or_none, write_json
from ..refine.distortion import ms_ssim_db
from .pairs import KINDS

FIELDS = ("bpp", "psnr", "ms_ssim", "encoding_time", "loss")


def curve(labels, pairs, kind):
    """Per rate point (labels), the averages over the images of one kind of file, in rate order."""
    points = []
    for label in labels:
        rows = [row[kind] for row in pairs if row["point"] == label]
        average = {f: mean_or_none([r[f] for r in rows]) for f in FIELDS}
        points.append({"point": label, **average})
    return sorted(points, key=lambda p: p["bpp"])


def compressai_format(name, description, points):
    """CompressAI's eval_model JSON: {"name", "description", "results": {"bpp": [...], "psnr-rgb": [...], ...}}
    (MS-SSIM only where every image had one)."""
    results = {"bpp": [p["bpp"] for p in points], "psnr-rgb": [p["psnr"] for p in points]}
    if all(p["ms_ssim"] is not None for p in points):
        results["ms-ssim-rgb"] = [p["ms_ssim"] for p in points]
    results["encoding_time"] = [p["encoding_time"] for p in points]
    results["points"] = [p["point"] for p in points]
    return {"name": name, "description": description, "results": results}


def bd_metrics(base, refined):
    """BD-rate and BD-PSNR of refined against base (and on MS-SSIM in dB where every point has it)."""
    out = {}
    qualities = {"psnr": lambda p: p["psnr"]}
    if all(p["ms_ssim"] is not None for p in base + refined):
        qualities["ms_ssim"] = lambda p: ms_ssim_db(p["ms_ssim"])
    for key, quality in qualities.items():
        args = [[f(p) for p in points] for points in (base, refined) for f in (lambda p: p["bpp"], quality)]
        for name, metric in ((f"bd_rate_percent_{key}", bd_rate), (f"bd_{key}_db", bd_psnr)):
            try:
                out[name] = metric(*args)
            except ValueError as error:  # curves that do not overlap, or whose quality does not rise with rate
                out[name], out[f"{name}_undefined"] = None, str(error)
    return out


def write_curves(out, labels, pairs, name, method):
    """Write base.json, refined.json, bd.json, images.csv, rd.png to `out` from the pairs (in order) of the rate
    points `labels`, for a model `name` refined with `method`; returns (curves, BD metrics)."""
    curves = {kind: curve(labels, pairs, kind) for kind in KINDS}
    for kind in KINDS:
        description = "without refinement" if kind == "base" else f"latents refined ({method})"
        write_json(out / f"{kind}.json", compressai_format(f"{name} {kind}", description, curves[kind]))
    bd = bd_metrics(curves["base"], curves["refined"])
    write_json(out / "bd.json", {"reference": "base", "test": "refined", **bd})
    write_images_csv(out / "images.csv", pairs)
    plot(out / "rd.png", curves, name)
    return curves, bd


def table(curves):
    """The curves point by point, as the terminal shows them."""
    lines = [f"{'point':12s} {'base bpp':>9s} {'psnr':>7s} {'seconds':>8s} | {'refined bpp':>11s} {'psnr':>7s} "
             f"{'seconds':>8s}"]
    refined = {p["point"]: p for p in curves["refined"]}
    for b in curves["base"]:
        r = refined[b["point"]]
        lines.append(f"{b['point'][:12]:12s} {b['bpp']:9.4f} {b['psnr']:7.3f} {b['encoding_time']:8.2f} | "
                     f"{r['bpp']:11.4f} {r['psnr']:7.3f} {r['encoding_time']:8.2f}")
    return "\n".join(lines)


def write_images_csv(path, pairs):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["point", "image", "width", "height"] + [f"{k}_{f}" for k in KINDS for f in FIELDS] + ["lmbda"])
    for row in pairs:
        writer.writerow([row["point"], row["image"], row["width"], row["height"]]
                        + [row[k][f] for k in KINDS for f in FIELDS] + [row["lmbda"]])
    write_atomic(path, buffer.getvalue().encode())


def plot(path, curves, name):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for kind, style in zip(KINDS, ("o-", "s--")):
        ax.plot([p["bpp"] for p in curves[kind]], [p["psnr"] for p in curves[kind]], style, label=kind)
    ax.set_xlabel("file bpp")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"{name}: with and without latent refinement", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
