# apclip: every entry point a user needs. `make help` lists them.
# The environment (.venv) is created on first use from the pinned lock (requirements.txt +
# constraints.txt) and brought up to date (pip, incremental) when those files change.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KERNEL := apclip
PROFILE ?= smoke
OUT := outputs/notebooks
# Quiet progress bars under papermill/pytest: they would fill output notebooks line by line.
export APCLIP_PROGRESS ?= 0
export PYTHONHASHSEED := 0

# Live progress and "reused from cache" lines go straight to the terminal make runs in (never into
# the stored notebooks); empty when make is not run from a terminal (CI), and then they are off.
export APCLIP_TERMINAL ?= $(shell tty -s 2>/dev/null && tty)

# PARAMS=file.yaml (or several: PARAMS="a.yaml b.yaml", later files winning): notebook parameters on top of the profile's (e.g. overrides: {pretrained: /path/w.pt,
# quick_gelu: true}; dicts merge key by key); preflight, plan and the notebook read the same.
PARAMS ?=
PARAMS_ARGS = $(foreach p,$(PARAMS),--params $(p))
# The executed notebook's name: the profile (outside smoke) and the PARAMS files' names after the notebook's, so a
# paper run or one on other parameters never replaces another's (outputs/notebooks/12_table2_base_to_novel.paper.ucf101.ipynb
# for PROFILE=paper PARAMS=ucf101.yaml); the smoke profile's keeps the notebook's own name.
space := $() $()
RUN_SUFFIX = $(subst $(space),,$(if $(filter-out smoke,$(PROFILE)),.$(PROFILE),)$(foreach p,$(PARAMS),.$(basename $(notdir $(p)))))
executed = $(OUT)/$(basename $(notdir $(1)))$(RUN_SUFFIX).ipynb

# papermill through `python -m apclip_core notebook`: the apclip kernel (over IPC: no TCP warnings), never
# in place, the paper profile as a YAML params file; it says the stage ($(2): i/n) and its expected time.
define papermill
	@mkdir -p $(OUT)
	@$(BIN)/python -m apclip_core notebook $(1) $(call executed,$(1)) --kernel $(KERNEL) $(if $(2),--stage $(2),) \
		$(if $(filter paper,$(PROFILE)),-f notebooks/params/$(basename $(notdir $(1))).paper.yaml,) $(foreach p,$(PARAMS),-f $(p)) \
		$(PARTIAL_FLAG)
endef
# PARTIAL=1: run on the videos present. The preflight reports the missing ones (counts per list) instead of
# stopping, the runs skip them before the model sees them (config missing_videos: skip), and the table lists
# every deviation from the paper's protocol instead of saying "same protocol".
PARTIAL_FLAG := $(if $(filter 1 yes true,$(PARTIAL)),--partial,)

.PHONY: help install lock lab demo test test-fast clean reproduce-all reproduce-table1-zoo plan-table1-zoo plan-all run-notebook figures prompts bench-prompts bench gpu-check
.PHONY: check-data data-splits data-hmdb51 data-ucf101 data-check-k400 data-check-k600 data-check-ssv2
DATA ?= $(or $(APCLIP_DATA),data)

