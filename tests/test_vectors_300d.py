"""`--vectors spacy300` end to end, offline: a tiny 300-d archive with spaCy's vocab/ layout, made here,
stands in for the pinned wheel (no test downloads it). The quick d = 300 configuration CI runs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from bench.accuracy import main as accuracy_main
from tests.test_spacy_vectors import make_wheel
from training.cli import main
from training.lowrank import rank_for_reduction
from training.sweep import Block, SweepConfig, in_grid_order

WORDS = ["good", "great", "fine", "bad", "awful", "dull", "film", "movie", "the", "a", "plot", "acting"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A dataset folder whose words mostly have rows in a 300-d archive (two words share one row)."""
    root = tmp_path_factory.mktemp("d300")
    folder = root / "tiny"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 120), ("dev", 40), ("test", 40)):
        lines = ["label\ttext"]
        for i in range(n):
            pos = i % 2 == 0
            words = rng.choice(WORDS[:3] if pos else WORDS[3:6], size=2).tolist() + ["the", "film", f"w{i % 30}"]
            lines.append(f"{'pos' if pos else 'neg'}\t{' '.join(words)}")
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    table = rng.normal(0, 0.3, size=(len(WORDS) - 1, 300)).astype(np.float32)
    mapping = {w: min(i, len(table) - 1) for i, w in enumerate(WORDS)}  # "plot" and "acting" share a row
    wheel = root / "vectors.zip"
    make_wheel(wheel, table, mapping, [*WORDS, "unmapped"])
    return root, folder, wheel


