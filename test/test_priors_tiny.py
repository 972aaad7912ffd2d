"""The smoke profile's tokenizers, written by the project (no hub): they must tokenise any text."""
from transformers import BertTokenizer, CLIPTokenizer

from dpa_ros.priors import tiny


def test_clip_byte_level_vocabulary_round_trips_any_text():
    vocab, merges = tiny.clip_bpe_vocab()
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    assert len(vocab) == 514 and merges == []
    text = "High quality, authentic style café-table #3 ✓"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert tok.unk_token_id not in ids[1:-1]
    assert tok.decode(ids, skip_special_tokens=True).replace(" ", "") == text.lower().replace(" ", "")
    padded = tok([text, "chair"], padding="max_length", max_length=77, truncation=True)["input_ids"]
    assert all(len(row) == 77 for row in padded)


def test_bert_vocabulary_splits_unknown_words_into_letters():
    tok = BertTokenizer(vocab=tiny.bert_vocab())
    pieces = tok.tokenize("chair. zebra.")
    assert pieces[:2] == ["chair", "."] and "[UNK]" not in pieces
    assert "".join(p.lstrip("#") for p in pieces[2:-1]) == "zebra"
    enc = tok("cup. plate.", return_offsets_mapping=True)
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["[CLS]", "cup", ".", "plate", ".", "[SEP]"]
