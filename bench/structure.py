"""The code's shape, as numbers: lines per folder, the longest files, import cycles inside each package.

    python -m bench.structure [--root PATH] [--json]

Hand-written Python only (generated protobuf stubs are skipped). A cycle is a strongly connected component
of the graph "module A imports module B" among one package's modules (imports inside functions count: a
lazy import is still a dependency; imports under `if TYPE_CHECKING:` do not). Used for issue 25's
before -> after; tests/test_core.py keeps service/ and slimtext/ free of cycles.
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("service", "slimtext", "training", "bench", "research")


def python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "proto" not in p.parts and "__pycache__" not in p.parts)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path, package: str, annotations: bool = False) -> set[str]:
    """The modules of `package` that `path` imports (absolute imports; `from pkg import mod` resolved); with
    `annotations`, the imports under `if TYPE_CHECKING:` count too."""
    known = {module_name(p, root) for p in python_files(root / package)}
    out = set()
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", getattr(block.test, "attr", "")) == "TYPE_CHECKING"
                   for n in ast.walk(block)} if not annotations else set()  # annotation-only: no run-time dependency
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:  # "service.registry.scan.Slot" -> "service.registry.scan"
                name = name.rpartition(".")[0]
            if name and name.split(".")[0] == package:
                out.add(name)
    return out


def graph(root: Path, package: str, annotations: bool = False) -> dict[str, set[str]]:
    g = {}
    for p in python_files(root / package):
        name = module_name(p, root)
        # a package's __init__ re-exporting its submodules is not a cycle with them
        g[name] = {m for m in imports(p, root, package, annotations) if m != name and not (
            p.name == "__init__.py" and m.startswith(name + "."))}
    return g


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return sorted(out)


def measure(root: Path) -> dict:
    out = {}
    for package in PACKAGES:
        folder = root / package
        if not folder.is_dir():
            continue
        files = {str(p.relative_to(root)): len(p.read_text().splitlines()) for p in python_files(folder)}
        longest = max(files, key=files.get)
        out[package] = {"files": len(files), "lines": sum(files.values()), "longest": longest,
                        "longest_lines": files[longest], "over_300": sorted(f for f, n in files.items() if n > 300),
                        "cycles": cycles(graph(root, package)),
                        "cycles_with_annotations": cycles(graph(root, package, annotations=True))}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.structure", description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=ROOT)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = measure(args.root.resolve())
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print("| folder | files | lines | longest file (lines) | files over 300 lines | import cycles "
          "| cycles counting `if TYPE_CHECKING:` imports |")
    print("|---|---:|---:|---|---:|---|---|")
    for package, r in result.items():
        cyc, typed = ("; ".join(" <-> ".join(m.split(".", 1)[-1] for m in c) for c in r[k]) or "none"
                      for k in ("cycles", "cycles_with_annotations"))
        print(f"| {package}/ | {r['files']} | {r['lines']:,} | {r['longest']} ({r['longest_lines']}) | "
              f"{len(r['over_300'])} | {cyc} | {typed} |")


if __name__ == "__main__":
    main()
