import json

import pytest

from slimtext.data import datasets_root, load_splits, read_examples


def test_reads_tsv_csv_jsonl_with_custom_columns(tmp_path):
    (tmp_path / "a.tsv").write_text('label\ttext\npos\tsays "hi" here\nneg\tbad\n')
    (tmp_path / "b.csv").write_text('review,stars\n"great, really",five\nmeh,two\n')
    (tmp_path / "c.jsonl").write_text(json.dumps({"t": "x", "y": 1}) + "\n\n" + json.dumps({"t": "z", "y": 0}) + "\n")
    assert read_examples(tmp_path / "a.tsv").texts == ['says "hi" here', "bad"]
    b = read_examples(tmp_path / "b.csv", text_col="review", label_col="stars")
    assert b.texts == ["great, really", "meh"] and b.labels == ["five", "two"]
    c = read_examples(tmp_path / "c.jsonl", text_col="t", label_col="y")
    assert c.labels == ["1", "0"]


def test_missing_column_and_unknown_type_are_named(tmp_path):
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['label', 'text'\]"):
        read_examples(tmp_path / "a.csv")
    (tmp_path / "a.xml").write_text("<x/>")
    with pytest.raises(ValueError, match="unsupported file type"):
        read_examples(tmp_path / "a.xml")


def test_dataset_root_from_env_or_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMTEXT_DATASETS", str(tmp_path))
    assert datasets_root() == tmp_path
    with pytest.raises(FileNotFoundError, match="does not exist"):
        datasets_root(tmp_path / "nope")


def test_shared_sst2_splits(sst2):
    assert {k: len(v) for k, v in sst2.items()} == {"train": 6920, "dev": 872, "test": 1821}
    assert set(sst2["train"].labels) == {"negative", "positive"}


def test_missing_split_is_named(tmp_path):
    (tmp_path / "train.tsv").write_text("label\ttext\na\tb\n")
    with pytest.raises(FileNotFoundError, match="no dev file"):
        load_splits(tmp_path)


@pytest.mark.parametrize("suffix", [".tsv", ".csv"])
def test_quoted_fields_written_by_the_csv_module_and_pandas_read_back_as_their_text(tmp_path, suffix):
    import csv

    texts = ['even if you can\'t pronounce " gyro " correctly', '" 13 conversations " holds', "tab\tinside",
             "comma , and ' quote", 'ends with "']
    labels = ["pos", "neg", "pos", "neg", "pos"]
    delimiter = "\t" if suffix == ".tsv" else ","
    with open(tmp_path / f"module{suffix}", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(["label", "text"])
        w.writerows(zip(labels, texts, strict=True))
    ex = read_examples(tmp_path / f"module{suffix}")
    assert ex.texts == texts and ex.labels == labels
    # a row as pandas' to_csv(sep="\t") wrote it in the shared MR data (quoted, inner quotes doubled)
    (tmp_path / f"pandas{suffix}").write_text(f'label{delimiter}text\npositive{delimiter}"even if you can\'t '
                                              f'pronounce "" gyro "" correctly ."\n', encoding="utf-8")
    assert read_examples(tmp_path / f"pandas{suffix}").texts == ['even if you can\'t pronounce " gyro " correctly .']


def test_non_utf8_and_broken_jsonl_are_named_errors(tmp_path):
    (tmp_path / "a.tsv").write_bytes("label\ttext\npos\tcaf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"a\.tsv: not UTF-8"):
        read_examples(tmp_path / "a.tsv")
    (tmp_path / "b.jsonl").write_text('{"label": "x", "text": "y"}\n{oops\n')
    with pytest.raises(ValueError, match=r"b\.jsonl: line 2 is not JSON"):
        read_examples(tmp_path / "b.jsonl")
