"""bench/oip.py end to end, tiny: all three transports answer, and only its own section of the doc changes."""

from bench import oip


def test_bench_oip_writes_its_section_only(quick_run, tmp_path):
    doc = tmp_path / "bench-serve.md"
    doc.write_text("# Serving benchmark\n\nkept\n", encoding="utf-8")
    argv = ["--models-dir", str(quick_run[0]), "--batches", "1", "4", "--seconds", "0.05", "--rounds", "1",
            "--out", str(doc)]
    oip.main(argv)
    oip.main(argv)  # a second run replaces the section instead of appending another
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Serving benchmark\n\nkept\n") and text.count(oip.START) == 1
    rows = [line for line in text.splitlines() if line.startswith(("| 1 |", "| 4 |"))]
    assert [r.split(" | ")[1] for r in rows] == list(oip.TRANSPORTS) * 2
    assert all(float(r.split(" | ")[3].replace(",", "")) > 0 for r in rows)
