"""`sgaplus evaluate`'s finished (rate point, image) pairs on disk, so that an interrupted evaluation resumes
whatever the number of processes before and now. One process keeps them in pairs.json; under torchrun, rank R
keeps the pairs it finished in pairs-rankR.json (no two processes write the same file), and at the end rank 0
merges every rank's pairs into pairs.json and removes the rank files. A resumed run reads pairs.json and every rank
file there is, whatever the number of processes that wrote them."""
import json

from .. import distributed
from ..errors import UsageError
from ..pipeline import write_json
from ..refine.settings import compare_recorded

MERGED = "pairs.json"
KINDS = ("base", "refined")  # the two files of a pair


def rank_file(out, rank):
    return out / f"pairs-rank{rank}.json"


def rank_files(out):
    return sorted(out.glob("pairs-rank*.json"))


def files(out):
    """The pairs files in `out`: pairs.json and the rank files."""
    return [out / MERGED] * (out / MERGED).exists() + rank_files(out)


def read(out, settings):
    """{(point, image): row} of the pairs every file in `out` holds whose two files are on disk; an earlier run's
    settings must be these."""
    rows = {}
    for path in files(out):
        try:
            earlier = json.loads(path.read_text())
            found, before = earlier["pairs"], earlier["settings"]
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"cannot resume: {path} is not a file this sgaplus wrote") from None
        compare_recorded(before, settings, out)
        rows.update({(row["point"], row["image"]): row for row in found
                     if all((out / row[kind]["file"]).is_file() for kind in KINDS)})
    return rows


def start(out, settings, resume, rank, world):
    """The pairs an earlier run finished (resume; else none), read by every rank; then rank 0 merges them into
    pairs.json and removes the rank files (an earlier run's, of any number of processes), before any rank writes
    its own."""
    done = read(out, settings) if resume else {}
    distributed.barrier(world)  # every rank has read the files
    if rank == 0:
        finish(out, settings, list(done.values())) if done else remove(files(out))
    distributed.barrier(world)
    return done


def record(out, settings, rows, rank, world):
    """The pairs this process has finished so far: with one process all of them, the earlier run's included, in
    pairs.json; under torchrun, this rank's, in its own file."""
    write_json(out / MERGED if world == 1 else rank_file(out, rank), {"settings": settings, "pairs": rows})


def finish(out, settings, rows):
    """pairs.json with every pair; the rank files, now merged into it, removed."""
    write_json(out / MERGED, {"settings": settings, "pairs": rows})
    remove(rank_files(out))


def remove(paths):
    for path in paths:
        path.unlink(missing_ok=True)
