"""Teacher feature extractors: h = f(x), teacher_features of shape (B, D).

A teacher is a backbone (timm, transformers, torchvision, or a checkpoint subdistill
wrote), a feature rule, and, when it has one, its classification head (D -> C).
``build_backbone`` gives the trainable form used for fine-tuning; ``load_teacher`` the
frozen one used everywhere else.

    teacher = load_teacher(TeacherConfig(source="timm", name="resnet18"))
    teacher_features = teacher(images)  # (B, 512)
"""

from subdistill.teachers.backbone import FEATURES, Backbone
from subdistill.teachers.build import build_backbone, build_tokenizer, image_stats, teacher_fingerprint
from subdistill.teachers.checkpoint import save_teacher_checkpoint
from subdistill.teachers.frozen import Teacher, load_teacher

__all__ = [
    "FEATURES",
    "Backbone",
    "Teacher",
    "build_backbone",
    "build_tokenizer",
    "image_stats",
    "load_teacher",
    "save_teacher_checkpoint",
    "teacher_fingerprint",
]
