"""A multi-task model (few_shot/multitask.py) as ONE TensorFlow SavedModel: the MLM once, every task's
tokenizer rules, pattern, prompt rows and label words in the graph (as few_shot/export.py does for one task).

    model = load_tasks({"sentiment": "runs/p1", "tnews": "runs/t1/prompt.safetensors"})
    export_multitask(model, "serving/tasks/1")
    python few_shot_ptuning.py --export-tasks serving/tasks/1 sentiment=runs/p1 tnews=runs/t1/prompt.safetensors

Signatures:

- `serving_default`: inputs `task` [None] string and `text` [None] string, a row of any task in any position;
  ONE pass of the MLM for the whole batch. Outputs `probabilities` [None, C] float32 (C: the most labels of
  any task; 0 past a row's own labels), `labels` [None, C] string ("" past a row's own labels), `label` [None]
  string, `num_labels` [None] int32. An unknown task name fails the call (InvalidArgument naming the tasks).
- one signature per task, named after it: input `text` [None] string, outputs `probabilities` [None, C_task],
  `label`, `labels`, exactly like the single-task export's `serving_default`.

The tokenizer is the single-task export's GraphTokenizer (TensorFlow Text ops RegexSplitWithOffsets,
NormalizeUTF8, WordpieceTokenizeWithOffsets): `tensorflow_model_server` links them in; a plain TensorFlow
(`saved_model_cli run`, `tf.saved_model.load` without `import tensorflow_text`) cannot load the model.
One text field per task, as for `--export`: pair-pattern tasks (bustm) are refused.
"""
import os

from few_shot.errors import FewShotError, user_errors
from few_shot.export import SIGNATURE, check_out_dir


def export_tasks_command(args, mlm=None):
    """--export-tasks OUT_DIR TASK=TARGET [...]: every check (targets, one-field patterns, OUT_DIR) before
    TensorFlow loads, then one SavedModel of every task on one MLM."""
    from few_shot.export import check_run_pattern, one_field, serving_hint
    from few_shot.pattern import Pattern
    from few_shot.portable import FORMAT, read_tensors
    from few_shot.quiet import start_tensorflow
    from few_shot.serving_targets import check_task_target, parse_task_specs
    with user_errors():
        if len(args) < 2:
            raise FewShotError("--export-tasks OUT_DIR TASK=TARGET [TASK=TARGET ...]: give the folder and the tasks")
        out_dir, targets = args[0], parse_task_specs(args[1:], "--export-tasks")
        check_out_dir(out_dir, "--export-tasks")
        for name, target in targets.items():
            try:
                if check_task_target(name, target) == "file":
                    one_field(Pattern(read_tensors(target, FORMAT, "prompt.safetensors")[1]["pattern"]))
                else:
                    check_run_pattern(target)
            except FewShotError as e:
                raise FewShotError(str(e) if str(e).startswith("task ") else f"task {name}: {e}") from None
        start_tensorflow()
        from few_shot.multitask import load_tasks
        model = load_tasks(targets, mlm)
        path = export_multitask(model, out_dir)
        print(f"exported {len(targets)} tasks -> {path}: signature {SIGNATURE} (inputs task, text [None] string; "
              f"outputs probabilities [None, {model.num_labels}], label, labels, num_labels) and one signature per "
              f"task ({', '.join(targets)}; input text)")
        print(serving_hint(out_dir))