help:
	@echo "make demo    - the main job: embedded benchmark -> tiny CLIP -> base-to-novel table in figures/"
	@echo "make test    - unit tests + every notebook under nbval (smoke profile)"
	@echo "make install - create .venv from the pinned lock (done automatically on first use)"
	@echo "make lab     - JupyterLab on the project's kernel ($(KERNEL))"
	@echo "make reproduce-table1 ... reproduce-table7 [PROFILE=smoke|paper] [GPUS=N] [PARAMS=file.yaml] [PARTIAL=1] - one paper"
	@echo "      table, ours beside the paper's; PARAMS: parameters on top of the profile (e.g. a local weights file);"
	@echo "      PARTIAL=1: run on the videos present, the table lists what deviates from the paper's protocol"
	@echo "make reproduce-all [PROFILE=...]   - all seven tables"
	@echo "make reproduce-table1-zoo [PROFILE=smoke|paper] [PARAMS=..] [PARTIAL=1] - Table 1's zoo: released models converted by"
	@echo "      'python -m apclip_core convert' into runs/zoo/, no retraining, 3 prompt strategies x mean/MAKA"
	@echo "make plan-table1-zoo PROFILE=paper - what the zoo needs (it trains nothing): models, videos, estimated GPU time"
	@echo "make plan-table1 ... plan-table7 PROFILE=paper [GPUS=8] [NODES=1] [SLURM=dir] [MEASURE=1] [PARAMS=..] [PARTIAL=1] - every run a table needs:"
	@echo "      torchrun commands, GPU-hours, wall time, disk; SLURM=dir writes one batch script per run;"
	@echo "      MEASURE=1 times each run's training step on this machine's GPU first (seconds, cached for later plans)"
	@echo "make plan-all PROFILE=paper [GPUS=..] [NODES=..] [SLURM=dir] - every table's plan; the runs tables share counted once"
	@echo "make figures                       - Figure 5: attention maps and per-frame top-5 prompts"
	@echo "make gpu-check                     - on a GPU (< 8 min): CUDA tests, ViT-B/16 bf16 training steps, eval throughput -> bench/results/gpu_check.md"
	@echo "make bench                         - benchmarks (CPU < 5 min; GPU section when CUDA is present) -> bench/results/latest.md"
	@echo "make prompts DATASET=name LABELS=csv [MODEL=..] [BASE_URL=..] - generate prompts with an LLM; the labels file of"
	@echo "      each shipped set (in the protocol lists, labels/): hmdb51 hmdb_51_labels.csv, ucf101 ucf_101_labels.csv,"
	@echo "      k400 kinetics_400_labels.csv, k600_zs ZS_split1_K600.csv + ZS_split2_K600.csv + ZS_split3_K600.csv, ssv2 ssv2_labels.csv"
	@echo "make lock    - re-freeze constraints.txt from the current .venv"
	@echo "make data-splits              - fetch the ViFi-CLIP protocol lists at the pinned commit (sha256 checked)"
	@echo "make data-hmdb51 / data-ucf101 - download, extract (needs unar) and check HMDB-51 / UCF-101"
	@echo "make data-check-k400|k600|ssv2 - verify a manually downloaded dataset against its lists"

