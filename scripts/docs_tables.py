#!/usr/bin/env python
"""Write the generated tables of README.md and docs/ from the committed JSON files and the package.

    python scripts/docs_tables.py           # rewrite every table between its markers
    python scripts/docs_tables.py --check   # rewrite nothing; exit 1 if a page is out of date (tests/test_docs.py)

A page asks for a table with two markers:

    <!-- table: NAME -->
    <!-- /table -->

Everything between them is rewritten: the table, its protocol, and a line naming the JSON it came from and
the command of the run. NAME is either a file docs/results/NAME.json (NAME:VIEW picks a view defined in it:
fewer columns, for the README) or one of the tables computed from the benchmark files in docs/benchmark/
(BENCHMARK_TABLES below), or one read from the package itself (pure Python, no TensorFlow): `registry`,
the registered training methods (few_shot.methods; docs/methods/index.md), and `run_files`, the files
`--overwrite` removes (few_shot.run_folder.RUN_FILES, few_shot.pretraining.config.OUTPUTS; docs/runs.md).
A re-run of an experiment updates its JSON (a change of the package, its code); this script then
updates every page.

docs/results/NAME.json: {"title", "command" (a string, a list of lines, or null), "source", "protocol",
"columns": [{"name", "align": "left"|"right", "fmt": a format spec, "unit"}], "rows": [[cell, ...]],
optional "views", "notes", "run_note"}. A cell is a number, a string, null ("-") or a dict: {"mean", "std",
["values"]}, {"values", "epochs"}, {"pair": [a, b]}, {"value", ["share", "prefix", "suffix", "unit", "fmt"]},
{"candidates": [[pattern, accuracy], ...]}; "bold": true emphasises it.
"""
import argparse
import glob
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "docs", "results")
BENCH = os.path.join(ROOT, "docs", "benchmark")
GENERATOR = "python scripts/docs_tables.py"
MARKER = re.compile(r"^<!-- table: (?P<name>[\w:.-]+) -->\n(?P<body>.*?)^<!-- /table -->$", re.M | re.S)


# ----------------------------------------------------------------------------------------------- cells

def number(x, fmt=None):
    if isinstance(x, bool):
        return "yes" if x else "no"
    if fmt is None:
        return str(x)
    if fmt == ",":
        return f"{x:,}"
    if fmt == "d":
        return f"{round(x):d}"
    return format(x, fmt)


def with_unit(text, unit):
    if not unit:
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


def cell(c, column):
    """One table cell as markdown text."""
    fmt, unit = column.get("fmt"), column.get("unit")
    if c is None:
        return "-"
    if isinstance(c, str):
        return c
    if not isinstance(c, dict):
        return with_unit(number(c, fmt), unit)
    fmt = c.get("fmt", fmt)
    unit = c.get("unit", unit)
    tail = ""
    if "mean" in c:
        main = f"{number(c['mean'], fmt)} ± {number(c['std'], fmt)}"
        if "values" in c:
            tail = " (" + ", ".join(number(v, c.get("values_fmt", fmt)) for v in c["values"]) + ")"
    elif "epochs" in c:
        main = ", ".join(f"{number(v, fmt)} (ep {e})" for v, e in zip(c["values"], c["epochs"]))
    elif "pair" in c:
        main = " / ".join(number(v, fmt) for v in c["pair"])
    elif "candidates" in c:
        main = "; ".join(f"`{p}` {number(a, fmt)}" for p, a in c["candidates"])
    elif "value" in c:
        main = with_unit(number(c["value"], fmt), unit)
        if "share" in c:
            tail = f" ({c['share']}%)"
    else:
        raise ValueError(f"a cell of unknown shape: {c!r}")
    if c.get("bold"):
        main = f"**{main}**"
    return c.get("prefix", "") + main + tail + c.get("suffix", "")


def markdown_table(columns, rows):
    def line(cells):
        return "| " + " | ".join(cells) + " |"
    out = [line([c["name"] for c in columns]),
           "|" + "|".join("---:" if c.get("align") == "right" else "---" for c in columns) + "|"]
    out += [line([cell(v, col) for v, col in zip(row, columns)]) for row in rows]
    return out


def view(table, name):
    """The columns of a named view: each takes the first non-null cell of its source columns."""
    spec = table["views"][name]
    columns, rows = [], [[] for _ in table["rows"]]
    for v in spec:
        source = table["columns"][v["from"][0]]
        columns.append(dict(source, name=v["name"]))
        for i, row in enumerate(table["rows"]):
            if "labels" in v:
                rows[i].append(v["labels"][i])
            else:
                rows[i].append(next((row[j] for j in v["from"] if row[j] is not None), None))
    return columns, rows


