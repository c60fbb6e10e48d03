"""The plan: every run a table needs, printed as commands that start exactly the run the notebook will
look for (one identity whoever starts it), with GPU-hours, wall time, disk and SLURM scripts."""
from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from apclip_core.engine.config import run_dir_for
from apclip_core.engine.train_cli import parse_command_line
from apclip_core.paper import experiments, plan
from apclip_core.paper.preflight import notebook_parameters

REPO = Path(__file__).resolve().parent.parent
TABLE2 = REPO / "notebooks" / "12_table2_base_to_novel.ipynb"


@pytest.fixture(scope="module")
def table2(splits_root, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("APCLIP_SPLITS", str(splits_root))
        mp.setenv("APCLIP_RUNS", str(runs))
        params = notebook_parameters(TABLE2, "paper")
        planned = plan.plan_runs("table2_base_to_novel", params, gpus_per_node=8,
                                 speed=plan.Throughput(120.0, "test figure"))
        yield planned, params, runs, mp


def test_table2_paper_plan_is_six_runs_whose_commands_start_the_runs_the_notebook_looks_for(table2):
    planned, params, runs, _ = table2
    assert [(r.method, r.seed) for r in planned] == [(m, s) for m in ("ViFi-CLIP", "AP-CLIP") for s in (1, 2, 3)]
    assert len({r.name for r in planned}) == 6 and all(r.status == "not started" for r in planned)
    for r in planned:
        assert r.command[:3] == ["torchrun", "--nproc_per_node", "8"] and "--resume" in r.command
        # what the notebook's experiments.run would train for this method and seed
        expected = experiments.make_config(params["config"], r.method,
                                           protocol_args={"dataset": "hmdb51", "seed": r.seed})
        args, cfg = parse_command_line(r.command[r.command.index("train") + 1:])  # train's own parsing
        assert asdict(cfg) | {"output_dir": None} == asdict(expected)
        assert Path(cfg.output_dir) == run_dir_for(expected) == runs / expected.name
        # the real lists: 416 base training videos (16 shots x 26 classes), 780 + 750 evaluation videos
        assert (r.train_videos, r.eval_videos) == (416, 1530)
        assert 2.2 < r.disk_gb < 2.6  # ViT-B/16: last.pt 1.8 GB + checkpoint 0.6 GB, as measured on a run
    one = planned[0]
    slower = plan.plan_runs("table2_base_to_novel", {**notebook_parameters(TABLE2, "paper"), "methods": ["ViFi-CLIP"],
                                                     "seeds": [1]}, speed=plan.Throughput(60.0, "half"))
    assert slower[0].name == one.name and slower[0].gpu_hours == pytest.approx(2 * one.gpu_hours)


def test_a_finished_run_started_by_the_command_is_reused_by_the_notebook(table2):
    planned, params, runs, mp = table2
    r = planned[3]
    run_dir = Path(r.run_dir)
    run_dir.mkdir(parents=True)
    # what a finished training leaves (engine/train.py): metrics with the final evaluation and checksums
    (run_dir / "metrics.json").write_text(json.dumps({"param_checksums": {"x": 1.0},
                                                      "epochs": [{"eval": {"hmdb51_base_val": 70.0,
                                                                           "hmdb51_novel_val": 50.0, "hm": 58.3}}]}))
    again = plan.plan_runs("table2_base_to_novel", {**params, "methods": [r.method], "seeds": [r.seed]})
    assert again[0].status == "finished"
    reused = experiments.run(params["config"], r.method, protocol_args={"dataset": "hmdb51", "seed": r.seed})
    assert reused["run_dir"] == str(run_dir) and reused["hm"] == 58.3  # found, not trained again


def test_slurm_scripts_are_valid_bash_with_srun_and_multi_node_torchrun(table2, tmp_path, capsys):
    planned, params, runs, mp = table2
    assert plan.main([str(TABLE2), "--profile", "paper", "--gpus", "4", "--nodes", "2",
                      "--slurm", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "6 training run(s) on 8 GPU(s) (2 node(s) x 4)" in out and "GPU-hours" in out and "disk" in out
    scripts = sorted(tmp_path.glob("*.sbatch"))
    assert [s.stem for s in scripts] == sorted(r.name for r in planned)
    for script in scripts:
        subprocess.run(["bash", "-n", str(script)], check=True)
        text = script.read_text()
        assert "#SBATCH --nodes=2" in text and "#SBATCH --gpus-per-node=4" in text
        assert "srun" in text and '--nnodes "$SLURM_NNODES" --nproc_per_node 4' in text
        assert f"export APCLIP_RUNS={shlex.quote(str(runs))}" in text
        train_args = shlex.split(text.split("-m apclip_core train", 1)[1].split(" &\n", 1)[0])
        ran = parse_command_line(train_args)[1]
        assert Path(ran.output_dir).name == script.stem and ran.save_every_minutes == plan.SLURM_SAVE_MINUTES
        # preemptible: requeued, warned with USR1 whose handler asks the run to save, log appended to
        for line in ("#SBATCH --requeue", f"#SBATCH --signal=B:USR1@{plan.PREEMPT_NOTICE_S}",
                     "#SBATCH --open-mode=append", "trap on_notice USR1", 'scontrol requeue "$SLURM_JOB_ID"',
                     'export SRUN_CPUS_PER_TASK="$SLURM_CPUS_PER_TASK"', "##SBATCH --partition=<partition>",
                     "##SBATCH --account=<account>"):
            assert line in text, line
        assert f"touch {shlex.quote(str(Path(ran.output_dir) / 'save.request'))} " in text
        assert ":29500" not in text and '--rdzv_endpoint "$head:$port"' in text


def test_costs_use_the_bench_gpu_figure_when_recorded_else_say_they_assume(tmp_path):
    results = tmp_path / "latest.json"
    assert plan.throughput(results).source.startswith("ASSUMED")
    results.write_text(json.dumps({"sections": {"gpu": {"details": {"device": "NVIDIA H200", "e2e_videos_per_s": 50.0,
                                                                    "sizes": {"frames": 8}}}}}))
    measured = plan.throughput(results)
    assert measured.train_frames_per_s == 400.0 and "NVIDIA H200" in measured.source


@pytest.mark.slow
def test_the_notebook_launches_its_runs_with_torchrun_and_reuses_them(tmp_path, monkeypatch, bench_root):
    """APCLIP_GPUS=2 (make reproduce-tableN GPUS=2): run() launches the plan's command over 2 gloo processes;
    asked again without it, the same run is found finished and reused, not trained in-process."""
    monkeypatch.setenv("APCLIP_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    small = dict(pretrained=None, epochs=1, max_steps_per_epoch=2, batch_size=2, effective_batch_size=4, frames=2,
                 temporal_views=1, spatial_crops=1, eval_max_videos=4, num_workers=0, warmup_epochs=0)
    monkeypatch.setenv("APCLIP_GPUS", "2")
    first = experiments.run("bench_base2novel", "ViFi-CLIP", **small)
    run_dir = Path(first["run_dir"])
    assert json.loads((run_dir / "metrics.json").read_text())["world_size"] == 2
    assert "x 2 process(es)" in (run_dir / "train.log").read_text()
    monkeypatch.delenv("APCLIP_GPUS")
    stamp = (run_dir / "last.pt").stat().st_mtime_ns
    again = experiments.run("bench_base2novel", "Single", **small)  # the same training under Table 6's name
    assert again["run_dir"] == str(run_dir) and (run_dir / "last.pt").stat().st_mtime_ns == stamp


def test_measured_throughput_is_cached_reused_and_scales_the_costs(splits_root, tmp_path, monkeypatch):
    """plan --measure times real training steps of each run's shape on this device (apclip-tiny on CPU here:
    ViT-B/16 on a GPU) and caches them. A CPU's figure serves the CPU estimates of train and preflight, never
    the plan's GPU-hours; a GPU's cached figure is reused by later plans, its evaluation time a lower bound."""
    from apclip_core.engine import cost, throughput

    monkeypatch.setenv("APCLIP_SPLITS", str(splits_root))
    monkeypatch.setenv("APCLIP_RUNS", str(tmp_path))
    monkeypatch.setattr(throughput, "TIMED_STEPS", 2)  # the CI machine's 2 cores are shared: short, same steps
    tiny = {**notebook_parameters(TABLE2, "paper"), "methods": ["AP-CLIP"], "seeds": [1, 2],
            "overrides": {"model_name": "apclip-tiny", "pretrained": None, "batch_size": 2, "frames": 4,
                          "eval_batch_size": 2}}
    before = plan.plan_runs("table2_base_to_novel", tiny)
    assert before[0].throughput.startswith(("ASSUMED", "measured by the bench"))  # nothing measured here yet
    start = time.monotonic()
    runs = plan.plan_runs("table2_base_to_novel", tiny, measure=True, device="cpu")
    assert time.monotonic() - start < 60  # seconds, not minutes (a shared 2-core CI machine: generous)
    entries = json.loads((tmp_path / "throughput.json").read_text())["measurements"]
    assert len(entries) == 1  # both seeds have the same shape: measured once
    work = throughput.Workload(**entries[0]["workload"])
    assert throughput.recorded(work) is None  # no GPU measured it
    cpu = throughput.recorded(work, device="cpu")
    assert cpu.device.startswith("cpu") and cpu.workload.class_prompts == 26 * 8  # 26 base classes x k=8
    assert "data loading not included" in cpu.describe()
    # the CPU's figure is not a GPU's: the same costs as before measuring, and the plan says why
    assert [r.gpu_hours for r in runs] == [r.gpu_hours for r in before]
    assert runs[0].throughput.startswith(before[0].throughput.split(";")[0]) and "not a GPU's figure" in runs[0].throughput
    cfg = experiments.make_config(tiny["config"], "AP-CLIP", protocol_args={"dataset": "hmdb51", "seed": 1},
                                  **tiny["overrides"])
    days, source = cost.cpu_estimate(cfg, 416)  # train's and the preflight's CPU estimate: this CPU's figure
    assert days == pytest.approx(416 * cfg.epochs * cfg.frames / cpu.train_frames_per_s / 86400)
    assert source.startswith("measured on cpu")
    big = experiments.make_config(tiny["config"], "AP-CLIP", model_name="ViT-B-16", pretrained=None)
    assert cost.cpu_estimate(big, 416)[1].startswith("ASSUMED")  # never measured: the stated constant

    # a GPU's measurement of the same shape (as `make gpu-check` records it) is what the plan takes
    gpu = dataclasses.replace(cpu, device="NVIDIA H200", train_frames_per_s=4000.0, eval_frames_per_s=9000.0)
    throughput.record(gpu)
    monkeypatch.setattr(throughput, "measure", lambda *a, **k: pytest.fail("measured again"))
    on_gpu = plan.plan_runs("table2_base_to_novel", tiny)  # no --measure: the cached GPU figure
    assert all(r.throughput == gpu.describe() for r in on_gpu)
    train_s = 416 * cfg.epochs * cfg.frames / 4000.0
    eval_s = 1530 * cfg.frames * cfg.temporal_views * cfg.spatial_crops / 9000.0
    assert on_gpu[0].gpu_hours == pytest.approx((train_s + eval_s) / 3600)
    assert on_gpu[0].wall_hours == pytest.approx((train_s + eval_s) / 8 / 3600)  # evaluation sharded too
    text = plan.render("table2_base_to_novel", on_gpu, gpus_per_node=8, nodes=1)
    assert "a lower bound, compute only, video decoding not included" in text  # random frames: no decode timed
    throughput.record(dataclasses.replace(gpu, train_frames_per_s=2000.0, eval_frames_per_s=4500.0))
    slower = plan.plan_runs("table2_base_to_novel", tiny)
    assert slower[0].gpu_hours == pytest.approx(2 * on_gpu[0].gpu_hours)
    assert cost.cpu_estimate(cfg, 416)[0] == pytest.approx(days)  # the GPU's figure is not the CPU's either
    assert "lower bound" not in plan.render("table2_base_to_novel", before, gpus_per_node=8, nodes=1)


def test_run_names_say_the_dataset_seed_and_shots_they_ran_and_keep_their_identity_hash():
    """`ls runs/` tells Table 5's SSv2 seed 3 from Table 2's HMDB-51 seed 1; only the readable part changes."""
    ssv2 = experiments.make_config("base2novel", "AP-CLIP", protocol_args={"dataset": "ssv2", "seed": 3})
    hmdb = experiments.make_config("base2novel", "AP-CLIP", protocol_args={"dataset": "hmdb51", "seed": 3})
    assert ssv2.name.startswith("base2novel_ssv2_s3-") and hmdb.name.startswith("base2novel_hmdb51_s3-")
    assert ssv2.name.split("-")[-1] != hmdb.name.split("-")[-1]
    assert experiments.make_config("few_shot", "AP-CLIP", protocol_args={"dataset": "ucf101", "k": 8}
                                   ).name.startswith("few_shot_ucf101_k8-")
    assert experiments.make_config("bench_base2novel", "AP-CLIP", protocol_args={"seed": 2}
                                   ).name.startswith("bench_base2novel-")   # a name without such tokens stays
    assert experiments.make_config("base2novel", "AP-CLIP", name="mine").name.startswith("mine-")


def test_evaluation_is_priced_where_the_training_list_is_not_here(splits_root, monkeypatch, tmp_path):
    """The full Kinetics-400 training list is built locally (not in the public lists): the plan still counts the
    evaluation every K-400 run makes, from the evaluation lists alone (issue 23, item 7)."""
    from apclip_core.data.annotations import read_video_list

    monkeypatch.setenv("APCLIP_SPLITS", str(splits_root))
    monkeypatch.setenv("APCLIP_RUNS", str(tmp_path))
    lists = splits_root / "datasets_splits"
    assert not (lists / "k400_splits" / "train.txt").exists()
    count = lambda *names: sum(len(read_video_list(lists / n)) for n in names)  # noqa: E731
    zero_shot = experiments.make_config("k400_zero_shot", "AP-CLIP")
    expected = count(*(f"{d}_splits/val{i}.txt" for d in ("hmdb", "ucf") for i in (1, 2, 3)),
                     *(f"k600_splits/ZS_split{i}_K600_eval.txt" for i in (1, 2, 3)))
    assert plan._eval_videos(zero_shot) == expected == 58_001  # HMDB-51 3 x 1,530, UCF-101 11,213, K600 42,198
    assert plan._eval_videos(experiments.make_config("fully_supervised", "AP-CLIP")) == count("k400_splits/val.txt")


def test_the_plan_warns_when_the_gpus_change_the_effective_batch(table2, capsys):
    """Base-to-novel's effective batch is 64 (batch 8 per GPU): 2 nodes of 8 GPUs would realise 128."""
    planned, params, runs, mp = table2
    assert plan.main([str(TABLE2), "--profile", "paper", "--gpus", "8", "--nodes", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("WARNING: effective batch 128 on 16 GPU(s), not the config's 64") == 6
    assert plan.main([str(TABLE2), "--profile", "paper", "--gpus", "8"]) == 0
    assert "WARNING: effective batch" not in capsys.readouterr().out



def test_ap_clips_text_tower_is_priced_unless_the_figure_measured_the_runs_own_step(table2):
    """AP-CLIP encodes C x k prompts per step (issue 23, item 9): an unmeasured figure (a one-prompt step's) is
    scaled by the FLOP count's factor and says so; a measurement of the run's own step is taken as it is."""
    from apclip_core.engine.text_cost import text_cost

    planned, params, runs, _ = table2
    vifi, ap = (next(r for r in planned if r.method == m and r.seed == 1) for m in ("ViFi-CLIP", "AP-CLIP"))
    cost = text_cost(experiments.make_config(params["config"], "AP-CLIP", protocol_args={"dataset": "hmdb51", "seed": 1}))
    assert cost.prompts == 26 * 8 and cost.tokens > cost.reference_tokens and cost.factor > 1.1
    train_hours = lambda r: r.gpu_hours - r.eval_hours * 8  # noqa: E731  (evaluation: wall over 8 GPUs)
    assert train_hours(ap) == pytest.approx(cost.factor * train_hours(vifi))
    assert "text tower ASSUMED" in ap.throughput and "text tower" not in vifi.throughput
    measured = plan.Throughput(120.0, "measured on the run's shape", 360.0, compute_only=True)
    again = plan.plan_runs("table2_base_to_novel", {**params, "methods": ["ViFi-CLIP", "AP-CLIP"], "seeds": [1]},
                           speed=measured)
    assert train_hours(again[1]) == pytest.approx(train_hours(again[0]))


def test_partial_data_and_limits_are_priced_as_they_will_run(splits_root, tmp_path, monkeypatch):
    """missing_videos: skip (PARTIAL=1), max_videos_per_split, eval_max_videos and max_steps_per_epoch: the plan
    counts what the run will decode and train on, not the whole lists (issue 23, item 9)."""
    from apclip_core.data.annotations import read_video_list

    monkeypatch.setenv("APCLIP_SPLITS", str(splits_root))
    monkeypatch.setenv("APCLIP_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("APCLIP_DATA", str(tmp_path / "data"))
    lists = splits_root / "datasets_splits" / "base2novel_splits" / "hmdb_splits"
    train = read_video_list(lists / "fs_base_s1_train.txt")
    for record in train[:30]:  # 30 of the 416 training videos on disk, no evaluation video
        path = tmp_path / "data" / "hmdb51" / record.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0")
    params = {**notebook_parameters(TABLE2, "paper"), "methods": ["ViFi-CLIP"], "seeds": [1]}
    partial = {**params, "overrides": {"missing_videos": "skip", "max_steps_per_epoch": 1}}
    run, = plan.plan_runs("table2_base_to_novel", partial, gpus_per_node=2, speed=plan.Throughput(120.0, "test"))
    assert (run.train_videos, run.train_listed, run.train_per_epoch) == (30, 416, 8 * 2)  # batch 8 x 2 GPUs
    assert (run.eval_videos, run.eval_listed) == (0, 1530)
    full, = plan.plan_runs("table2_base_to_novel", params, gpus_per_node=2, speed=plan.Throughput(120.0, "test"))
    assert run.gpu_hours == pytest.approx((full.gpu_hours - full.eval_hours * 2) * 16 / 416)  # no evaluation
    subset = {**params, "overrides": {"eval_max_videos": 100, "max_videos_per_split": 200}}
    capped, = plan.plan_runs("table2_base_to_novel", subset, gpus_per_node=2, speed=plan.Throughput(120.0, "test"))
    assert (capped.train_videos, capped.eval_videos) == (200, 2 * 100)
    text = plan.render("table2_base_to_novel", [run], gpus_per_node=2, nodes=1)
    assert "30 training videos (of 416 listed), 16 per epoch (max_steps_per_epoch), 0 evaluation videos " \
           "(of 1,530 listed)" in text


def test_plan_all_counts_the_runs_tables_share_once(splits_root, tmp_path, monkeypatch):
    """Tables 6 and 7 train several of the same runs (same identity, same folder): `make plan-all` (every table
    notebook to one `plan`) prices each once."""
    monkeypatch.setenv("APCLIP_SPLITS", str(splits_root))
    monkeypatch.setenv("APCLIP_RUNS", str(tmp_path))
    dry = subprocess.run(["make", "-n", "plan-all", "PROFILE=paper", "STAMP=", "BIN=bin"], cwd=REPO, capture_output=True,
                         text=True).stdout
    assert [Path(a).stem for a in shlex.split(dry) if a.endswith(".ipynb")] == [
        p.stem for p in sorted((REPO / "notebooks").glob("1[1-7]_table*.ipynb"))]
    notebooks = [REPO / "notebooks" / f"{n}.ipynb" for n in ("16_table6_prompt_strategies", "17_table7_maka_ablation")]
    speed = plan.Throughput(120.0, "test figure")
    plans = {nb.stem.split("_", 1)[1]: plan.plan_runs(nb.stem.split("_", 1)[1], notebook_parameters(nb, "paper"),
                                                      speed=speed) for nb in notebooks}
    out = plan.render_shared(plans, gpus_per_node=8, nodes=1)
    distinct = {r.name: r for runs in plans.values() for r in runs}
    asked = sum(len(runs) for runs in plans.values())
    assert 0 < len(distinct) < asked  # they do share runs
    assert f"all 2 tables: {asked} runs asked for, {len(distinct)} distinct ({asked - len(distinct)} shared" in out
    naive = sum(r.gpu_hours for runs in plans.values() for r in runs)
    assert f"{sum(r.gpu_hours for r in distinct.values()):.1f} GPU-hours of compute (naive sum over the tables: " \
           f"{naive:.1f})" in out
