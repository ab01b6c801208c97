"""amc_agent: AMC-style reinforcement-learning channel pruning (He et al., "AMC: AutoML for Model
Compression and Acceleration on Mobile Devices", ECCV 2018) on any PyTorch CNN.

The objects a user composes, importable from here (units: MACs per sample; budgets are the
fraction of the original cost kept; keep ratios per prunable unit):

- models: :func:`build_model` (a recipe ``{"name", "kwargs"}``: zoo, torchvision, ``timm:NAME``
  or ``package.module:callable``), :func:`save_checkpoint`, :func:`load_checkpoint`,
  :func:`model_from_checkpoint` (rebuilds exactly the network that was saved);
- data: :func:`load_dataset` (``fashion-mnist``, ``cifar10``, ``imagefolder:PATH``, ...),
  :func:`synthetic` (a learnable stand-in), :class:`DataSplits` (train / validation / test);
- the environment: :class:`ChannelPruningEnv` with :class:`EnvConfig` (budget, target, criterion,
  reward), also ``gymnasium.make("amc_env/ChannelPruning-v0", model=..., data=...)``;
- a search: :class:`Search` with :class:`SearchConfig` (agent ``amc-ddpg``, ``random``, ``tpe``,
  ...), whose result carries the :class:`Policy` artifact (``policy.json``);
- applying and exporting: :func:`apply_policy` (the same or a new model, another budget through
  the policy's actor), :func:`onnx_bytes` / :func:`check_onnx` (ONNX export, checked in
  onnxruntime);
- training and fine-tuning: :func:`finetune` with :class:`TrainConfig` (SGD, cosine schedule);
- comparing: :func:`run_compare` with :class:`CompareConfig` (every strategy at the same budget,
  fine-tuned with several seeds).

``examples/prune_my_model.py`` prunes a user's own ``nn.Module`` end to end with these.
"""

from amc_agent import _startup  # noqa: F401  # first: Torch-Pruning without timm
from amc_agent.agents.search import Search, SearchConfig, SearchResult
from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from amc_agent.env.datasets import DataSplits, load_dataset, synthetic
from amc_agent.env.env import ChannelPruningEnv, EnvConfig
from amc_agent.env.export import check_onnx, onnx_bytes
from amc_agent.env.models import build_model
from amc_agent.env.training import TrainConfig
from amc_agent.policies.apply import Applied, apply_policy
from amc_agent.policies.artifact import Policy
from amc_agent.policies.compare import CompareConfig, run_compare
from amc_agent.policies.finetune import finetune

__all__ = [
    "Applied", "ChannelPruningEnv", "CompareConfig", "DataSplits", "EnvConfig", "Policy",
    "Search", "SearchConfig", "SearchResult", "TrainConfig", "apply_policy", "build_model",
    "check_onnx", "finetune", "load_checkpoint", "load_dataset", "model_from_checkpoint",
    "onnx_bytes", "run_compare", "save_checkpoint", "synthetic",
]
