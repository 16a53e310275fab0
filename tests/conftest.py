"""Suite-wide settings: no test may reach a model or dataset hub."""

import os

# Set before any test module imports huggingface_hub, which reads these once at import.
for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "SUBDISTILL_OFFLINE"):
    os.environ[name] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