# ----------------------------------------------------------------------------------------------- blocks

def rel(page, path):
    """A link target from `page` (a path under ROOT) to `path` (under ROOT)."""
    return os.path.relpath(os.path.join(ROOT, path), os.path.dirname(os.path.join(ROOT, page))).replace(os.sep, "/")


def footer(page, sources, command, run_note=None):
    links = ", ".join(f"[{s}]({rel(page, s)})" for s in sources)
    text = f"Generated by `{GENERATOR}` from {links}; "
    if command is None:
        return [text + (run_note or "the command of the run was not recorded") + "."]
    lines = command if isinstance(command, list) else [command]
    if len(lines) == 1:
        return [text + f"the run: `{lines[0]}`"]
    return [text + "the run:", "", "```bash", *lines, "```"]


def results_block(page, name):
    base, _, view_name = name.partition(":")
    path = f"docs/results/{base}.json"
    table = load(path)
    columns, rows = view(table, view_name) if view_name else (table["columns"], table["rows"])
    out = markdown_table(columns, rows)
    if table.get("figure") and not view_name:
        out = [f"![{table['title']}]({rel(page, 'docs/' + table['figure'])})", ""] + out
    if table.get("protocol"):
        out += ["", "*Protocol:* " + table["protocol"]]
    return out + [""] + footer(page, [path], table.get("command"), table.get("run_note"))


