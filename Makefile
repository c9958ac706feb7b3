# Every target creates and uses .venv itself: a fresh machine needs only python3 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch: on our machines `pip install torch==2.13.0` takes the wheel on disk.
TORCH  ?= torch==2.13.0
RECIPE ?= recipes/tiny-mixtral-nvfp4-cpu.yaml
EXTRAS ?= quantize,bench,serving,dev
STAMP  := $(VENV)/.installed-$(shell echo "$(EXTRAS)" | tr ',' '-')
PYTEST_ARGS ?=

.PHONY: setup engine serve stop bench test test-gpu lint schema docs docker-build docker-serve clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

## The main job: the whole pipeline on RECIPE (default: the embedded tiny Mixtral on CPU).
engine: $(STAMP)
	$(BIN)/orchestrator run $(RECIPE)

serve: $(STAMP)
	$(BIN)/orchestrator serve $(RECIPE) --detach

stop: $(STAMP)
	$(BIN)/orchestrator stop $(RECIPE)

bench: $(STAMP)
	$(BIN)/orchestrator bench $(RECIPE)

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not gpu" $(PYTEST_ARGS) tests

test-gpu: $(STAMP)
	$(BIN)/python -m pytest -q -m gpu tests/gpu

lint: $(STAMP)
	$(BIN)/ruff check orchestrator tests scripts bench

schema: $(STAMP)
	$(BIN)/orchestrator recipe schema > recipes/recipe.schema.json

docs: $(STAMP)
	$(BIN)/python scripts/gen_recipe_reference.py > docs/RECIPE.md

## Containers (docker/): the orchestrator on the pinned TRT-LLM image; serving with docker compose.
DOCKER_TAG  ?= trtllm-orchestrator:latest
DOCKER_BASE ?=
docker-build:
	docker build -f docker/Dockerfile -t $(DOCKER_TAG) $(if $(DOCKER_BASE),--build-arg BASE_IMAGE=$(DOCKER_BASE)) .

docker-serve: $(STAMP)
	WORKDIR="$$($(BIN)/python -c 'import sys; from orchestrator.recipe.loader import load_recipe; print(load_recipe(sys.argv[1]).resolved_workdir.resolve())' $(RECIPE))" \
	  RECIPE=$(RECIPE) ORCHESTRATOR_IMAGE=$(DOCKER_TAG) docker compose -f docker/compose.yaml up -d

clean:
	rm -rf work
