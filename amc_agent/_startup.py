"""Process start-up cost: import Torch-Pruning without timm.

Torch-Pruning imports timm (and, through timm, wandb and huggingface_hub) only for its operation
counter's hooks on timm attention layers, a counter this package does not use (MACs come from
``amc_agent.env.cost``). That import costs 1-3 s on every process start: every CLI call, every
local or Ray worker, every torchrun rank. Hiding timm while Torch-Pruning loads removes it; timm
stays importable afterwards (``timm:NAME`` models load it on demand).
"""

import sys

if "torch_pruning" not in sys.modules and "timm" not in sys.modules:
    sys.modules["timm"] = None  # type: ignore[assignment]  # makes `import timm` raise ImportError
    try:
        import torch_pruning  # noqa: F401
    finally:
        del sys.modules["timm"]