def export_multitask(model, out_dir):
    """Write `model` (a MultiTaskModel) to `out_dir` (new or empty) as a SavedModel -> out_dir."""
    check_out_dir(out_dir, "out_dir")
    from few_shot.export import GraphTokenizer, PatternLayout, write_archive
    names = list(model.task_names)
    layouts = {}
    for name in names:
        if name == SIGNATURE:
            raise FewShotError(f"task {name!r}: {SIGNATURE} is the signature of the mixed batch; rename the task")
        try:
            layouts[name] = PatternLayout(model.preprocessors[name])
        except FewShotError as e:
            raise FewShotError(f"task {name}: {e}") from None
    vocab = model.preprocessors[names[0]].tokenizer
    odd = [n for n in names if model.preprocessors[n].tokenizer.token_dict != vocab.token_dict]
    if odd:
        raise FewShotError(f"task {odd[0]}: its vocabulary differs from task {names[0]}'s; one SavedModel has one "
                           f"tokenizer: export it apart")
    import keras
    import tensorflow as tf

    tokenizer = GraphTokenizer(vocab)
    index = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(names), tf.constant(list(range(len(names))), tf.int32)), default_value=-1)
    widest, most = model.num_masks, model.num_labels
    counts = [len(model.labels(n)) for n in names]
    label_table = tf.constant([model.labels(n) + [""] * (most - len(model.labels(n))) for n in names])
    pad_id = int(model.backbone.pad_id)

    def inputs_of(name, text_ids):
        """One task's rows -> ragged ids and segments, [MASK] positions padded to the widest task's."""
        token_ids, segment_ids, masks = layouts[name].ragged(text_ids)
        missing = widest - masks.shape[1]
        if missing:
            masks = tf.concat([masks, tf.repeat(masks[:, :1], missing, axis=1)], axis=1)
        return token_ids, segment_ids, masks

    def probabilities(token_ids, segment_ids, masks, task_ids):
        scores = model({"token_ids": token_ids.to_tensor(default_value=pad_id), "segment_ids": segment_ids.to_tensor(0),
                        "mask_positions": masks, "task_ids": task_ids}, training=False)
        return tf.nn.softmax(tf.cast(scores, tf.float32), axis=-1)

    def one_task(i, name):
        labels = tf.constant(model.labels(name))

        def serve(text):
            token_ids, segment_ids, masks = inputs_of(name, tokenizer(text))
            task_ids = tf.fill(tf.shape(text), i)
            probs = probabilities(token_ids, segment_ids, masks, task_ids)[:, :counts[i]]
            return {"probabilities": probs, "label": tf.gather(labels, tf.argmax(probs, axis=-1, output_type=tf.int32)),
                    "labels": tf.tile(labels[None], [tf.shape(probs)[0], 1])}
        return serve

    def mixed(task, text):
        task_ids = index.lookup(task)
        check = tf.debugging.assert_non_negative(task_ids, message=f"unknown task; the tasks are {', '.join(names)}")
        with tf.control_dependencies([check]):  # every use of the task ids waits for the check
            task_ids = tf.identity(task_ids)
            text_ids = tokenizer(text)
        parts, order = [], []
        for i, name in enumerate(names):  # each task's rows through its own pattern, then one batch
            rows = tf.where(tf.equal(task_ids, i))[:, 0]
            parts.append(inputs_of(name, tf.gather(text_ids, rows)) + (tf.fill(tf.shape(rows), i),))
            order.append(rows)
        token_ids, segment_ids, masks, grouped = (tf.concat([p[k] for p in parts], axis=0) for k in range(4))
        probs = probabilities(token_ids, segment_ids, masks, grouped)
        probs = tf.gather(probs, tf.math.invert_permutation(tf.concat(order, axis=0)))  # back to the input order
        labels = tf.gather(label_table, task_ids)
        return {"probabilities": probs, "labels": labels,
                "label": tf.gather(labels, tf.argmax(probs, axis=-1, output_type=tf.int32), batch_dims=1),
                "num_labels": tf.gather(tf.constant(counts, tf.int32), task_ids)}

    archive = keras.export.ExportArchive()
    archive.track(tokenizer.table)
    archive.track(index)
    strings = tf.TensorSpec([None], tf.string, name="text")
    archive.add_endpoint(SIGNATURE, mixed, input_signature=[tf.TensorSpec([None], tf.string, name="task"), strings])
    for i, name in enumerate(names):
        archive.add_endpoint(name, one_task(i, name), input_signature=[strings])
    return write_archive(archive, out_dir, {
        "signature": SIGNATURE, "inputs": ["task", "text"], "task_signatures": names,
        "tasks": {n: {"labels": model.labels(n), "pattern": model.preprocessors[n].pattern.template,
                      "field": layouts[n].field, "verbalizer": model.preprocessors[n].verbalizer.mapping,
                      "maxlen": model.preprocessors[n].maxlen, "source": os.fspath(model.sources[n])}
                  for n in names}})
