"""``python -m export``: train, onnx, quantize, hf, evaluate."""

from export.cli import main

raise SystemExit(main())
