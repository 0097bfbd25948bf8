import numpy as np
import pytest

from slimtext.tokenizer import OOV_ID, PAD_ID, Tokenizer, TokenizerConfig


def make(texts, **kw) -> Tokenizer:
    return Tokenizer.build(TokenizerConfig(**kw), texts)


def test_tokenize_splits_words_punctuation_and_contractions():
    tok = make([])
    assert tok.tokenize("A gorgeous, witty movie!") == ["a", "gorgeous", ",", "witty", "movie", "!"]
    assert tok.tokenize("It doesn't work; it's re-imagined") == [
        "it", "does", "n't", "work", ";", "it", "'s", "re-imagined"]
    # SST's own pre-tokenized form gives the same tokens
    assert tok.tokenize("it does n't work ; it 's re-imagined") == tok.tokenize("It doesn't work; it's re-imagined")


def test_vocabulary_order_min_freq_and_cap():
    tok = make(["b a a", "c a b"], min_freq=2)
    assert tok.itos == ["<pad>", "<unk>", "a", "b"]
    assert make(["b a a", "c a b"], max_vocab=3).itos == ["<pad>", "<unk>", "a"]


def test_encode_batch_pads_and_counts():
    tok = make(["good movie", "bad film"], max_len=3)
    ids, lengths = tok.encode_batch(["good movie", "", "bad bad bad bad zzz"])
    assert ids.dtype == np.int64 and lengths.tolist() == [2, 0, 3]
    assert ids.shape == (3, 3)
    assert ids[0].tolist() == [tok.stoi["good"], tok.stoi["movie"], PAD_ID]
    assert ids[1].tolist() == [PAD_ID] * 3
    assert tok.ids("zzz") == [OOV_ID]


def test_empty_batch_row_keeps_one_column():
    ids, lengths = make(["a"]).encode_batch(["", "  "])
    assert ids.shape == (2, 1) and lengths.tolist() == [0, 0]


def test_save_load_roundtrip(tmp_path):
    tok = make(["ünïcode émoji 😀 text"], lowercase=False)
    tok.save(tmp_path / "v.json")
    back = Tokenizer.load(tmp_path / "v.json")
    assert back.itos == tok.itos and back.config == tok.config
    assert back.ids("émoji 😀 text") == tok.ids("émoji 😀 text")


def test_load_rejects_bad_file(tmp_path):
    (tmp_path / "v.json").write_text('{"itos": ["a"]}')
    with pytest.raises(ValueError, match="v.json"):
        Tokenizer.load(tmp_path / "v.json")


def test_training_and_serving_give_the_same_ids(quick_run, sst2):
    """Training encodes with the tokenizer it built; the service loads vocab.json from the artifact."""
    from slimtext.runtime import OnnxClassifier
    from training.train import encode

    models_dir, result = quick_run
    served = OnnxClassifier(models_dir / "sst2-dan-lowrank").tokenizer
    rebuilt = Tokenizer.build(result.tokenizer.config, sst2["train"].texts)
    texts = sst2["dev"].texts[:200]
    labels = sst2["dev"].labels[:200]
    trained = encode(result.tokenizer, texts, labels, {"negative": 0, "positive": 1})
    ids, lengths = served.encode_batch(texts)
    assert np.array_equal(trained.ids.numpy(), ids) and np.array_equal(trained.lengths.numpy(), lengths)
    assert rebuilt.itos == served.itos