install: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@echo ">> installing into $(VENV) from requirements.txt + constraints.txt (first run: ~2 min, ~5 GB)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v "is ignored" || true
	set -o pipefail; $(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-r requirements.txt -c constraints.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "apclip (.venv)" > /dev/null
	@# Last step, loud on failure: the torch/torchvision trap shows up only at import time.
	$(BIN)/python -c "import torch, torchvision, open_clip, decord, av, papermill, nbval, openai; \
		print('>> environment OK: torch', torch.__version__, '| torchvision', torchvision.__version__, '| open_clip', open_clip.__version__)"
	@touch $(STAMP)

lock: $(STAMP)
	@{ echo "# Lock: every package of the tested environment (pip freeze of .venv), used as pip constraints."; \
	   echo "# Regenerate with 'make lock' after changing requirements.txt."; \
	   $(BIN)/python -m pip freeze --all --exclude-editable 2>/dev/null | grep -v "^pip==" \
	     | sed -e 's/^torch==\(.*\)$$/torch===\1/' -e 's/^torchvision==\(.*\)$$/torchvision===\1/'; } > constraints.txt
	@echo ">> wrote constraints.txt"

# Served from the project root, so outputs/notebooks/ and figures/ open too (the README sends users there);
# it starts in notebooks/. As root (containers) Jupyter refuses to start without --allow-root.
# It leaves `git status` clean: a shipped notebook is saved in its stored form (apclip_core.stored_notebooks:
# outputs and counts only in the NBVAL_CHECK_OUTPUT cells, as committed), and figures the notebooks draw go
# to outputs/figures/ (`make figures` and `make demo` write the tracked ones).
lab: $(STAMP)
	APCLIP_TERMINAL= APCLIP_PROGRESS=1 APCLIP_FIGURES=$(CURDIR)/outputs/figures $(BIN)/jupyter lab --notebook-dir=. \
		--ServerApp.default_url=/lab/tree/notebooks \
		--ContentsManager.pre_save_hook=apclip_core.stored_notebooks.pre_save_hook \
		$(if $(filter 0,$(shell id -u)),--allow-root,) $(LAB_ARGS)

# The main job: render the embedded benchmark, pretrain the tiny CLIP (cached), then train and
# evaluate single-prompt/mean-pool against action-conditioned prompts/MAKA on base-to-novel.
demo: $(STAMP)
	$(call papermill,notebooks/00_embedded_benchmark.ipynb,1/2)
	$(call papermill,notebooks/12_table2_base_to_novel.ipynb,2/2)
	@$(BIN)/python -m apclip_core report --table table2_base_to_novel --notebook $(call executed,12_table2_base_to_novel.ipynb)

# One target per table: preflight (stops at once, saying what is missing), papermill, then the table.
# GPUS=N: each training the table needs is launched with torchrun over N processes (the plan's command).
reproduce-table%: $(STAMP)
	@nb=$$(ls notebooks/1$*_table$*_*.ipynb 2>/dev/null | head -1); \
	 test -n "$$nb" || { echo "no notebook for table $* (valid: 1-7)"; exit 2; }; \
	 $(BIN)/python -m apclip_core preflight $$nb --profile $(PROFILE) $(PARAMS_ARGS) $(PARTIAL_FLAG) && \
	 APCLIP_GPUS=$(GPUS) $(MAKE) --no-print-directory run-notebook NB=$$nb && \
	 $(BIN)/python -m apclip_core report --table $$(basename $$nb .ipynb | cut -d_ -f2-) --notebook $(OUT)/$$(basename $$nb .ipynb)$(RUN_SUFFIX).ipynb

# Table 1's zoo (notebook 18): the peers' released models, converted into runs/zoo/, evaluated with no training;
# PARTIAL=1 evaluates on the videos present (the missing ones skipped and counted per split, said in the table).
# An explicit rule, so it wins over reproduce-table% (whose stem would be "1-zoo"); notebook 18 is not
# matched by that rule's notebooks/1N_tableN_* either.
reproduce-table1-zoo: $(STAMP)
	@nb=notebooks/18_table1_zoo.ipynb; \
	 $(BIN)/python -m apclip_core preflight $$nb --profile $(PROFILE) $(PARAMS_ARGS) $(PARTIAL_FLAG) && \
	 $(MAKE) --no-print-directory run-notebook NB=$$nb && \
	 $(BIN)/python -m apclip_core report --table table1_zoo --notebook $(call executed,18_table1_zoo.ipynb)

# Every run a table needs, before any starts: torchrun commands, GPU-hours, wall time, disk.
# make plan-table2 PROFILE=paper GPUS=8 [NODES=2] [SLURM=jobs/] [MEASURE=1]  (SLURM: one batch script per run;
# MEASURE=1: costs from a few training steps timed on this machine's device, cached in <runs>/throughput.json; only
# a GPU's figure sets GPU-hours, a CPU's serves the CPU estimates)
NODES ?= 1
# The zoo trains nothing: its plan says what it needs and the evaluation's estimated time (explicit, as above).
plan-table1-zoo: $(STAMP)
	@$(BIN)/python -m apclip_core plan notebooks/18_table1_zoo.ipynb --profile $(PROFILE) $(PARAMS_ARGS) $(PARTIAL_FLAG)

plan-table%: $(STAMP)
	@nb=$$(ls notebooks/1$*_table$*_*.ipynb 2>/dev/null | head -1); \
	 test -n "$$nb" || { echo "no notebook for table $* (valid: 1-7)"; exit 2; }; \
	 $(BIN)/python -m apclip_core plan $$nb --profile $(PROFILE) $(PARAMS_ARGS) $(PARTIAL_FLAG) --gpus $(or $(GPUS),8) --nodes $(NODES) $(if $(SLURM),--slurm $(SLURM),) $(if $(MEASURE),--measure,)

# Every table's plan, then the runs tables share (Tables 1, 6 and 7 reuse runs) counted once in the totals.
plan-all: $(STAMP)
	@$(BIN)/python -m apclip_core plan $(sort $(wildcard notebooks/1[1-7]_table*.ipynb)) --profile $(PROFILE) $(PARAMS_ARGS) $(PARTIAL_FLAG) --gpus $(or $(GPUS),8) --nodes $(NODES) $(if $(SLURM),--slurm $(SLURM),) $(if $(MEASURE),--measure,)

reproduce-all: $(foreach t,1 2 3 4 5 6 7,reproduce-table$(t))

run-notebook: $(STAMP)
	$(call papermill,$(NB))

figures: $(STAMP)
	$(call papermill,notebooks/20_interpretability_figure5.ipynb)
	@ls -1 $${APCLIP_FIGURES:-figures}/figure5* 2>/dev/null | sed 's/^/written: /'

bench: $(STAMP)
	$(BIN)/python bench/run.py

# On a GPU machine, < 8 min on one H200: CUDA tests, paper-profile training steps (ViT-B/16, 224, 8 frames,
# bf16, torchrun + the training loader), evaluation throughput, the bench's GPU section -> bench/results/gpu_check.*
gpu-check: $(STAMP)
	$(BIN)/python bench/gpu_check.py

# Prompt generation with an LLM (key from OPENAI_API_KEY only, or an OpenAI-compatible BASE_URL).
# Generated sets go to PROMPTS_OUT, never over the shipped prompts/ (an incomplete one as <name>.partial.json).
PROMPTS_OUT ?= $(or $(APCLIP_PROMPTS),outputs/prompts)
MODEL ?= gpt-4o
BASE_URL ?=
prompts: $(STAMP)
	@test -n "$(DATASET)" && test -n "$(LABELS)" || { echo "usage: make prompts DATASET=<name> LABELS=<labels csv> [MODEL=..] [BASE_URL=http://host:port/v1]"; exit 2; }
	$(BIN)/python -m apclip_core prompts --dataset $(DATASET) --labels $(LABELS) --model $(MODEL) $(if $(BASE_URL),--base-url $(BASE_URL),) --out $(PROMPTS_OUT)/$(DATASET).json
	$(BIN)/python -m apclip_core validate-prompts $(PROMPTS_OUT)/$(DATASET).json --labels $(LABELS)

bench-prompts: $(STAMP)
	$(BIN)/python -m apclip_core prompts --from-benchmark

# Unit tests and every notebook under nbval, in one pytest run (one summary line).
test: $(STAMP)
	APCLIP_TERMINAL= $(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

test-fast: $(STAMP)
	APCLIP_TERMINAL= $(BIN)/python -m pytest tests -m "not slow" -p no:cacheprovider

# --- real datasets (see README, "Getting the datasets ready") ---
data-splits: $(STAMP)
	$(BIN)/python -m apclip_core data download-splits

data-hmdb51 data-ucf101: data-%: $(STAMP)
	@command -v unar >/dev/null || command -v unrar >/dev/null || command -v bsdtar >/dev/null || \
		{ echo "RAR extraction needs a backend: sudo apt-get install unar (macOS: brew install unar)"; exit 1; }
	$(BIN)/python -m apclip_core data prepare $* --root $(DATA)/$*

# make check-data DATASET=k400|k600|ssv2|hmdb51|ucf101 [ROOT=folder]: report missing/empty/undecodable videos
DATASET_DIR = $(or $(ROOT),$(DATA)/$(patsubst k400,kinetics400,$(patsubst k600,kinetics600,$(DATASET))))
check-data: $(STAMP)
	@test -n "$(DATASET)" || { echo "usage: make check-data DATASET=k400|k600|ssv2|hmdb51|ucf101 [ROOT=folder]"; exit 2; }
	$(BIN)/python -m apclip_core data check $(DATASET) --root $(DATASET_DIR)

data-check-k400: $(STAMP)
	$(BIN)/python -m apclip_core data check k400 --root $(DATA)/kinetics400
data-check-k600: $(STAMP)
	$(BIN)/python -m apclip_core data check k600 --root $(DATA)/kinetics600
data-check-ssv2: $(STAMP)
	$(BIN)/python -m apclip_core data check ssv2 --root $(DATA)/ssv2

clean:
	rm -rf outputs .cache/apclip .pytest_cache
