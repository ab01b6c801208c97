# The two README commands, `make demo` and `make test`, set everything up themselves:
# a virtual env in .venv with the pinned packages (requirements.lock) and Fashion-MNIST in data/.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_ROOT ?= data
FMNIST := $(DATA_ROOT)/FashionMNIST/raw/t10k-labels-idx1-ubyte
DEBIAN_FMNIST := /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export AMC_DATA_ROOT := $(abspath $(DATA_ROOT))
export WANDB_MODE ?= offline
export WANDB_SILENT := true

.PHONY: setup data test lint demo clean device-kit bench bench-quick

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

data: $(FMNIST)

$(FMNIST): | $(STAMP)
	@if [ ! -f $(DEBIAN_FMNIST) ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's dataset-fashion-mnist"; \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist) \
	    || echo "warning: apt could not install dataset-fashion-mnist; trying a download"; \
	fi
	$(BIN)/python -m amc_agent.cli.prepare_data --data-root $(DATA_ROOT)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) $(FMNIST)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

DEMO := runs/demo
# The demo: train the ten-conv CNN (2 epochs), then compare AMC-DDPG against random search, the
# sensitivity heuristic and Torch-Pruning's own uniform and global pruning at 50% MACs, all
# choosing channels by Torch-Pruning's default importance (group-l2, the default criterion: our
# uniform and global heuristics would repeat tp-uniform's and tp-global's policies exactly), every
# one spending the same budget, each fine-tuned on the same 20,000 training images with two seeds
# (error bars; a whole epoch per seed would take about three times as long).
demo: $(STAMP) $(FMNIST)
	@test -f $(DEMO)/cnn10.pt || $(BIN)/amc-train --model cnn10 --dataset fashion-mnist \
	  --epochs 2 --out $(DEMO)/cnn10.pt
	@rm -rf $(DEMO)/compare
	$(BIN)/amc-compare --checkpoint $(DEMO)/cnn10.pt --dataset fashion-mnist --target flops \
	  --budget 0.5 --criterion group-l2 \
	  --strategies amc-ddpg,random,sensitivity,tp-uniform,tp-global \
	  --episodes 150 --agent-kwargs '{warmup_episodes: 50}' --finetune-epochs 1 \
	  --finetune-images 20000 --finetune-seeds 2 --out $(DEMO)/compare
	@sed -n '/^| strategy/,/^$$/p;/^Before fine-tuning/,/^!/p' $(DEMO)/compare/report.md \
	  | grep -v '^!'
	@echo "report: $(DEMO)/compare/report.md (plots beside it); results: $(DEMO)/compare/results.json"
	@echo "wandb runs (offline, group compare-compare): $(DEMO)/compare/wandb; upload with wandb sync"

# The benchmark suite (bench/suite.py): full results into bench/results and BENCHMARKS.md
# (hours on 2 cores); bench-quick is the smoke run (minutes, results under runs/bench-quick).
bench: $(STAMP) $(FMNIST)
	$(BIN)/python -m bench.suite

bench-quick: $(STAMP) $(FMNIST)
	$(BIN)/python -m bench.suite --quick

# What bench/device_session.sh needs on a lent GPU machine (no network there): wheels of the
# pure-Python packages its image lacks, and Debian's Fashion-MNIST files.
device-kit: $(STAMP)
	mkdir -p .gpu/whl
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --platform any -d .gpu/whl $$(grep -iE '^(gymnasium|farama-notifications|stable.baselines3|torch-pruning|optuna|alembic|colorlog|sqlalchemy|mako)==' requirements.lock)
	cp $(dir $(DEBIAN_FMNIST))*.gz .gpu/

clean:
	rm -rf runs wandb .pytest_cache .ruff_cache
