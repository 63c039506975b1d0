"""TF Serving's REST predict bodies, read and written for few_shot/serve.py (pure Python).

Request: {"instances": [row, ...]} (the row form) or {"inputs": ...} (the columnar form), optionally with
"signature_name": "serving_default". A row is a string (for a pattern with one field, e.g. {text}) or an
object of the pattern's fields ({"text": "..."}; {"sentence1": "...", "sentence2": "..."} for a pair
pattern). Columnar: a list of strings (one field), or {field: [values, ...]} with one list per field.

Response, as TF Serving answers for a SavedModel of `--export` (outputs probabilities, label, labels):
row form {"predictions": [{"label": "1", "probabilities": [0.1, 0.9], "labels": ["0", "1"]}, ...]};
columnar form {"outputs": {"label": [...], "probabilities": [[...], ...], "labels": [[...], ...]}}.
"""


class BadRequest(Exception):
    """A request the server refuses: HTTP `status` and a one-line `message` naming the problem."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def kind(value):
    return {str: "a string", dict: "an object", list: "a list", bool: "a boolean", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


def field_value(value, where, field):
    if not isinstance(value, str):
        raise BadRequest(400, f"{where}: field {field!r} is {kind(value)}, not a string; send the text as a string")
    if not value.strip():
        raise BadRequest(400, f"{where}: field {field!r} is empty; a model given no text still answers with its "
                              f"prior, so send non-empty texts")
    return value


def row_of(item, fields, where):
    """One instance -> {field: text} for the pattern's `fields`."""
    if isinstance(item, str):
        if len(fields) != 1:
            raise BadRequest(400, f"{where}: a string, but this task reads the fields {', '.join(fields)}; send an "
                                  f"object {{{', '.join(chr(34) + f + chr(34) + ': ...' for f in fields)}}}")
        return {fields[0]: field_value(item, where, fields[0])}
    if not isinstance(item, dict):
        raise BadRequest(400, f"{where} is {kind(item)}; send a string or an object of the fields "
                              f"{', '.join(fields)}")
    unknown = [k for k in item if k not in fields]
    if unknown:
        raise BadRequest(400, f"{where}: unknown field {unknown[0]!r}; this task reads {', '.join(fields)}")
    missing = [f for f in fields if f not in item]
    if missing:
        raise BadRequest(400, f"{where}: no field {missing[0]!r}; this task reads {', '.join(fields)}")
    return {f: field_value(item[f], where, f) for f in fields}


def read_instances(payload, fields, max_instances):
    """A parsed JSON body -> ([{field: text}], columnar?) or BadRequest."""
    fields = list(fields)
    if not isinstance(payload, dict):
        raise BadRequest(400, f"the body is {kind(payload)}; send an object {{\"instances\": [...]}} or "
                              f"{{\"inputs\": ...}}")
    signature = payload.get("signature_name")
    if signature not in (None, "", "serving_default"):
        raise BadRequest(400, f"signature_name {signature!r}: each task has one signature, serving_default")
    unknown = [k for k in payload if k not in ("instances", "inputs", "signature_name")]
    if unknown:
        raise BadRequest(400, f"unknown key {unknown[0]!r}; send {{\"instances\": [...]}} or {{\"inputs\": ...}}")
    if ("instances" in payload) == ("inputs" in payload):
        raise BadRequest(400, "send one of \"instances\" (a list of rows) or \"inputs\" (columns)" +
                         ("" if "instances" in payload else f", e.g. {{\"instances\": [\"这家酒店很好\"]}}"))
    columnar = "inputs" in payload
    items = payload["inputs"] if columnar else payload["instances"]
    if columnar and isinstance(items, dict):
        items = columns_to_rows(items, fields, max_instances)
    if not isinstance(items, list):
        raise BadRequest(400, f"\"{'inputs' if columnar else 'instances'}\" is {kind(items)}; send a list")
    if not items:
        raise BadRequest(400, "no instances: send at least one")
    if len(items) > max_instances:
        raise BadRequest(413, f"{len(items)} instances; at most {max_instances} per request: split them")
    return [row_of(item, fields, f"instance {k + 1}") for k, item in enumerate(items)], columnar


def columns_to_rows(columns, fields, max_instances):
    """{"text": [...]} or {"sentence1": [...], "sentence2": [...]} -> [row objects]."""
    for name, values in columns.items():
        if name not in fields:
            raise BadRequest(400, f"inputs: unknown field {name!r}; this task reads {', '.join(fields)}")
        if not isinstance(values, list):
            raise BadRequest(400, f"inputs: field {name!r} is {kind(values)}; send a list of texts")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise BadRequest(400, f"inputs: the fields have different lengths ({', '.join(map(str, sorted(lengths)))})")
    size = lengths.pop() if lengths else 0
    if size > max_instances:
        raise BadRequest(413, f"{size} instances; at most {max_instances} per request: split them")
    return [{name: values[k] for name, values in columns.items()} for k in range(size)]


def response_body(probs, labels, columnar):
    """Probabilities per row (over `labels`) -> the JSON body TF Serving would send."""
    rows = [[float(p) for p in row] for row in probs]
    best = [labels[max(range(len(row)), key=row.__getitem__)] for row in rows]
    if columnar:
        return {"outputs": {"label": best, "probabilities": rows, "labels": [list(labels)] * len(rows)}}
    return {"predictions": [{"label": b, "probabilities": row, "labels": list(labels)} for b, row in zip(best, rows)]}