def test_run_at_d300_exports_full_lowrank_int8_and_records_the_vectors(tiny, tmp_path, capsys):
    root, folder, wheel = tiny
    recipe = "online-nowd-pure"  # run's own choice (training/recipe.py) for the DAN at d = 300 on sentences
    out = tmp_path / "runs" / f"spacy300-{recipe}" / "seed0"  # bench.accuracy's layout: the recipe run resolves
    rc = main(["run", "--data", str(folder), "--vectors", "spacy300", "--vectors-path", str(wheel),
               "--epochs", "2", "--retrain-epochs", "1", "--out", str(out), "--name", "tiny-dan",
               "--json", "--threads", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    manifests = {m["name"]: m for m in json.loads(printed[printed.index("\n[") + 1:])}  # after the progress log
    assert set(manifests) == {"tiny-dan-full", "tiny-dan-lowrank", "tiny-dan-int8"}
    full, low, int8 = manifests["tiny-dan-full"], manifests["tiny-dan-lowrank"], manifests["tiny-dan-int8"]
    assert full["embedding_dim"] == low["embedding_dim"] == 300
    vocab = json.loads((out / "tiny-dan-full" / "vocab.json").read_text())
    v = len(vocab["itos"]) if isinstance(vocab, dict) else len(vocab)
    assert full["rank"] is None and low["rank"] == rank_for_reduction(v, 300, 0.9)
    assert low["onnx_bytes"] < full["onnx_bytes"] and int8["quantization"]
    assert low["method"] == recipe  # make run's d = 300 recipe, served as <prefix>-lowrank
    recorded = json.loads((out / "tiny-dan-full" / "manifest.json").read_text())["training"]["data"]
    assert recorded["vectors"] == "spacy300" and recorded["vectors_path"] == str(wheel)
    # `make accuracy`'s report of these folders (found in place, so nothing re-runs) names what make run did
    doc = tmp_path / "accuracy.md"
    assert accuracy_main(["--dataset", "tiny", "--seeds", "0", "--vectors", "spacy300",
                          "--runs", str(tmp_path / "runs"), "--out", str(doc)]) == 0
    text = doc.read_text()
    assert f"d = 300, k = {low['rank']}" in text
    assert f"with vectors spacy300; the lowrank model re-trained with `{recipe}`" in text
    assert f"| tiny-dan-lowrank | {low['onnx_bytes']:,} | {100 * low['accuracy']['test']:.2f} ± 0.00 |" in text


@pytest.mark.parametrize(("extra", "names"), [
    (["--vectors", "spacy300", "--glove-path", "{root}/g.txt"], ["--glove-path", "glove50"]),
    (["--vectors-path", "{wheel}"], ["--vectors-path", "spacy300"]),
    (["--vectors", "spacy300", "--no-glove", "--vectors-path", "{wheel}"], ["--no-glove", "spacy300"]),
    (["--vectors", "spacy300", "--vectors-path", "{root}/none.zip"], ["none.zip"]),
    (["--vectors", "spacy300", "--vectors-path", "{root}/tiny/train.tsv"], ["train.tsv", "vocab/"]),
    (["--vectors", "word2vec"], ["--vectors", "word2vec"]),
])
def test_bad_vectors_choices_are_one_line_exit_2(tiny, tmp_path, capsys, extra, names):
    root, folder, wheel = tiny
    argv = ["train", "--data", str(folder), "--out", str(tmp_path / "x"),
            *[a.format(root=root, wheel=wheel) for a in extra]]
    with pytest.raises(SystemExit) if "word2vec" in extra else _no_raise():
        assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for name in names:
        assert name in err, (name, err)
    assert not (tmp_path / "x").exists()  # refused before anything is written


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_sweep_at_d300_writes_dim_300_rows(tiny, tmp_path):
    root, _, wheel = tiny
    out = tmp_path / "sweep"
    grid = {"blocks": [{"datasets": ["tiny"], "methods": ["full", "int8", "noretrain"], "seeds": [0]}],
            "vectors": "spacy300", "vectors_path": str(wheel), "train": {"dan": {"epochs": 1}}}
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    assert main(["sweep", "--grid", str(tmp_path / "grid.json"), "--data-root", str(root), "--out", str(out)]) == 0
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == {"full", "int8", "noretrain"}
    assert {r["dim"] for r in rows} == {"300"}
    assert json.loads((out / "config.json").read_text())["vectors"] == "spacy300"


def test_one_worker_sweeps_run_block_by_block_each_cell_once():
    cfg = SweepConfig(blocks=[
        Block(datasets=["a", "b"], methods=["full", "online"], seeds=[0]),
        Block(datasets=["a", "b"], methods=["online", "noretrain"], reductions=[0.9, 0.5], seeds=[0]),
    ])
    order = in_grid_order(cfg)
    assert [g[0] for g, _ in order] == ["a", "b", "a", "b"]  # the whole first block before the second
    assert order[0][1] == [("full", None), ("online", 0.9)]
    assert order[2][1] == [("online", 0.5), ("noretrain", 0.9), ("noretrain", 0.5)]  # online@0.9 not run twice


def test_report_has_a_d300_section_with_fasttext_columns_and_cell_coverage(tiny, tmp_path):
    root, _, wheel = tiny
    out = tmp_path / "sweep"
    grid = {"blocks": [{"datasets": ["tiny"], "methods": ["full", "online", "int8", "online+int8"], "seeds": [0]},
                       {"datasets": ["tiny"], "methods": ["noretrain"], "seeds": [0, 1]}],
            "vectors": "spacy300", "vectors_path": str(wheel), "train": {"dan": {"epochs": 1}},
            "retrain": {"dan": {"epochs": 1}}}
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    assert main(["sweep", "--grid", str(tmp_path / "grid.json"), "--data-root", str(root), "--out", str(out)]) == 0
    # the second block's seed 1 is "cut": drop its row, as if the sweep had stopped there
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    cut = tmp_path / "d300.csv"
    with open(cut, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(r for r in rows if not (r["method"] == "noretrain" and r["seed"] == "1"))
    docs = tmp_path / "docs"
    argv = ["report", "--csv", str(out / "results.csv"), "--out", str(docs), "--csv-d300", str(cut),
            "--config-d300", str(tmp_path / "grid.json"), "--fasttext", str(tmp_path / "none.csv")]
    assert main(argv) == 0
    md = (docs / "results.md").read_text()
    assert "# d = 300" in md and "## d = 300 goals" in md
    row = next(line for line in md.splitlines() if line.startswith("| tiny | ") and line.endswith("| – | – | 1 |"))
    assert "MiB" in row or "KiB" in row  # full / online / int8 / online+int8 with bytes; fastText absent: –
    assert "| 1 | dan | full, online, int8, online+int8 | 4 / 4 | none |" in md
    assert "| 2 | dan | noretrain | 1 / 2 | tiny s1 |" in md
    assert (docs / "accuracy_vs_bytes_tiny.png").stat().st_size > 10_000

    ft = tmp_path / "fasttext.csv"
    ft.write_text("dataset,model,dim,bigrams,quantized,seed,test_acc,bytes\n"
                  "tiny,fasttext,50,True,False,0,0.5,9000000\ntiny,fasttext,50,True,True,0,0.5,100\n"
                  "tiny,fasttext,100,True,True,0,0.4,50000000\n")  # a second .ftz: less accurate, larger
    assert main([*argv[:-1], str(ft)]) == 0
    md = (docs / "results.md").read_text()
    assert "50.00 (9,000,000" not in md and "dim 50, bigrams" in md
    assert "| 50.00 (0 KiB; dim 50, bigrams) |" in md  # the headline's .ftz column: the more accurate one
    assert "- tiny, .ftz dim 50, bigrams: 50.00 at 0 KiB — no low-rank model is smaller" in md
    # every .ftz is compared, each against the models with fewer bytes than it
    head = "- tiny, .ftz dim 100, bigrams: 40.00 at 47.68 MiB — "
    ftz100 = next(line for line in md.splitlines() if line.startswith(head))
    assert "dan online" in ftz100


def _row(ds, model, method, seed, dev, test, p=0.9):
    return {"dataset": ds, "vocab": "train", "model": model, "method": method, "reduction": p, "seed": seed,
            "dev_acc": dev, "test_acc": test, "model_bytes": 1000, "embedding_bytes_reduction": 0.9}


def test_a_recipe_variant_is_chosen_per_dataset_on_dev_and_only_on_as_many_seeds():
    from research.report_d300 import recipe
    from research.tables import aggregate

    rows = [_row("mr", "dan", "online-nowd", s, 0.70, 0.80) for s in range(3)]
    rows += [_row("mr", "dan", "online-nowd-long", s, 0.72, 0.75) for s in range(3)]  # better dev, worse test
    rows += [_row("mr", "dan", "online-nowd-pure", 0, 0.90, 0.90)]  # best dev, but on one seed only
    rows += [_row("sst2", "dan", "online-nowd", s, 0.70, 0.80) for s in range(3)]
    rows += [_row("sst2", "dan", "online-nowd-plain", s, 0.69, 0.85) for s in range(3)]  # worse dev
    rows += [_row("subj", "dan", "online-nowd", s, 0.3, 0.9) for s in range(3)]
    rows += [_row("subj", "dan", "online-nowd-pure", s, 0.3 + 1e-7, 0.95) for s in range(3)]  # float32 tie
    agg = aggregate(rows)
    assert recipe(agg, "subj", "dan") == ("online-nowd", "online-nowd+int8")
    assert recipe(agg, "mr", "dan") == ("online-nowd-long", "online-nowd-long+int8")
    assert recipe(agg, "sst2", "dan") == ("online-nowd", "online-nowd+int8")
    assert recipe(agg, "trec", "dan") == ("online", "online+int8")  # nothing ran: the d = 50 recipe's name


def test_first_training_table_reads_pilot_grids_and_picks_the_best_dev(tmp_path):
    from research.report_d300 import first_training, goals
    from research.tables import aggregate
    from training.sweep import write_csv

    sweep = [_row("sst2", "dan", "full", s, 0.80, 0.81, p=None) for s in range(3)]
    pilot = [_row("sst2", "dan", "full", s, 0.82, 0.835, p=None) for s in range(3)]
    write_csv(tmp_path / "pilot.csv", pilot)
    grid = tmp_path / "d300-first-x.json"
    grid.write_text(json.dumps({"blocks": [{"datasets": ["sst2"], "methods": ["full"]}],
                                "csv": str(tmp_path / "pilot.csv"),
                                "train": {"dan": {"epochs": 30, "lr": 0.001, "batch_size": 32}}}))
    config = SweepConfig(blocks=[Block(datasets=["sst2"], methods=["full"])]).model_dump(mode="json")
    table, best = first_training(aggregate(sweep), config, [grid])
    assert table[2].startswith("| sweep: Adam lr 0.0005, 15 epochs, batch 64 | 0, 1, 2 | 80.00")
    assert table[3].startswith("| d300-first-x: Adam lr 0.001, 30 epochs, batch 32 | 0, 1, 2 | 82.00")
    assert best[0].startswith("d300-first-x") and abs(best[1].test_mean - 83.5) < 1e-9
    rows = goals(aggregate(sweep), best)
    assert rows[-2].endswith("| NO |") and "chosen on dev (d300-first-x" in rows[-1] and rows[-1].endswith("| yes |")


def test_d300_report_options_without_the_d300_csv_are_one_line_exit_2(tmp_path, capsys):
    argv = ["report", "--csv", str(tmp_path / "r.csv"), "--out", str(tmp_path / "docs"),
            "--first-d300", str(tmp_path / "g.json"), "--energy-d300", str(tmp_path / "e.md")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == "slimtext report: error: --first-d300, --energy-d300 need(s) --csv-d300"
    assert not (tmp_path / "docs").exists()
