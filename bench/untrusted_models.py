"""What a hostile model folder costs at start-up: peak RSS and time of `ModelRegistry.load` on a folder
holding a good model plus one with a 5M-entry vocab.json, each in a fresh process.

    python -m bench.untrusted_models --models-dir /tmp/models [--before-root /path/to/old/checkout]

`--before-root` loads the same folder with another checkout's code (e.g. the commit before the
models folder was treated as untrusted), side by side. Prints a table and writes docs/untrusted-models.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.server import ROOT

CHILD = """
import json, resource, sys, time
from pathlib import Path
from service.registry import ModelRegistry, RegistryConfig
t0 = time.perf_counter()
reg = ModelRegistry.load(RegistryConfig(Path(sys.argv[1])))
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "served": sorted(reg.models), "errors": {k: v[-160:] for k, v in reg.errors.items()}}))
"""


def make_folder(models_dir: Path, out: Path, entries: int) -> Path:
    good = models_dir / "sst2-dan-lowrank"
    shutil.copytree(good, out / good.name)
    bad = out / "bad-vocab"
    shutil.copytree(good, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["name"] = "bad-vocab"
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with open(bad / "vocab.json", "w") as f:
        f.write('{"tokenizer": {}, "itos": ["<pad>", "<unk>"')
        for start in range(2, entries, 500_000):
            f.write("".join(f', "w{i}"' for i in range(start, min(entries, start + 500_000))))
        f.write("]}")
    return out


def measure(root: Path, folder: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(folder)], cwd=root, capture_output=True, text=True,
                          timeout=600, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    if proc.returncode != 0:
        return {"failed": proc.stderr.strip().splitlines()[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--before-root", type=Path, default=None, help="checkout whose code is 'before'")
    ap.add_argument("--entries", type=int, default=5_000_000)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "untrusted-models.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="slimtext-untrusted-") as tmp:
        folder = make_folder(args.models_dir, Path(tmp), args.entries)
        size = (folder / "bad-vocab" / "vocab.json").stat().st_size
        runs = [("before", args.before_root)] if args.before_root else []
        results = [(label, measure(root.resolve(), folder)) for label, root in [*runs, ("after", ROOT)]]
    lines = [f"# A hostile models folder at start-up ({args.entries:,}-entry vocab.json, {size / 1e6:.1f} MB)", "",
             "`python -m bench.untrusted_models`: `ModelRegistry.load` in a fresh process on a folder with a good "
             "model and one whose vocab.json has the entries above (the manifest says 14,752); peak RSS is the "
             "process's ru_maxrss.", "",
             "| code | peak RSS (MB) | load time (s) | served | bad-vocab error |", "|---|---|---|---|---|"]
    for label, r in results:
        if "failed" in r:
            lines.append(f"| {label} | - | - | - | start-up failed: {r['failed']} |")
            continue
        err = r["errors"].get("bad-vocab", "-").replace("|", "\\|")
        lines.append(f"| {label} | {r['peak_rss_mb']:.0f} | {r['seconds']:.2f} | {', '.join(r['served'])} | "
                     f"…{err[-110:]} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