def load(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return json.load(f)


# ------------------------------------------------------------------------- tables from docs/benchmark/

def bench_command(report):
    return "python " + " ".join(a for a in report["command"] if a != "--overwrite")


def speed_block(page, which):
    """The per-stage table of one benchmark run, rendered by the benchmark's own report code."""
    sys.path.insert(0, os.path.join(ROOT, "scripts", "bench"))
    import report as bench_report  # numpy only
    path = f"docs/benchmark/bench_{which}.json"
    r = load(path)
    text = bench_report.markdown(r, r["settings"]).split("\n")
    end = next(i for i, line in enumerate(text) if i > 3 and not line.startswith("|"))
    m = r["machine"]
    protocol = (f"{r['settings']['threads']} intra-op threads for TensorFlow and torch, each stage in its own forked "
                f"process; machine: {m['cpu_model']} VM, {m['cpu_count']} cores, {m['memory_gib']} GiB; "
                f"TensorFlow {m['tensorflow']}, Keras {m['keras']}, torch {m['torch']}, transformers "
                f"{m['transformers']}; the stages used {bench_report.cpu_share(r):.2f} CPU-seconds per wall second.")
    notes = bench_report.notes(r)
    if notes:
        protocol += " " + "; ".join(n[0].upper() + n[1:] for n in notes) + "."
    return text[:end] + ["", "*Protocol:* " + protocol, ""] + footer(page, [path], bench_command(r))


def times(x, cpu=None, bold=False):
    main = f"{x:.2f}×"
    main = f"**{main}**" if bold else main
    return main if cpu is None else f"{main} ({cpu:.2f}×)"


def ratio_column(r, entry=None):
    """One column of the ratio table from a benchmark JSON's headline keys (or run 1's transcription)."""
    def both(key, bold=False):
        return times(r[key], r.get(key + "_cpu"), bold)
    pf_train = r["peak_fractions_train"]["ptuning"] if "peak_fractions_train" in r else r["peak_fraction_train"]
    pf_epoch = r["peak_fractions_epoch"]["ours"] if "peak_fractions_epoch" in r else r["peak_fraction_epoch"]
    identical = "yes" if r["predictions_identical"] else "NO"
    if entry is not None:
        identical += f" (closest label margin {entry['eval']['smallest_label_margin']:.2f})"
    return [both("eval_speedup_vs_transformers_dynamic", True), both("eval_speedup_vs_transformers_grouped"),
            both("eval_speedup_vs_seed_path"), both("epoch_speedup_vs_seed_path", True),
            times(r["epoch_speedup_vs_seed_path_first_epoch"]), both("train_speedup_ptuning_vs_seed_path"),
            both("train_speedup_ptuning_vs_finetune"), identical,
            f"{r['peak_fraction']:.0%} / {pf_train:.0%} / {pf_epoch:.0%}"]


def speed_ratios_block(page):
    run1, mini, base = (load("docs/results/speed_run1.json"), load("docs/benchmark/bench_mini.json"),
                        load("docs/benchmark/bench_base.json"))
    base_bold = ratio_column(base, base["models"]["base"])
    base_plain = [c.replace("**", "") for c in base_bold]  # the targets are the mini model's
    labels = ["eval: few_shot vs `transformers`, dynamic padding (`eval_speedup_vs_transformers_dynamic`)",
              "eval: few_shot vs `transformers`, length-grouped", "eval: few_shot vs the seed's eval loop",
              "one p-tuning epoch: few_shot vs the seed's path (`epoch_speedup_vs_seed_path`)",
              "the same, first epoch with tracing", "train step: p-tuning vs the seed's step",
              "train step: p-tuning vs finetune", "predictions identical to every peer (argmax on every row)",
              "few_shot's fraction of the fp32 matmul peak: eval (`peak_fraction`) / train step / epoch"]
    targets = {0: f"≥ {mini['targets']['eval_speedup_vs_transformers_dynamic']['target']:g}×",
               3: f"≥ {mini['targets']['epoch_speedup_vs_seed_path']['target']:g}×", 7: "yes"}
    columns = [{"name": "ratio (wall time; CPU time in brackets)"}] + [
        {"name": n, "align": "right"} for n in ("mini, run 1", "mini, run 2 (the JSON)",
                                                "BERT-base shape, random weights", "target")]
    cols = [ratio_column(run1["ratios"]), ratio_column(mini, mini["models"]["mini"]), base_plain]
    rows = [[label] + [c[i] for c in cols] + [targets.get(i, "")] for i, label in enumerate(labels)]
    protocol = ("Mini: all 2111 test rows for eval, the default epoch (263 steps of 32 = 50 passes over 168 rows, "
                "then all of valid and test). BERT-base shape: the first 256 test rows; an epoch of one pass "
                "(6 steps) with 128 + 128 eval rows. Run 1 and run 2 are the same command on the same machine half "
                "an hour apart; run 1's JSON was replaced by run 2's, its figures are transcribed from its "
                "printed report.")
    sources = ["docs/results/speed_run1.json", "docs/benchmark/bench_mini.json", "docs/benchmark/bench_base.json"]
    return (markdown_table(columns, rows) + ["", "*Protocol:* " + protocol, ""] +
            footer(page, sources, [bench_command(mini), bench_command(base)]))


def keras_hub_block(page):
    files = [("mini", "docs/benchmark/keras_hub_check_mini.json"), ("base", "docs/benchmark/keras_hub_check.json")]
    columns = [{"name": n, "align": a} for n, a in (
        ("model", "left"), ("max abs Δ vs transformers: ours", "right"), ("keras-hub (gelu)", "right"),
        ("keras-hub (tanh gelu)", "right"), ("eval: keras-hub / ours", "right"),
        ("train: keras-hub / ours", "right"), ("repeats", "right"))]
    rows, commands = [], []
    for name, path in files:
        r = load(path)
        m = r["models"][name]
        d = m["exactness"]["max_abs_diff_vs_transformers"]
        s = m["speed"]
        shape = m["shape"]
        label = f"{name} ({shape['layers']} layers, hidden {shape['hidden']})"
        rows.append([label, f"{d['ours']:.2e}", f"{d['keras_hub']:.2e}", f"{d['keras_hub_tanh_gelu']:.2e}",
                     f"{s['eval']['paired_ratio_median_keras_hub_over_ours']:.3f}",
                     f"{s['train']['paired_ratio_median_keras_hub_over_ours']:.3f}",
                     str(len(s['eval']['ours']['all_s']))])
        commands.append(r["command"])
    protocol = ("Logits of our BERT layers and of keras-hub's (weights copied) against `transformers` on the same "
                "padded rows; speed: the median over interleaved repeats of the paired ratio keras-hub time / our "
                "time (eval: forward + full-vocabulary logits; train: forward, loss, backward and Adam over all "
                "weights). The bar was at most 5% slower.")
    return (markdown_table(columns, rows) + ["", "*Protocol:* " + protocol, ""] +
            footer(page, [p for _, p in files], commands))


def gpu_eval_block(page):
    path = "docs/benchmark/gpu_h200.json"
    r = load(path)
    fixed = r["keras_jax_bf16"]
    fixed_peak = fixed["fraction_of_bf16_peak_after_fix"]
    columns = [{"name": n, "align": a} for n, a in (
        ("stage", "left"), ("variant (gpu_job.sh's name)", "left"), ("precision", "left"), ("rows/s (eval) or samples/s (train)", "right"),
        ("TFLOP/s", "right"), ("of the peak (same precision)", "right"))]
    rows = []
    records = r["eval"] + r["train"] + [dict(x, name=x["name"] + "_patched") for x in fixed["after_fix"]]
    for x in records:
        path_name = "`" + x["name"].replace("_patched", "").replace("_" + x["precision"], "") + "`"
        if x["name"].endswith("_patched"):
            path_name += " (prompt-encoder LSTMs with use_cudnn=False, scripts/bench/jax_bf16_check.py)"
        if "error" in x:
            rows.append([x["kind"], path_name, x["precision"], f"failed: {x['error']}", "-", "-"])
            continue
        rate = x.get("rows_per_s", x.get("samples_per_s"))
        frac = x.get("fraction_of_peak", fixed_peak.get(x["name"].replace("_patched", "")))
        rows.append([x["kind"], path_name, x["precision"], f"{rate:,.1f}", f"{x['tflops']:.1f}",
                     "-" if frac is None else f"{frac:.0%}"])
    peak = r["peak_tflops"]
    protocol = (f"One {r['machine']['device']}: {r['model']}. Matmul peak measured in the same job: bf16 "
                f"{peak['bf16']} TFLOP/s, fp32 {peak['fp32']}, tf32 {peak['tf32']}. TensorFlow is not installed "
                f"there: these rows are Keras 3 on the torch and JAX backends and `transformers`, not the CPU path. "
                f"JAX runs fp32 matmuls as tf32 by default, hence its fp32 fraction above 100% of the strict-fp32 "
                f"peak.")
    return (markdown_table(columns, rows) + ["", "*Protocol:* " + protocol, ""] +
            footer(page, [path], None, "the run: `timeout -k 5 590 bash scripts/gpu_job.sh` on the GPU machine "
                                       "(see [Pretraining](" + rel(page, "docs/pretraining.md") + "))"))


def gpu_pretraining_block(page):
    runs = [("run 1", "docs/benchmark/gpu_h200.json"), ("run 2", "docs/benchmark/gpu_h200_run2/bench.json")]
    columns = [{"name": n, "align": a} for n, a in (
        ("job", "left"), ("backend", "left"), ("steps", "right"), ("tokens", "right"), ("wall min", "right"),
        ("train min", "right"), ("tokens/s", "right"), ("MLM loss, first → last 20 steps", "right"),
        ("data pipeline alone, tokens/s", "right"), ("zero-shot probe, valid (in the job)", "right"))]
    rows = []
    for name, path in runs:
        r = load(path)
        p = r["pretraining"]
        probe = next(x for x in r["probe"] if x["name"] == "pretrained")
        rows.append([name, p["backend"], f"{p['steps']:,}", f"{p['steps'] * p['tokens_per_step'] / 1e6:.1f}M",
                     f"{p['wall_time_s'] / 60:.1f}", f"{p['train_time_s'] / 60:.1f}",
                     f"{p['tokens_per_second'] / 1e3:.1f}k", f"{p['loss_first20']:.2f} → {p['loss_last20']:.2f}",
                     f"{r['pipeline']['tokens_per_s'] / 1e3:.1f}k", f"{probe['accuracy']:.4f}"])
    cfg = load(runs[0][1])["pretraining"]["config"]
    protocol = (f"An {cfg['layers']}-layer, hidden-{cfg['hidden']} BERT ({cfg['heads']} heads, the bundled "
                f"vocabulary) pretrained from scratch in mixed bf16, batches of {cfg['batch_size']} blocks of "
                f"{cfg['maxlen']} tokens, lr {cfg['lr']:g}, until the job's time limit; the corpus had every line "
                f"containing a test text of the evaluation sets removed (scripts/gpu_prepare.py). The probe is the "
                f"job's own zero-shot check (`[MASK]满意。{{text}}`, all of sentiment valid).")
    return (markdown_table(columns, rows) + ["", "*Protocol:* " + protocol, ""] +
            footer(page, [p for _, p in runs], None, "the run: `timeout -k 5 590 bash scripts/gpu_job.sh` "
                                                     "(run 2: `GPU_JOB_BENCH=peak GPU_JOB_LIMIT_S=560 bash "
                                                     "scripts/gpu_job.sh`) on the GPU machine"))


# ------------------------------------------------------------------------ the registry of few_shot.methods

def registry_block(page):
    """The registered training methods (few_shot/methods/__init__.py), one row each: imports the registry,
    which is pure Python (no TensorFlow)."""
    import dataclasses
    sys.path.insert(0, ROOT)
    from few_shot.methods import methods
    from few_shot.methods.registry import flag

    def options(method):
        cells = [f"`{flag(cls, f.name)}` (`{f.name}`, default `{f.default!r}`)"
                 for cls in method.options for f in dataclasses.fields(cls)]
        return "; ".join(cells) or "-"

    columns = [{"name": n} for n in ("method", "script", "command-line flag", "options (flag, RunConfig field, default)",
                                     "files it writes", "summary")]
    rows = [[f"`{m.name}`", f"`few_shot_{m.script}.py`", f"`{m.cli}`" if m.cli else "(default)", options(m),
             ", ".join(f"`{f}`" for f in m.run_files) or "-", m.summary] for m in methods()]
    note = ("In registration order, the order in which a script asks them (`Method.chosen_by`): it runs the first "
            "whose flag was given, else its default method (`ptuning` for `few_shot_ptuning.py`, `finetune` for "
            "`few_shot_finetune.py`). \"files it writes\": the method's own files (`Method.run_files`), "
            "besides the `model.keras`, `metrics.json`, `vocab.txt`, `log.csv`, `tensorboard/` and `curves.png` "
            "of every training run.")
    return (markdown_table(columns, rows) + ["", note, "",
            f"Generated by `{GENERATOR}` from the method registry (`few_shot/methods/__init__.py`, "
            f"`few_shot.methods.methods()`)."])


def run_files_block(page):
    """The files a run owns: what --overwrite (and an interrupted run's clean-up) removes, by name."""
    sys.path.insert(0, ROOT)
    from few_shot.pretraining.config import OUTPUTS
    from few_shot.run_folder import RUN_FILES

    def patterns(names):
        return ", ".join(f"`{n}`" for n in names)
    columns = [{"name": "command"}, {"name": "the files it owns under `--output` (glob patterns)"}]
    rows = [["`few_shot_ptuning.py`, `few_shot_finetune.py` (training)", patterns(RUN_FILES)],
            ["`scripts/pretrain_mlm.py`", patterns(OUTPUTS)]]
    return (markdown_table(columns, rows) + ["", f"Generated by `{GENERATOR}` from `few_shot.run_folder.RUN_FILES` "
                                                 f"and `few_shot.pretraining.config.OUTPUTS`."])


BENCHMARK_TABLES = {
    "speed_mini": lambda page: speed_block(page, "mini"),
    "speed_base": lambda page: speed_block(page, "base"),
    "speed_ratios": speed_ratios_block,
    "keras_hub": keras_hub_block,
    "gpu_eval": gpu_eval_block,
    "gpu_pretraining": gpu_pretraining_block,
    "registry": registry_block,
    "run_files": run_files_block,
}


def block(page, name):
    if name in BENCHMARK_TABLES:
        return BENCHMARK_TABLES[name](page)
    if not os.path.isfile(os.path.join(RESULTS, name.partition(":")[0] + ".json")):
        raise SystemExit(f"error: {page}: no table {name!r} (no docs/results/{name.partition(':')[0]}.json and not "
                         f"one of {', '.join(BENCHMARK_TABLES)})")
    return results_block(page, name)


# ----------------------------------------------------------------------------------------------- pages

def pages():
    out = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"),
                                                                            recursive=True))
    return [p.replace(os.sep, "/") for p in out]


def render(page, text):
    def replace(m):
        return f"<!-- table: {m['name']} -->\n" + "\n".join(block(page, m["name"])) + "\n<!-- /table -->"
    return MARKER.sub(replace, text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page is out of date")
    args = parser.parse_args(argv)
    stale, used = [], set()
    for page in pages():
        path = os.path.join(ROOT, page)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        used.update(m["name"].partition(":")[0] for m in MARKER.finditer(text))
        new = render(page, text)
        if new != text:
            stale.append(page)
            if not args.check:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(new)
    unused = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(RESULTS, "*.json"))
                    if os.path.basename(p)[:-5] not in used | {"speed_run1"})
    if unused:
        print(f"warning: docs/results/ files no page shows: {', '.join(unused)}", file=sys.stderr)
    if args.check:
        if stale:
            print(f"out of date: {', '.join(stale)}; run {GENERATOR}", file=sys.stderr)
            return 1
        print("every table is up to date")
        return 0
    print(f"updated: {', '.join(stale)}" if stale else "every table was up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
