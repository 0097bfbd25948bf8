"""bench/fresh_clone.py (make run from a fresh clone, timed): the parts that need no 2-minute run. It refuses a
destination that exists before cloning anything, and its split is read from the files `make run` writes."""

from __future__ import annotations

import pytest

from bench import fresh_clone


def test_refuses_an_existing_destination_before_any_work(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match="exists"):
        fresh_clone.run(tmp_path, timeout_s=1, keep=False)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]  # nothing cloned, nothing removed


def test_the_stamps_are_what_the_makefile_writes():
    makefile = (fresh_clone.ROOT / "Makefile").read_text()
    assert "$(VENV)/.installed-run:" in makefile and "$(MODELS)/$(DATASET)-dan-lowrank/manifest.json:" in makefile
    assert fresh_clone.STAMPS == {"venv": ".venv/.installed-run", "models": "models/sst2-dan-lowrank/manifest.json"}
    assert 0 < fresh_clone.free_port() < 65536
